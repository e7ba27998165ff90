"""COFW (29 landmarks) from the MATLAB v7.3 color files."""
