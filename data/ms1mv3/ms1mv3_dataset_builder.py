"""MS1MV3 (`ms1m-retinaface-t1`): `train.rec` + `train.idx` (+ optional `property`)."""

from data import rec_builder


class Ms1mv3(rec_builder.RecordIOBuilder):
    name = "ms1mv3"
    DISPLAY = "MS1MV3"
    NUM_CLASSES = 93431
