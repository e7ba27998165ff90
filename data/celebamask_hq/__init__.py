"""CelebAMask-HQ face parsing (19 classes)."""
