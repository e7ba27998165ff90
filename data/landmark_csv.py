"""HRNet-format landmark CSVs (300W, WFLW): `image,scale,center_w,center_h,x1,y1,...`, header row.

Box = centre ± 100·scale (square), as y1,x1,y2,x2; images under `data/`."""

from __future__ import annotations

import os

import numpy as np

from data import common


def landmark_features(k: int) -> dict:
    return {
        "image": common.image_feature(),
        "landmarks": common.tensor((k, 2)),
        "box": common.tensor((4,)),
        "filename": common.text(),
    }


def read_csv(path: str, k: int, offset: float = 0.0, fixes: dict | None = None):
    """-> [(relative image path, landmarks [k,2], box [4])]; `offset` is added to every coord."""
    out = []
    expected = f"'image,scale,center_w,center_h' + {2 * k} coordinates"
    for i, line in enumerate(common.read_lines(path, "a landmark CSV")[1:], 2):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split(",")
        if len(f) != 4 + 2 * k:
            raise common.malformed(path, i, expected, line[:80])
        try:
            scale, cw, ch, *coords = (float(v) for v in f[1:])
        except ValueError as e:
            raise common.malformed(path, i, expected, line[:80]) from e
        pts = np.asarray(coords, np.float32).reshape(k, 2) + np.float32(offset)
        cw, ch, half = cw + offset, ch + offset, 100.0 * scale
        box = np.array([ch - half, cw - half, ch + half, cw + half], np.float32)
        out.append(((fixes or {}).get(f[0], f[0]), pts, box))
    return out


def csv_examples(manual_dir, csv_name, k, corrupt, offset=0.0, fixes=None):
    path = os.path.join(manual_dir, csv_name)
    for j, (rel, pts, box) in enumerate(read_csv(path, k, offset, fixes)):
        image_path = os.path.join(manual_dir, "data", rel)
        yield (
            f"{j}:{rel}",
            {"image_path": image_path, "landmarks": pts, "box": box, "filename": rel},
        )
