"""CLAP2015 (ChaLearn Looking at People 2015, apparent age; 2,476 train / 1,136 val / 1,079 test).

manual_dir holds one folder per split, each with the split's face images and its label CSV in
the layout of the ChaLearn ground truth (`name;mean;std`, semicolon-separated, no header; a header
line is skipped):
  {train,val,test}/data/<name>.jpg
  {train,val,test}/label.csv
Records: image (original bytes), filename, age = the mean apparent age (float32), age_std = the
standard deviation of the votes (float32), which the ε-error 1 − exp(−(ŷ−μ)²/(2σ²)) needs.
"""

import os
from typing import ClassVar

import numpy as np

from data import common

_EXPECTED = "'name;mean;std' with numbers"


class Clap2015(common.ManualBuilder):
    name = "clap2015"
    SPLITS = ("train", "val", "test")
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "filename": common.text(),
        "age": common.scalar(np.float32),
        "age_std": common.scalar(np.float32),
    }

    def check_layout(self, manual_dir):
        for split in self.SPLITS:
            common.need(os.path.join(manual_dir, split, "label.csv"), f"the CLAP2015 {split} CSV")

    def examples(self, manual_dir, split, corrupt):
        path = os.path.join(manual_dir, split, "label.csv")
        for i, line in enumerate(common.read_lines(path, f"the CLAP2015 {split} CSV"), start=1):
            fields = [f.strip() for f in line.strip().split(";")]
            if fields == [""]:
                continue
            try:
                if len(fields) != 3:
                    raise ValueError
                mean, std = float(fields[1]), float(fields[2])
            except ValueError:
                if i == 1:  # a header line
                    continue
                raise common.malformed(path, i, _EXPECTED, line) from None
            yield (
                fields[0],
                {
                    "image_path": os.path.join(manual_dir, split, "data", fields[0]),
                    "filename": fields[0],
                    "age": mean,
                    "age_std": std,
                },
            )
