"""AffectNet (7 expressions; contempt dropped as in the original)."""
