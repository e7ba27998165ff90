"""IJB-C 1:1 verification: loose crops + 5-point landmarks, template/media ids, template pairs."""
