"""AFLW-19: `AFLWinfo_release.mat` (bbox left,right,top,bottom; data [N,38] = 19 x then 19 y;
mask_new [N,19]; nameList; ra = 1-based permutation), images `data/flickr/<name>`.

train = ra[:20000], test_full = ra[20000:], test_frontal = test_full with all 19 visible."""

import os
from typing import ClassVar

import numpy as np
import scipy.io

from data import common, landmark_csv

TRAIN_COUNT = 20000
_KEYS = ("bbox", "data", "mask_new", "nameList", "ra")


def read_info(path: str) -> dict:
    info = scipy.io.loadmat(common.need(path, "AFLWinfo_release.mat"))
    missing = [k for k in _KEYS if k not in info]
    if missing:
        raise common.ManualDownloadError(f"{path}: missing variables {missing}; expected {_KEYS}")
    n = info["bbox"].shape[0]
    ra = np.reshape(info["ra"].astype(np.int64), [-1]) - 1
    if info["data"].shape != (n, 38) or sorted(ra.tolist()) != list(range(n)):
        raise common.ManualDownloadError(
            f"{path}: expected data [{n},38] and ra a 1-based permutation of {n}"
        )
    return info | {"ra0": ra, "names": [str(s[0][0]) for s in info["nameList"]]}


class Aflw19(common.ManualBuilder):
    name = "aflw19"
    SPLITS = ("train", "test_full", "test_frontal")
    FEATURES: ClassVar[dict] = landmark_csv.landmark_features(19) | {
        "visibility": common.tensor((19,), np.int64)
    }

    def check_layout(self, manual_dir):
        common.need(os.path.join(manual_dir, "AFLWinfo_release.mat"), "the AFLW-19 info file")
        common.need(os.path.join(manual_dir, "data", "flickr"), "the AFLW image folder")

    def examples(self, manual_dir, split, corrupt):
        info = read_info(os.path.join(manual_dir, "AFLWinfo_release.mat"))
        ra = info["ra0"]
        indices = ra[:TRAIN_COUNT] if split == "train" else ra[TRAIN_COUNT:]
        if split == "test_frontal":
            visible = np.all(info["mask_new"] == 1, axis=1)
            indices = [i for i in indices if visible[i]]
        for i in indices:
            left, right, top, bottom = info["bbox"][i]
            example = {
                "image_path": os.path.join(manual_dir, "data", "flickr", info["names"][i]),
                "landmarks": np.reshape(info["data"][i], [2, 19]).T.astype(np.float32),
                "box": np.array([top, left, bottom, right], np.float32),
                "visibility": info["mask_new"][i].astype(np.int64),
                "filename": info["names"][i],
            }
            yield int(i), example
