"""Adience: manual_dir holds the official `faces/` folder and `fold_{0..4}_data.txt`.

A fold file is tab-separated with a header: user_id, original_image, face_id, age, gender, x, y,
dx, dy, tilt_ang, fiducial_yaw_angle, fiducial_score; the crop of a line is
`faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>`. One split per fold
(`fold_0` … `fold_4`; all of Adience is `fold_0+fold_1+fold_2+fold_3+fold_4`).

Records: image, filename (relative to `faces/`), age_group = index of the official group in
AGE_GROUPS (−1 for the few other labels, e.g. `(38, 42)` or `35`), age = the group's midpoint or
the single age (float32; −1 unknown: `None`), gender = 1 male, 0 female, −1 unknown (`u`/empty).
"""

import os
import re
from typing import ClassVar

import numpy as np

from data import common

AGE_GROUPS = ("(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)",
              "(60, 100)")  # fmt: skip
GENDERS = {"m": 1, "f": 0, "u": -1, "": -1}
FOLDS = 5
_RANGE = re.compile(r"^\((\d+),\s*(\d+)\)$")


def parse_age(text: str) -> tuple[float, int] | None:
    """'(25, 32)' -> (28.5, 4); '35' -> (35.0, -1); 'None' -> (-1.0, -1); else None."""
    text = text.strip()
    if text in ("None", ""):
        return -1.0, -1
    if text.isdigit():
        return float(text), -1
    m = _RANGE.match(text)
    if m is None:
        return None
    lo, hi = int(m.group(1)), int(m.group(2))
    group = f"({lo}, {hi})"
    return (lo + hi) / 2, AGE_GROUPS.index(group) if group in AGE_GROUPS else -1


class Adience(common.ManualBuilder):
    name = "adience"
    SPLITS = tuple(f"fold_{k}" for k in range(FOLDS))
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "filename": common.text(),
        "age": common.scalar(np.float32),
        "age_group": common.scalar(),
        "gender": common.scalar(),
    }

    def check_layout(self, manual_dir):
        common.need(os.path.join(manual_dir, "faces"), "the Adience faces/ folder")
        for split in self.SPLITS:
            common.need(os.path.join(manual_dir, f"{split}_data.txt"), "an Adience fold list")

    def examples(self, manual_dir, split, corrupt):
        path = os.path.join(manual_dir, f"{split}_data.txt")
        expected = "11+ tab-separated fields: user_id, original_image, face_id, age, gender, …"
        for i, line in enumerate(common.read_lines(path, "an Adience fold list")[1:], start=2):
            if not line.strip():
                continue
            f = line.rstrip("\r").split("\t")
            age = parse_age(f[3]) if len(f) >= 11 else None
            gender = GENDERS.get(f[4].strip()) if age is not None else None
            if age is None or gender is None:
                raise common.malformed(path, i, expected + " (age '(lo, hi)'/N/None, m/f/u)", line)
            rel = f"{f[0]}/coarse_tilt_aligned_face.{f[2]}.{f[1]}"
            yield (
                f"{i}:{rel}",
                {
                    "image_path": os.path.join(manual_dir, "faces", rel),
                    "filename": rel,
                    "age": age[0],
                    "age_group": age[1],
                    "gender": gender,
                },
            )
