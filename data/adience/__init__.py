"""Adience (age groups and gender, five folds) from the official `faces/` + `fold_*_data.txt`."""
