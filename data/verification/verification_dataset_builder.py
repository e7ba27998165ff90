"""`<name>.bin` = pickle (list of 2N JPEG bytes, list of N issame): one record per pair."""

import os
import pickle
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data import common

SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "mlfw")


class Verification(common.ManualBuilder):
    name = "verification"
    BUILDER_CONFIGS: ClassVar[list] = [tfds.core.BuilderConfig(name=n) for n in SETS]
    SPLITS = ("test",)
    FEATURES: ClassVar[dict] = {
        "image_a": common.image_feature(),
        "image_b": common.image_feature(),
        "issame": common.scalar(),
    }

    def check_layout(self, manual_dir):
        common.need(os.path.join(manual_dir, f"{self.builder_config.name}.bin"), "a .bin pair file")

    def examples(self, manual_dir, split, corrupt):
        path = os.path.join(manual_dir, f"{self.builder_config.name}.bin")
        with open(path, "rb") as f:
            try:
                bins, issame = pickle.load(f, encoding="bytes")
            except Exception as e:
                raise common.ManualDownloadError(
                    f"{path}: malformed; expected a pickled (image bytes list, issame list): {e}"
                ) from e
        if len(bins) != 2 * len(issame):
            raise common.ManualDownloadError(
                f"{path}: {len(bins)} images for {len(issame)} pairs; expected 2 per pair"
            )
        for i, same in enumerate(issame):
            a, b = (
                bytes(np.asarray(x).tobytes()) if not isinstance(x, bytes) else x
                for x in bins[2 * i : 2 * i + 2]
            )
            if corrupt.check(a, f"{path}#{2 * i}") and corrupt.check(b, f"{path}#{2 * i + 1}"):
                yield i, {"image_a": a, "image_b": b, "issame": int(bool(same))}
