"""Procedurally rendered faces carrying every Faceptor label; the default data (no download)."""

from data.synthetic_faces.source import DATASET_LAYOUTS, VERIFICATION, SyntheticFaces, render_full

__all__ = ["DATASET_LAYOUTS", "VERIFICATION", "SyntheticFaces", "render_full"]
