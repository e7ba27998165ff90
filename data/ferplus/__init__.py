"""FERPlus (7 expressions, mapped to AffectNet ids; train = train + val)."""
