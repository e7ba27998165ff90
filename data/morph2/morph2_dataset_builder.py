"""MORPH2: `data/<relpath>`, `label/RANDOM_80_20/{train,test}.txt` lines `relpath age`.

Records: image, filename (relpath), age (the list's), gender = 1 male, 0 female, −1 unknown, read
from the official file name: MORPH II names every photo `<subject>_<photo><M|F><age>.JPG`
(e.g. `009055_1M54.JPG`); a relpath whose file name does not follow it gets −1.
"""

import os
import re
from typing import ClassVar

from data import common

_OFFICIAL_NAME = re.compile(r"^\d+_\d+([MF])\d+\.[A-Za-z]+$", re.IGNORECASE)


def gender_from_name(relpath: str) -> int:
    """'Album2/009055_1M54.JPG' -> 1; '…_0F23.JPG' -> 0; a name not in MORPH's form -> −1."""
    m = _OFFICIAL_NAME.match(os.path.basename(relpath))
    return -1 if m is None else int(m.group(1).upper() == "M")


class Morph2(common.ListBuilder):
    name = "morph2"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "age": common.scalar(),
        "gender": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = os.path.join(manual_dir, "label", "RANDOM_80_20", f"{split}.txt")
        out = []
        for i, f in common.split_label_lines(path, f"MORPH2 {split} list", "'relpath age'"):
            if not f[1].isdigit():
                raise common.malformed(path, i, "'relpath age' with an integer age", " ".join(f))
            out.append((f[0], {"age": int(f[1]), "gender": gender_from_name(f[0])}))
        return out
