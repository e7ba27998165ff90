"""MS1MV3 (recognition, 93431 identities) from InsightFace RecordIO."""
