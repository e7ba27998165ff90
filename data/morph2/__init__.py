"""MORPH2 (age, RANDOM_80_20 protocol)."""
