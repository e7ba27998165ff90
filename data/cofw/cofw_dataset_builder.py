"""COFW: `COFW_{train,test}_color.mat` (MATLAB v7.3 = HDF5, read with h5py): images `IsTr`/`IsT`
(cell of HxW gray or HxWx3), points `phisTr`/`phisT` [N,87] (first 58 = 29 x then 29 y).

Box as the original: square centred at ((⌊x_min⌋+⌈x_max⌉)/2, (⌊y_min⌋+⌈y_max⌉)/2), half-size
max(⌈x_max⌉-⌊x_min⌋, ⌈y_max⌉-⌊y_min⌋)/2. Images are stored as PNG (gray replicated to RGB)."""

import math
import os
from typing import ClassVar

import numpy as np

from data import common, landmark_csv

_KEYS = {
    "train": ("COFW_train_color.mat", "IsTr", "phisTr"),
    "test": ("COFW_test_color.mat", "IsT", "phisT"),
}


def cofw_box(pts: np.ndarray) -> np.ndarray:
    x_min, x_max = float(pts[:, 0].min()), float(pts[:, 0].max())
    y_min, y_max = float(pts[:, 1].min()), float(pts[:, 1].max())
    cw = (math.floor(x_min) + math.ceil(x_max)) / 2.0
    ch = (math.floor(y_min) + math.ceil(y_max)) / 2.0
    half = max(math.ceil(x_max) - math.floor(x_min), math.ceil(y_max) - math.floor(y_min)) / 2
    return np.array([ch - half, cw - half, ch + half, cw + half], np.float32)


def read_mat(path: str, image_key: str, pts_key: str):
    """-> (list of HxW[x3] uint8 images, [N, 87] points) in MATLAB orientation."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError("COFW's v7.3 .mat files need h5py (pinned in requirements.txt)") from e
    with h5py.File(common.need(path, "a COFW v7.3 .mat file"), "r") as f:
        for key in (image_key, pts_key):
            if key not in f:
                raise common.ManualDownloadError(f"{path}: no {key!r} variable")
        refs = np.asarray(f[image_key]).reshape(-1)
        images = [np.asarray(f[r]).T for r in refs]  # HDF5 stores MATLAB arrays transposed
        pts = np.asarray(f[pts_key]).T
    if pts.ndim != 2 or pts.shape[0] != len(images) or pts.shape[1] < 58:
        raise common.ManualDownloadError(
            f"{path}: {pts_key} has shape {pts.shape}; expected [{len(images)}, >=58]"
        )
    return images, pts


class Cofw(common.ManualBuilder):
    name = "cofw"
    FEATURES: ClassVar[dict] = landmark_csv.landmark_features(29)

    def check_layout(self, manual_dir):
        for file, _, _ in _KEYS.values():
            common.need(os.path.join(manual_dir, file), "a COFW color .mat file")

    def examples(self, manual_dir, split, corrupt):
        file, image_key, pts_key = _KEYS[split]
        images, pts = read_mat(os.path.join(manual_dir, file), image_key, pts_key)
        for i, (img, p) in enumerate(zip(images, pts, strict=True)):
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            if img.ndim != 3 or img.shape[2] != 3:
                corrupt.paths.append(f"{file}#{i}")
                continue
            landmarks = np.asarray(p[:58], np.float32).reshape(2, 29).T
            yield (
                i,
                {
                    "image": common.encode_png(img.astype(np.uint8)),
                    "landmarks": landmarks,
                    "box": cofw_box(landmarks),
                    "filename": f"{split}_{i}",
                },
            )
