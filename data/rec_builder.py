"""InsightFace recognition sets in MXNet RecordIO (`train.rec` + `train.idx`), shared by builders.

MS1MV2 (`faces_emore`) and MS1MV3 (`ms1m-retinaface-t1`) are written the same way: record 0's
header carries the sample range when its flag is > 0 (labels [first_identity_key, end)), records
1..end-1 hold `IRHeader(label = identity) + JPEG`. An optional `property` file says
`num_classes,height,width`; when present its class count must match the builder's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from data import common, recordio


class RecordIOBuilder(common.ManualBuilder, skip_registration=True):
    """Base of the RecordIO recognition builders; subclasses set name, DISPLAY, NUM_CLASSES."""

    SPLITS = ("train",)
    FEATURES: ClassVar[dict] = {"image": common.image_feature(), "label": common.scalar()}
    DISPLAY: ClassVar[str] = ""
    NUM_CLASSES: ClassVar[int] = 0

    def check_layout(self, manual_dir: str) -> None:
        common.need(os.path.join(manual_dir, "train.rec"), f"the {self.DISPLAY} RecordIO data")
        common.need(os.path.join(manual_dir, "train.idx"), f"the {self.DISPLAY} RecordIO index")
        check_property(os.path.join(manual_dir, "property"), self.NUM_CLASSES)

    def examples(self, manual_dir: str, split: str, corrupt: common.CorruptImages) -> Iterator:
        yield from recordio_examples(manual_dir, corrupt)


def check_property(path: str, num_classes: int) -> None:
    """`property` = 'num_classes,height,width' (optional file); a different class count stops."""
    if not os.path.exists(path):
        return
    fields = common.read_lines(path, "the RecordIO property file")[0].split(",")
    if len(fields) != 3 or not all(f.strip().isdigit() for f in fields):
        raise common.malformed(path, 1, "'num_classes,height,width'", ",".join(fields))
    if int(fields[0]) != num_classes:
        raise common.ManualDownloadError(
            f"{path}: {fields[0]} identities, expected {num_classes} (wrong dataset folder?)"
        )


def recordio_examples(manual_dir: str, corrupt: common.CorruptImages) -> Iterator:
    """(key, {image: JPEG bytes, label: identity}) for every sample record of `train.rec`."""
    rec = recordio.IndexedRecordIO(
        os.path.join(manual_dir, "train.idx"), os.path.join(manual_dir, "train.rec")
    )
    try:
        (flag, label, _, _), _ = recordio.unpack(rec.read_idx(0))
        keys = range(1, int(label[0])) if flag > 0 else [k for k in rec.keys if k != 0]
        for key in keys:
            (_, label, _, _), image = recordio.unpack(rec.read_idx(key))
            ident = int(np.ravel(label)[0])
            if corrupt.check(image, f"{rec.rec_path}#{key}") is None:
                continue
            yield key, {"image": image, "label": ident}
    finally:
        rec.close()
