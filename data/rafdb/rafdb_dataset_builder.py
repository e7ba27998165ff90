"""RAF-DB: `label.txt` lines `<name> <1..7>`, `train_*`/`test_*` names, images `data/<name>`."""

import os
from typing import ClassVar

from data import common

TO_AFFECTNET = (-1, 3, 4, 5, 1, 2, 6, 0)  # RAF 1 Surprise .. 7 Neutral -> AffectNet ids


class Rafdb(common.ListBuilder):
    name = "rafdb"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "label": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = os.path.join(manual_dir, "label.txt")
        out = []
        for i, f in common.split_label_lines(path, "the RAF-DB label.txt", "'<name> <1..7>'", " "):
            if not f[1].isdigit() or not 1 <= int(f[1]) <= 7:
                raise common.malformed(path, i, "'<name> <1..7>'", " ".join(f))
            if f[0].split("_")[0] == split:
                out.append((f[0], {"label": TO_AFFECTNET[int(f[1])]}))
        return out
