"""300W: `face_landmarks_300w_<split>.csv` + `data/`; all coordinates and the centre shifted by
-2.0 and the `ibug/image_092_01.jpg` path fixed, as the original loader does."""

import os
from typing import ClassVar

from data import common, landmark_csv

_FIXES = {"ibug/image_092_01.jpg": "ibug/image_092 _01.jpg"}


class Ibug300w(common.ManualBuilder):
    name = "ibug300w"
    SPLITS = ("train", "valid", "valid_common", "valid_challenge", "test")
    FEATURES: ClassVar[dict] = landmark_csv.landmark_features(68)

    def check_layout(self, manual_dir):
        for s in self.SPLITS:
            common.need(os.path.join(manual_dir, f"face_landmarks_300w_{s}.csv"), "a 300W CSV")

    def examples(self, manual_dir, split, corrupt):
        csv = f"face_landmarks_300w_{split}.csv"
        yield from landmark_csv.csv_examples(manual_dir, csv, 68, corrupt, -2.0, _FIXES)
