"""MS1MV2 = InsightFace `faces_emore` (5,822,653 images of 85,742 identities, 112×112 aligned).

Download `faces_emore` from the InsightFace dataset zoo and pass its folder as manual_dir; the
builder reads `train.rec` + `train.idx` (the `.bin` verification files beside them are the
`verification/<set>` builder's) and checks `property` (`85742,112,112`) when present.
"""

from data import rec_builder


class Ms1mv2(rec_builder.RecordIOBuilder):
    name = "ms1mv2"
    DISPLAY = "MS1MV2 (faces_emore)"
    NUM_CLASSES = 85742
