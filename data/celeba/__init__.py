"""CelebA (40 binary attributes), Rethinking-of-PAR `label.pkl` format."""
