"""Trainers: one recipe each, sharing the run loop in `loop.py`."""
