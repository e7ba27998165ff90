"""MS1MV3: `train.rec` + `train.idx`; record 0's header gives the sample range (flag > 0)."""

import os
from typing import ClassVar

import numpy as np

from data import common, recordio


class Ms1mv3(common.ManualBuilder):
    name = "ms1mv3"
    SPLITS = ("train",)
    FEATURES: ClassVar[dict] = {"image": common.image_feature(), "label": common.scalar()}

    def check_layout(self, manual_dir):
        common.need(os.path.join(manual_dir, "train.rec"), "the MS1MV3 RecordIO data")
        common.need(os.path.join(manual_dir, "train.idx"), "the MS1MV3 RecordIO index")

    def examples(self, manual_dir, split, corrupt):
        rec = recordio.IndexedRecordIO(
            os.path.join(manual_dir, "train.idx"), os.path.join(manual_dir, "train.rec")
        )
        (flag, label, _, _), _ = recordio.unpack(rec.read_idx(0))
        keys = range(1, int(label[0])) if flag > 0 else [k for k in rec.keys if k != 0]
        for key in keys:
            (_, label, _, _), image = recordio.unpack(rec.read_idx(key))
            ident = int(np.ravel(label)[0])
            if corrupt.check(image, f"{rec.rec_path}#{key}") is None:
                continue
            yield key, {"image": image, "label": ident}
        rec.close()
