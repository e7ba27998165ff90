"""IJB-C from insightface's IJB release: the `IJBC/` folder (from `IJB_release.tar`) as manual_dir.

Layout read (what insightface's `eval_ijbc.py` reads):
  loose_crop/<name>.jpg                  469,375 loose face crops
  meta/ijbc_name_5pts_score.txt          `name x1 y1 … x5 y5 face_score`, one line per crop
  meta/ijbc_face_tid_mid.txt             `name template_id media_id`, row-aligned with the above
  meta/ijbc_template_pair_label.txt      `template_a template_b label` (15,658,489 pairs)

Two configs, read back with `open_tfds(OUT, "ijbc/faces" | "ijbc/pairs", "test")`:
  faces  one record per crop: the original JPEG bytes, its landmarks [5,2] (x, y pixels of the
         loose crop; the 112-px ArcFace alignment happens at evaluation), face_score, template,
         media and `index` (its row in the meta files; records are stored in that order).
  pairs  the template pairs in chunks of PAIRS_PER_RECORD (15.6M one-pair records would cost
         minutes to write and read for three integers each): template_a, template_b, label [n].
`faceptor_jax.ijbc` turns the embeddings of the faces and the pairs into TAR@FAR.
"""

import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data import common
from faceptor_jax import ijbc

PAIRS_PER_RECORD = 100_000
_LANDMARKS = "meta/ijbc_name_5pts_score.txt"
_TID_MID = "meta/ijbc_face_tid_mid.txt"
_PAIRS = "meta/ijbc_template_pair_label.txt"
_FACES = {
    "image": common.image_feature(),
    "filename": common.text(),
    "landmarks": common.tensor((5, 2)),
    "face_score": common.scalar(np.float32),
    "template": common.scalar(),
    "media": common.scalar(),
    "index": common.scalar(),
}
_PAIR_CHUNK = {k: common.tensor((None,), np.int64) for k in ("template_a", "template_b", "label")}


class Ijbc(common.ManualBuilder):
    name = "ijbc"
    BUILDER_CONFIGS: ClassVar[list] = [tfds.core.BuilderConfig(name=n) for n in ("faces", "pairs")]
    SPLITS = ("test",)

    def _info(self) -> tfds.core.DatasetInfo:
        features = _FACES if self.builder_config.name == "faces" else _PAIR_CHUNK
        return tfds.core.DatasetInfo(  # not shuffled: records keep the meta files' row order
            builder=self, features=tfds.features.FeaturesDict(features), disable_shuffling=True
        )

    def check_layout(self, manual_dir):
        if self.builder_config.name == "pairs":
            common.need(os.path.join(manual_dir, _PAIRS), "the IJB-C template pair list")
            return
        common.need(os.path.join(manual_dir, "loose_crop"), "the IJB-C loose crop folder")
        common.need(os.path.join(manual_dir, _LANDMARKS), "the IJB-C 5-point landmark list")
        common.need(os.path.join(manual_dir, _TID_MID), "the IJB-C template/media list")

    def examples(self, manual_dir, split, corrupt):
        try:
            if self.builder_config.name == "pairs":
                yield from _pair_chunks(os.path.join(manual_dir, _PAIRS))
            else:
                yield from _faces(manual_dir)
        except ijbc.IJBCFormatError as e:
            raise common.ManualDownloadError(str(e)) from e


def _faces(manual_dir: str):
    names, points, scores = ijbc.read_landmarks(os.path.join(manual_dir, _LANDMARKS))
    tid_path = os.path.join(manual_dir, _TID_MID)
    names2, templates, medias = ijbc.read_template_media(tid_path)
    if len(names2) != len(names):
        raise common.ManualDownloadError(
            f"{tid_path}: {len(names2)} lines, expected {len(names)} (one per line of {_LANDMARKS})"
        )
    for i in np.flatnonzero(names != names2)[:1]:
        raise common.malformed(tid_path, i + 1, f"image {names[i]!r} (row-aligned)", names2[i])
    for i, name in enumerate(names):
        yield (
            i,
            {
                "image_path": os.path.join(manual_dir, "loose_crop", name),
                "filename": name,
                "landmarks": points[i],
                "face_score": scores[i],
                "template": templates[i],
                "media": medias[i],
                "index": i,
            },
        )


def _pair_chunks(path: str):
    template_a, template_b, label = ijbc.read_template_pairs(path)
    for k, s in enumerate(range(0, len(label), PAIRS_PER_RECORD)):
        chunk = slice(s, s + PAIRS_PER_RECORD)
        yield k, {"template_a": template_a[chunk], "template_b": template_b[chunk],
                  "label": label[chunk]}  # fmt: skip
