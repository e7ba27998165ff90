"""LaPa face parsing (11 classes) with 106 landmarks for the alignment."""
