"""`<name>.bin` = pickle (list of 2N JPEG bytes, list of N issame): one record per pair."""

import os
from typing import ClassVar

import tensorflow_datasets as tfds

from data import common
from faceptor_jax import verification
from faceptor_jax.datasets import VERIFICATION_SETS as SETS


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
        try:  # the restricted unpickler: a .bin names no global beyond numpy/codecs ones
            bins, issame = verification.read_verification_bin(path)
        except ValueError as e:
            raise common.ManualDownloadError(str(e)) from e
        for i, same in enumerate(issame):
            a, b = bins[2 * i : 2 * i + 2]
            if corrupt.check(a, f"{path}#{2 * i}") and corrupt.check(b, f"{path}#{2 * i + 1}"):
                yield i, {"image_a": a, "image_b": b, "issame": int(same)}
