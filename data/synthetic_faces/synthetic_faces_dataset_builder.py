"""TFDS build of the synthetic faces: one config per real dataset name, same record features.

`python -m data build synthetic_faces/ibug300w --data_dir D` then
`open_tfds(D, "synthetic_faces/ibug300w", "train")` reads it like the real 300W build."""

import dataclasses
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data import common
from data.synthetic_faces import source


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
    train_size: int = 2000
    test_size: int = 200
    seed: int = 0
    dataset: str = ""  # defaults to the config name (custom-size configs need another name)

    @property
    def target(self) -> str:
        return self.dataset or self.name


def _features(dataset: str) -> dict:
    if dataset in source.VERIFICATION:
        img = common.image_feature()
        return {"image_a": img, "image_b": common.image_feature(), "issame": common.scalar()}
    feats = {"image": common.image_feature(), "filename": common.text()}
    for field in source.DATASET_LAYOUTS[dataset].fields:
        if field in ("label", "age", "expression"):
            feats["age" if field == "age" else "label"] = common.scalar()
        elif field == "gender":
            feats["gender"] = common.scalar()
        elif field == "attributes":
            feats["attributes"] = common.tensor((40,), np.int64)
        elif field.startswith("mask"):
            feats["mask"] = common.image_feature(1)
        elif field.startswith("landmarks"):
            feats["landmarks"] = common.tensor((int(field.split("_")[1]), 2))
        elif field == "box":
            feats["box"] = common.tensor((4,))
    return feats


class SyntheticFaces(common.ManualBuilder):
    name = "synthetic_faces"
    BUILDER_CONFIGS: ClassVar[list] = [
        SyntheticConfig(name=n) for n in (*source.DATASET_LAYOUTS, *source.VERIFICATION)
    ]

    @property
    def SPLITS(self):
        return ("test",) if self.builder_config.target in source.VERIFICATION else ("train", "test")

    def _info(self):
        feats = tfds.features.FeaturesDict(_features(self.builder_config.target))
        return tfds.core.DatasetInfo(builder=self, features=feats)

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: rendered procedurally
        return {split: self._generate_examples("", split) for split in self.SPLITS}

    def examples(self, manual_dir, split, corrupt):
        cfg = self.builder_config
        n = cfg.train_size if split == "train" else cfg.test_size
        src = source.SyntheticFaces(cfg.target, split, length=n, seed=cfg.seed)
        for i in range(n):
            rec = dict(src[i])
            for k in ("image", "image_a", "image_b"):
                if k in rec:
                    rec[k] = common.encode_png(rec[k])
            if "attributes" in rec:
                rec["attributes"] = np.asarray(rec["attributes"], np.int64)
            if "mask" in rec:
                rec["mask"] = common.encode_png(rec["mask"][..., None])
            if "image" in rec:
                rec["filename"] = str(i)
            yield i, rec
