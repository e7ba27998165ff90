"""Face-verification pairs from InsightFace `.bin` files (LFW, CFP-FP, AgeDB-30, ...)."""
