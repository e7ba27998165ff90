"""AffectNet: `data/<relpath>`, `label/{train,test}.txt` lines `relpath label`; labels < 7 kept."""

import os
from typing import ClassVar

from data import common


class Affectnet(common.ListBuilder):
    name = "affectnet"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "label": common.scalar(),
        "filename": common.text(),
    }

    def items(self, manual_dir, split):
        path = os.path.join(manual_dir, "label", f"{split}.txt")
        out = []
        for i, f in common.split_label_lines(path, f"AffectNet {split} list", "'relpath label'"):
            if not f[1].lstrip("-").isdigit():
                raise common.malformed(
                    path, i, "'relpath label' with an integer label", " ".join(f)
                )
            if int(f[1]) < 7:
                out.append((f[0], {"label": int(f[1])}))
        return out
