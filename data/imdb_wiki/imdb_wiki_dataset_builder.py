"""IMDB-WIKI: manual_dir holds the official `imdb_crop/` and/or `wiki_crop/` (faces only tars).

Each folder has `<00..99>/<file>.jpg` and its metadata `imdb.mat` / `wiki.mat` (a struct, one
entry per image): full_path, dob (MATLAB serial date number), photo_taken (year), gender
(1 male, 0 female, NaN unknown), face_score (−inf: no face found, the crop is the whole image),
second_face_score (NaN: no second face). Configs `imdb_wiki/imdb` and `imdb_wiki/wiki`, split
`train`. Records: image, filename (full_path), age = photo year − birth year, taken as of
1 July (int; −1 when the date of birth is invalid or the age falls outside 0…100), gender
(1, 0, −1 unknown), face_score and second_face_score (float32, kept for filtering).
"""

import datetime
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data import common

_FIELDS = ("full_path", "dob", "photo_taken", "gender", "face_score", "second_face_score")
MAX_AGE = 100


def age_at_photo(dob: float, photo_taken: int) -> int:
    """Age in whole years on 1 July of `photo_taken` of someone born on MATLAB datenum `dob`."""
    if not np.isfinite(dob) or int(dob) - 366 < 1:
        return -1
    birth = datetime.date.fromordinal(int(dob) - 366)  # MATLAB day 367 = 0001-01-01
    age = int(photo_taken) - birth.year - (1 if birth.month >= 7 else 0)
    return age if 0 <= age <= MAX_AGE else -1


def read_meta(path: str, key: str) -> dict[str, np.ndarray]:
    """The `.mat` struct `key` -> {field: [N] array}; full_path as str."""
    import scipy.io

    common.need(path, f"the IMDB-WIKI {key}.mat metadata")
    try:
        struct = scipy.io.loadmat(path)[key][0, 0]
        meta = {f: np.ravel(struct[f]) for f in _FIELDS}
    except (KeyError, ValueError, IndexError) as e:
        raise common.ManualDownloadError(
            f"{path}: malformed; expected a struct '{key}' with fields {_FIELDS} ({e!r})"
        ) from e
    meta["full_path"] = np.array([str(np.ravel(p)[0]) for p in meta["full_path"]])
    sizes = {f: len(v) for f, v in meta.items()}
    if len(set(sizes.values())) != 1:
        raise common.ManualDownloadError(f"{path}: fields differ in length: {sizes}")
    return meta


class ImdbWiki(common.ManualBuilder):
    name = "imdb_wiki"
    BUILDER_CONFIGS: ClassVar[list] = [tfds.core.BuilderConfig(name=n) for n in ("imdb", "wiki")]
    SPLITS = ("train",)
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "filename": common.text(),
        "age": common.scalar(),
        "gender": common.scalar(),
        "face_score": common.scalar(np.float32),
        "second_face_score": common.scalar(np.float32),
    }

    def check_layout(self, manual_dir):
        key = self.builder_config.name
        common.need(os.path.join(manual_dir, f"{key}_crop", f"{key}.mat"), f"the {key}.mat file")

    def examples(self, manual_dir, split, corrupt):
        key = self.builder_config.name
        folder = os.path.join(manual_dir, f"{key}_crop")
        meta = read_meta(os.path.join(folder, f"{key}.mat"), key)
        for i, rel in enumerate(meta["full_path"]):
            gender = float(meta["gender"][i])
            yield (
                i,
                {
                    "image_path": os.path.join(folder, rel),
                    "filename": rel,
                    "age": age_at_photo(float(meta["dob"][i]), int(meta["photo_taken"][i])),
                    "gender": int(gender) if np.isfinite(gender) else -1,
                    "face_score": np.float32(meta["face_score"][i]),
                    "second_face_score": np.float32(meta["second_face_score"][i]),
                },
            )
