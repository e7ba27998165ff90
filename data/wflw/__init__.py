"""WFLW (98 landmarks), HRNet CSV splits incl. the six test subsets."""
