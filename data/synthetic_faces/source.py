"""Synthetic faces as grain random-access sources, one view per Faceptor dataset name.

`SyntheticFaces("ibug300w", "train")[i]` returns the same raw record layout the TFDS builder of
that dataset yields (read by the task files' transforms, `faceptor_jax/tasks/`), rendered on the
fly, deterministically from (seed, split, i). `render_full(...)` returns every label at once
(the TFDS synthetic build).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.synthetic_faces import draw, render
from data.synthetic_faces import geometry as geo
from faceptor_jax import datasets

_SPLIT_OFFSET = {"train": 0, "test": 1_000_003}


@dataclasses.dataclass(frozen=True)
class Layout:
    size: int  # raw image side
    face_scale: float  # face unit / image side
    jitter: float  # std of the face-centre offset / image side
    fields: tuple  # record fields produced (besides image)


_SMALL = 112
# Aligned 112 crops: the mean face's 5 points fitted onto the ArcFace template give a face unit of
# 0.53 side, centred 0.04 side below the middle (make_sample: 0.03), as in MS1MV3-style crops.
_ALIGNED = 0.53
DATASET_LAYOUTS: dict[str, Layout] = {
    "ms1mv3": Layout(_SMALL, _ALIGNED, 0.02, ("label",)),
    "ms1mv2": Layout(_SMALL, _ALIGNED, 0.02, ("label",)),
    # SwinFace's age mix: each record has gender too (1 male, 0 female), as the builds do
    "adience": Layout(_SMALL, _ALIGNED, 0.03, ("age", "gender")),
    "imdb": Layout(_SMALL, _ALIGNED, 0.03, ("age", "gender")),
    "wiki": Layout(_SMALL, _ALIGNED, 0.03, ("age", "gender")),
    "clap2015": Layout(_SMALL, _ALIGNED, 0.03, ("age",)),
    "fgnet": Layout(_SMALL, _ALIGNED, 0.03, ("age",)),
    "morph2": Layout(_SMALL, _ALIGNED, 0.03, ("age", "gender")),
    "utkface": Layout(_SMALL, _ALIGNED, 0.03, ("age",)),
    "celeba": Layout(_SMALL, _ALIGNED, 0.03, ("attributes",)),
    "affectnet": Layout(_SMALL, _ALIGNED, 0.03, ("expression",)),
    "rafdb": Layout(_SMALL, _ALIGNED, 0.03, ("expression",)),
    "ferplus": Layout(_SMALL, _ALIGNED, 0.03, ("expression",)),
    "celebamask_hq": Layout(512, 0.3, 0.02, ("mask_celebamask_hq",)),
    "lapa": Layout(512, 0.26, 0.05, ("mask_lapa", "landmarks_106")),
    "ibug300w": Layout(512, 0.2, 0.08, ("landmarks_68", "box")),
    "cofw": Layout(512, 0.2, 0.08, ("landmarks_29", "box")),
    "wflw": Layout(512, 0.2, 0.08, ("landmarks_98", "box")),
    "aflw19": Layout(512, 0.2, 0.08, ("landmarks_19", "box")),
}
VERIFICATION = datasets.VERIFICATION_SETS
# raw-record key the pipeline expects <- key of render_full's output
_RENAME = {"expression": "label", "mask_celebamask_hq": "mask", "mask_lapa": "mask"}
_RENAME |= {f"landmarks_{k}": "landmarks" for k in (68, 98, 29, 19, 106)}


def render_full(
    seed: int,
    index: int,
    size: int = 512,
    num_identities: int = 1000,
    face_scale: float = 0.3,
    jitter: float = 0.03,
    masks: bool = True,
    identity: int | None = None,
) -> dict[str, np.ndarray | int]:
    """Every label of one synthetic face. Landmarks/box are in image pixels; box is y1,x1,y2,x2."""
    sample = render.make_sample(seed, index, size, num_identities, face_scale, jitter, identity)
    ident = render.make_identity(seed, sample.identity)
    image, mask_pair = draw.draw(
        sample, ident, size, masks, np.random.default_rng([seed, index, 1])
    )
    out: dict = {"image": image, "label": sample.identity, "identity": sample.identity}
    out |= {"age": sample.age, "expression": sample.expression, "gender": int(ident.male)}
    out["attributes"] = render.attributes(sample, ident)
    for k, fn in geo.LANDMARK_SETS.items():
        out[f"landmarks_{k}"] = render.to_pixels(sample, fn(sample.shape))
    cx, cy = sample.centre
    half = 1.3 * sample.scale
    out["box"] = np.array([cy - half, cx - half, cy + half, cx + half], np.float32)
    if mask_pair is not None:
        out["mask_celebamask_hq"], out["mask_lapa"] = mask_pair
    return out


class SyntheticFaces:
    """Random-access source (len, [i]) of raw records for one dataset name and split."""

    def __init__(
        self,
        dataset: str,
        split: str = "train",
        length: int = 10_000,
        seed: int = 0,
        num_identities: int = 1000,
        size: int | None = None,
        cache: bool = False,
    ):
        """`cache`: keep every rendered record (small sets read many times: rendering is the
        slow part of a CPU demo run; a 4096-face 64-px set is ~50 MB)."""
        if dataset not in DATASET_LAYOUTS and dataset not in VERIFICATION:
            valid = ", ".join([*DATASET_LAYOUTS, *VERIFICATION])
            raise KeyError(f"no synthetic layout for {dataset!r}; valid: {valid}")
        if split not in _SPLIT_OFFSET:
            raise KeyError(f"split {split!r}: synthetic faces have {list(_SPLIT_OFFSET)}")
        self.dataset, self.split, self.length = dataset, split, length
        self.seed = seed + _SPLIT_OFFSET[split] + 7 * (hash_name(dataset) % 100_000)
        self.identity_seed = seed  # identities are shared by every dataset and split
        self.num_identities = num_identities
        layout = DATASET_LAYOUTS.get(dataset, DATASET_LAYOUTS["ms1mv3"])
        self.layout = dataclasses.replace(layout, size=size or layout.size)
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def _render(self, index: int, identity: int | None = None) -> dict:
        lay = self.layout
        masks = any(f.startswith("mask") for f in lay.fields)
        return render_full(
            self.seed,
            index,
            lay.size,
            self.num_identities,
            lay.face_scale,
            lay.jitter,
            masks,
            identity,
        )

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} records")
        if self._cache is None:
            return self._record(index)
        if index not in self._cache:  # a racing thread may render it twice: same result
            record = self._record(index)
            for v in record.values():
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)  # shared by every later read: no in-place edits
            self._cache[index] = record
        return self._cache[index]

    def _record(self, index: int) -> dict:
        if self.dataset in VERIFICATION:  # pairs: even index = same identity
            a = self._render(2 * index)
            same = index % 2 == 0
            other = a["identity"] if same else (a["identity"] + 1) % self.num_identities
            b = self._render(2 * index + 1, identity=other)
            return {"image_a": a["image"], "image_b": b["image"], "issame": int(same)}
        full = self._render(index)
        out = {"image": full["image"]}
        for f in self.layout.fields:
            out[_RENAME.get(f, f)] = full[f]
        return out


def hash_name(name: str) -> int:
    """Stable (process-independent) small hash of a dataset name."""
    return sum((i + 1) * ord(c) for i, c in enumerate(name))
