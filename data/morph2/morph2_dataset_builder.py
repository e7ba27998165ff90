"""MORPH2: `data/<relpath>`, `label/RANDOM_80_20/{train,test}.txt` lines `relpath age`."""

import os
from typing import ClassVar

from data import common


class Morph2(common.ListBuilder):
    name = "morph2"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "age": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = os.path.join(manual_dir, "label", "RANDOM_80_20", f"{split}.txt")
        out = []
        for i, f in common.split_label_lines(path, f"MORPH2 {split} list", "'relpath age'"):
            if not f[1].isdigit():
                raise common.malformed(path, i, "'relpath age' with an integer age", " ".join(f))
            out.append((f[0], {"age": int(f[1])}))
        return out
