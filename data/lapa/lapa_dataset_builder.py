"""LaPa: `{train,val,test}/{images/*.jpg, labels/*.png, landmarks/*.txt}`; train = train + val.

Landmark files hold "106" then 212 numbers (x y pairs)."""

import os
from typing import ClassVar

import numpy as np

from data import common

_SUBSETS = {"train": ("train", "val"), "test": ("test",)}


def read_landmarks(path: str) -> np.ndarray:
    with open(common.need(path, "a LaPa 106-landmark file")) as f:
        values = f.read().split()
    if len(values) != 213 or values[0] != "106":
        raise common.ManualDownloadError(
            f"{path}: malformed; expected '106' then 212 numbers, got {len(values)} values"
        )
    return np.asarray(values[1:], np.float32).reshape(106, 2)


class Lapa(common.ManualBuilder):
    name = "lapa"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "mask": common.image_feature(1),
        "landmarks": common.tensor((106, 2)),
        "filename": common.text(),
    }

    def check_layout(self, manual_dir):
        for sub in ("train", "val", "test"):
            for kind in ("images", "labels", "landmarks"):
                common.need(os.path.join(manual_dir, sub, kind), f"the LaPa {sub}/{kind} folder")

    def examples(self, manual_dir, split, corrupt):
        for sub in _SUBSETS[split]:
            names = sorted(
                n[:-4]
                for n in os.listdir(os.path.join(manual_dir, sub, "images"))
                if n.endswith(".jpg")
            )
            for name in names:
                image = corrupt.check(None, os.path.join(manual_dir, sub, "images", f"{name}.jpg"))
                label_path = os.path.join(manual_dir, sub, "labels", f"{name}.png")
                label = corrupt.check(None, common.need(label_path, "the LaPa label map"))
                pts = read_landmarks(os.path.join(manual_dir, sub, "landmarks", f"{name}.txt"))
                if image is None or label is None:
                    continue
                yield (
                    f"{sub}.{name}",
                    {"image": image, "mask": label, "landmarks": pts, "filename": f"{sub}.{name}"},
                )
