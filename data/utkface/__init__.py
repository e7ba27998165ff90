"""UTKFace (age)."""
