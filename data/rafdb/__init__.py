"""RAF-DB basic (7 expressions, mapped to AffectNet ids)."""
