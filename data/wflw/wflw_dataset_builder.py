"""WFLW: `face_landmarks_wflw_<split>.csv` + `data/` (no coordinate offset)."""

import os
from typing import ClassVar

from data import common, landmark_csv

_SUBSETS = ("blur", "expression", "illumination", "largepose", "makeup", "occlusion")


class Wflw(common.ManualBuilder):
    name = "wflw"
    SPLITS = ("train", "test", *(f"test_{s}" for s in _SUBSETS))
    FEATURES: ClassVar[dict] = landmark_csv.landmark_features(98)

    def check_layout(self, manual_dir):
        for s in self.SPLITS:
            common.need(os.path.join(manual_dir, f"face_landmarks_wflw_{s}.csv"), "a WFLW CSV")

    def examples(self, manual_dir, split, corrupt):
        csv = f"face_landmarks_wflw_{split}.csv"
        yield from landmark_csv.csv_examples(manual_dir, csv, 98, corrupt)
