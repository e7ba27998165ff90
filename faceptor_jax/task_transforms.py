"""Per-dataset train/test transforms: a raw record -> one model-ready example (numpy).

Raw records (what a TFDS builder or the synthetic source yields; images may be encoded bytes):
  recognition   image [H,W,3] uint8, label int
  age           image, age int
  attributes    image, attributes [40] int (1/0, -1 ignore)
  expression    image, label int (AffectNet ids 0..6)
  parsing       image, mask [H,W] uint8; LaPa also landmarks [106,2]
  landmarks     image, landmarks [K,2] float32 (x, y), box [4] (y1, x1, y2, x2)
  verification  image_a, image_b, issame int
Examples follow the batch contract (FACEPTOR_SPEC.md §4, §6): `image` float32 [S,S,3] normalised,
labels as in DATASETS' task; every example also carries `index` (its source index).

Train-time augmentation policies: "original" is the original's (RandAugment + RandomErasing for
the 112-px attribute-type tasks, colour/occlusion augmentation for the dense tasks); "light" keeps
only the flips and geometric jitter, for short runs (the tiny config) where the original's
augmentation hides the little that a few hundred steps can learn.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from faceptor_jax import augment
from faceptor_jax import preprocess as pp


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    task: str  # recognition | verification | age | attributes | expression | parsing | landmarks
    num_outputs: int  # identities, age bins, attributes, classes or landmarks
    scale_mu: float = 1.0  # landmarks: face scale in the crop
    warp_factor: float = 0.0  # parsing: tanh-warp (LaPa 0.8)
    train_split: str = "train"
    test_split: str = "test"


_VERIFICATION = DatasetSpec("verification", 2, train_split="", test_split="test")
DATASETS: dict[str, DatasetSpec] = {
    "ms1mv3": DatasetSpec("recognition", 93431, test_split=""),
    "lfw": _VERIFICATION,
    "cfp_fp": _VERIFICATION,
    "agedb_30": _VERIFICATION,
    "calfw": _VERIFICATION,
    "cplfw": _VERIFICATION,
    "mlfw": _VERIFICATION,
    "morph2": DatasetSpec("age", 101),
    "utkface": DatasetSpec("age", 101),
    "celeba": DatasetSpec("attributes", 40),
    "affectnet": DatasetSpec("expression", 7),
    "rafdb": DatasetSpec("expression", 7),
    "ferplus": DatasetSpec("expression", 7),
    "celebamask_hq": DatasetSpec("parsing", 19),
    "lapa": DatasetSpec("parsing", 11, warp_factor=0.8),
    "ibug300w": DatasetSpec("landmarks", 68, scale_mu=0.8, test_split="valid_challenge"),
    "cofw": DatasetSpec("landmarks", 29, scale_mu=0.8),
    "wflw": DatasetSpec("landmarks", 98, scale_mu=0.8, test_split="test_blur"),
    "aflw19": DatasetSpec("landmarks", 19, scale_mu=1.0, test_split="test_frontal"),
}
IMAGE_SIZE = {"recognition": 112, "verification": 112, "age": 112, "attributes": 112}
IMAGE_SIZE |= {"expression": 112, "parsing": 512, "landmarks": 512}
POLICIES = ("original", "light")


def check_policy(policy: str, name: str = "augmentation policy") -> None:
    """ValueError naming `name` unless `policy` is one of POLICIES."""
    if policy not in POLICIES:
        raise ValueError(f"{name} {policy!r}: expected one of {POLICIES}")


def spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[dataset]


def decode_image(value, mode: str = "RGB") -> np.ndarray:
    """Encoded bytes (PNG/JPEG) or an array -> uint8 numpy ([H,W,3] for RGB, [H,W] for L)."""
    if isinstance(value, bytes | np.bytes_):
        img = Image.open(io.BytesIO(bytes(value)))
        return np.asarray(img.convert(mode))
    arr = np.asarray(value)
    if mode == "RGB" and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


# ----------------------------------------------------------------------------- 112-px tasks
def _small(rng, image, train: bool, size: int, policy: str, recognition: bool = False):
    if not train:
        return augment.attribute_test(image, size)
    if recognition or policy == "light":  # resize + horizontal flip
        return augment.recognition_train(rng, image, size)
    return augment.attribute_train(rng, image, size)


def _recognition(record, rng, train, size, _spec, policy):
    image = _small(rng, decode_image(record["image"]), train, size, policy, recognition=True)
    return {"image": image, "label": np.int32(record["label"])}


def _age(record, rng, train, size, _spec, policy):
    image = _small(rng, decode_image(record["image"]), train, size, policy)
    return {"image": image, "age": np.float32(record["age"])}


def _attributes(record, rng, train, size, _spec, policy):
    image = _small(rng, decode_image(record["image"]), train, size, policy)
    return {"image": image, "attributes": np.asarray(record["attributes"], np.int32)}


def _expression(record, rng, train, size, _spec, policy):
    image = _small(rng, decode_image(record["image"]), train, size, policy)
    return {"image": image, "label": np.int32(record["label"])}


def _verification(record, rng, train, size, _spec, policy):
    del rng, train, policy
    a = augment.attribute_test(decode_image(record["image_a"]), size)
    b = augment.attribute_test(decode_image(record["image_b"]), size)
    return {"image_a": a, "image_b": b, "issame": np.int32(record["issame"])}


# ----------------------------------------------------------------------------- 512-px tasks
def _clip_norm(image01: np.ndarray) -> np.ndarray:
    return pp.normalize(image01, pp.CLIP_MEAN, pp.CLIP_STD)


def _parsing(record, rng, train, size, s: DatasetSpec, policy: str):
    image = pp.to_unit_float(decode_image(record["image"]))
    mask = decode_image(record["mask"], "L")
    if s.warp_factor > 0:  # LaPa: 5-point alignment onto the template
        pts = np.asarray(record["landmarks"], np.float32)[list(pp.LAPA_ALIGN_INDICES)]
        matrix = pp.face_align_matrix(pts, size)
    else:  # CelebAMask-HQ: aligned 512² images; a resize (identity at 512), align_corners=False
        h, w = image.shape[:2]
        matrix = pp.crop_matrix(np.array([-0.5, -0.5, h - 0.5, w - 0.5]), size)
    if not train:
        coords = pp.transform_map(matrix, (size, size), s.warp_factor, size)
        out = {"image": _clip_norm(pp.remap(image, coords, "bilinear"))}
        out["matrix"] = np.asarray(matrix, np.float32)
        if s.warp_factor > 0:  # LaPa is scored at the original resolution (test batch 1)
            return out | {"mask": mask.astype(np.int32)}
        return out | {"mask": pp.remap(mask, coords, "nearest").astype(np.int32)}
    matrix = pp.random_similarity(rng, size, 0.01, 0.314, 0.1) @ matrix
    coords = pp.transform_map(matrix, (size, size), s.warp_factor, size)
    image = pp.remap(image, coords, "bilinear")
    mask = pp.remap(mask, coords, "nearest")
    if policy == "original":
        image = augment.dense_color_aug(rng, image, occlusion=False)
    return {"image": _clip_norm(image), "mask": mask.astype(np.int32)}


def _landmarks(record, rng, train, size, s: DatasetSpec, policy: str):
    image = pp.to_unit_float(decode_image(record["image"]))
    pts = np.asarray(record["landmarks"], np.float32)
    box = np.asarray(record["box"], np.float32)
    matrix = pp.crop_matrix(box, size)
    c = (size - 1) / 2.0
    if train:
        jitter = pp.random_similarity(
            rng, size, 0.05, 0.174, 0.1, s.scale_mu, rot_normal=False, scale_normal=False
        )
    else:
        jitter = pp.similarity_matrix(0.0, s.scale_mu, (0.0, 0.0), (c, c))
    matrix = jitter @ matrix
    warped = pp.warp(image, matrix, size)
    out = {"landmarks": pp.source_to_warped(pts, matrix, 0.0, size)}
    if train:
        if policy == "original":
            warped = augment.dense_color_aug(rng, warped, occlusion=True)
        return out | {"image": _clip_norm(warped)}
    out |= {"image": _clip_norm(warped), "crop_matrix": matrix.astype(np.float32)}
    return out | {"landmarks_orig": pts, "box": box}


_TASK_FNS: Mapping[str, Callable] = {
    "recognition": _recognition,
    "verification": _verification,
    "age": _age,
    "attributes": _attributes,
    "expression": _expression,
    "parsing": _parsing,
    "landmarks": _landmarks,
}


def transform(
    dataset: str,
    record: Mapping,
    rng: np.random.Generator,
    train: bool,
    size: int | None = None,
    policy: str = "original",
) -> dict[str, np.ndarray]:
    """Apply `dataset`'s train or test transform to one raw record (see module docstring)."""
    check_policy(policy)
    s = spec(dataset)
    size = size or IMAGE_SIZE[s.task]
    return _TASK_FNS[s.task](record, rng, train, size, s, policy)
