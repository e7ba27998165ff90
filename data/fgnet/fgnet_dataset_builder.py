"""FG-NET: the `FGNET/` folder of the official zip as manual_dir; its `images/` are read.

File names are `<subject:3 digits>A<age:2 digits>[a-z]?.JPG` (e.g. `001A02.JPG`, `010A07a.JPG`);
the `points/` annotations are not used. One split, `test` (SwinFace evaluates on all 1,002
images); `subject` allows leave-one-person-out. Records: image, filename, age, subject.
"""

import os
import re
from typing import ClassVar

from data import common

_NAME = re.compile(r"^(\d{3})A(\d{2})[a-z]?\.jpe?g$", re.IGNORECASE)


class Fgnet(common.ManualBuilder):
    name = "fgnet"
    SPLITS = ("test",)
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "filename": common.text(),
        "age": common.scalar(),
        "subject": common.scalar(),
    }

    def check_layout(self, manual_dir):
        common.need(os.path.join(manual_dir, "images"), "the FG-NET images/ folder")

    def examples(self, manual_dir, split, corrupt):
        folder = os.path.join(manual_dir, "images")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg")))
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise common.ManualDownloadError(
                f"{folder}: {len(bad)} file(s) not named '<subject>A<age>[a-z].JPG', e.g. {bad[:3]}"
            )
        if not names:
            raise common.ManualDownloadError(f"{folder}: empty; expected the 1,002 FG-NET images")
        for name in names:
            subject, age = _NAME.match(name).groups()
            yield (
                name,
                {
                    "image_path": os.path.join(folder, name),
                    "filename": name,
                    "age": int(age),
                    "subject": int(subject),
                },
            )
