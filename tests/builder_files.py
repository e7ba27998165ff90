"""Data-builder test helpers: tiny files in a dataset's layout, and reading a build back."""

import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def img(value: int, size=(8, 8), fmt="JPEG") -> bytes:
    """An encoded uniform image of grey level `value`."""
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def write(path, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def read(builder, split):
    """Every record of a built split, images left encoded."""
    skip = {k: tfds.decode.SkipDecoding() for k, f in builder.info.features.items()
            if isinstance(f, tfds.features.Image)}  # fmt: skip
    src = builder.as_data_source(split=split, decoders=skip)
    return [src[i] for i in range(len(src))]


def by_name(records):
    return {r["filename"].decode(): r for r in records}
