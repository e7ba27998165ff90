"""MS1MV2 (`faces_emore`, recognition, 85742 identities) from InsightFace RecordIO."""
