"""CelebA: `label.pkl` (image_name, attr [N,40], attr_name, partition{trainval,test}), `data/`."""

import os
import pickle
from typing import ClassVar

import numpy as np

from data import common

_SPLITS = {"train": "trainval", "test": "test"}


class Celeba(common.ListBuilder):
    name = "celeba"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "attributes": common.tensor((40,), np.int64),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = common.need(os.path.join(manual_dir, "label.pkl"), "the CelebA label.pkl")
        with open(path, "rb") as f:
            info = pickle.load(f)
        keys = ("image_name", "attr", "partition")
        if not isinstance(info, dict) or any(k not in info for k in keys):
            raise common.ManualDownloadError(f"{path}: malformed; expected a dict with {keys}")
        attr = np.asarray(info["attr"])
        if attr.ndim != 2 or attr.shape[1] != 40:
            raise common.ManualDownloadError(
                f"{path}: attr has shape {attr.shape}, expected [N,40]"
            )
        part = _SPLITS[split]
        if part not in info["partition"]:
            raise common.ManualDownloadError(f"{path}: partition has no {part!r} list")
        idx = np.asarray(info["partition"][part]).reshape(-1)
        return [(info["image_name"][i], {"attributes": attr[i].astype(np.int64)}) for i in idx]
