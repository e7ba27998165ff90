"""300W (68 landmarks), HRNet CSV splits."""
