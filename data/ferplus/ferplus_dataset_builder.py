"""FERPlus: `data/<relpath>`, `label/{train,val,test}.txt` lines `relpath label` (FER+ order).

Contempt maps to AffectNet id 7, outside the 7 expression queries: it is dropped (and counted)."""

import os
from typing import ClassVar

from data import common

TO_AFFECTNET = (0, 1, 3, 2, 6, 5, 4, 7)
_FILES = {"train": ("train", "val"), "test": ("test",)}


class Ferplus(common.ListBuilder):
    name = "ferplus"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "label": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        out, dropped = [], 0
        for part in _FILES[split]:
            path = os.path.join(manual_dir, "label", f"{part}.txt")
            for i, f in common.split_label_lines(path, f"FERPlus {part} list", "'relpath label'"):
                if not f[1].isdigit() or int(f[1]) > 7:
                    raise common.malformed(path, i, "'relpath <0..7>'", " ".join(f))
                label = TO_AFFECTNET[int(f[1])]
                if label >= 7:
                    dropped += 1
                    continue
                out.append((f[0], {"label": label}))
        if dropped:
            print(f"ferplus/{split}: dropped {dropped} contempt sample(s) (no 8th expression)")
        return out
