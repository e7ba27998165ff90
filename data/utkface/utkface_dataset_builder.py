"""UTKFace: `data/<file>`, `label/{train,test}.csv` with a header; column 1 file, column 2 age."""

import os
from typing import ClassVar

from data import common


class Utkface(common.ListBuilder):
    name = "utkface"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "age": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = os.path.join(manual_dir, "label", f"{split}.csv")
        out = []
        expected = "'<index>,<file>,<age>,...'"
        for i, f in common.split_label_lines(path, f"UTKFace {split} csv", expected, ",", skip=1):
            if len(f) < 3 or not f[2].strip().isdigit():
                raise common.malformed(path, i, expected, ",".join(f))
            out.append((f[1].strip(), {"age": int(f[2])}))
        return out
