"""The two face crops of the task types and the image steps their transforms share.

ARCFACE: insightface's 112×112 ArcFace 5-point template, pixels normalised with mean/std 0.5
(recognition, age, attributes, expression; their datasets ship such crops). FACE5: the 5-point
face template of `preprocess.face_align_matrix` with CLIP statistics (parsing, landmarks). A type's
training transform and predict both take its crop from here, so the two cannot disagree.

Augmentation policies: "original" is the original's (RandAugment + RandomErasing for the 112-px
attribute-type tasks, colour/occlusion augmentation for the dense tasks); "light" keeps only the
flips and geometric jitter, for short runs (the tiny config) where the original's augmentation
hides the little that a few hundred steps can learn.
"""

import io

import numpy as np
from PIL import Image

from faceptor_jax import augment, preprocess
from faceptor_jax.tasks.spec import Crop

# insightface's 112×112 ArcFace reference points, in `align.Detection.points` order.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)


def arcface_matrix(points5: np.ndarray, size: int = 112) -> np.ndarray:
    """5 points -> 3×3 similarity onto the ArcFace template scaled to a size² crop."""
    return preprocess.umeyama_similarity(points5, ARCFACE_TEMPLATE * (size / 112.0))


ARCFACE = Crop(
    name="arcface", align=arcface_matrix, mean=preprocess.HALF_MEAN, std=preprocess.HALF_STD
)
FACE5 = Crop(
    name="face5",
    align=preprocess.face_align_matrix,
    mean=preprocess.CLIP_MEAN,
    std=preprocess.CLIP_STD,
)
POLICIES = ("original", "light")


def check_policy(policy: str, name: str = "augmentation policy") -> None:
    """ValueError naming `name` unless `policy` is one of POLICIES."""
    if policy not in POLICIES:
        raise ValueError(f"{name} {policy!r}: expected one of {POLICIES}")


def decode_image(value, mode: str = "RGB") -> np.ndarray:
    """Encoded bytes (PNG/JPEG) or an array -> uint8 numpy ([H,W,3] for RGB, [H,W] for L)."""
    if isinstance(value, bytes | np.bytes_):
        img = Image.open(io.BytesIO(bytes(value)))
        return np.asarray(img.convert(mode))
    arr = np.asarray(value)
    if mode == "RGB" and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


def small_image(rng, value, train: bool, size: int, policy: str, flip_only: bool = False):
    """A 112-px-type image (encoded or uint8) -> its normalised [size, size, 3] example image:
    test resize; train resize + flip (`flip_only` or the light policy) or the original's
    RandAugment/RandomErasing pipeline."""
    check_policy(policy)
    image, stats = decode_image(value), (ARCFACE.mean, ARCFACE.std)
    if not train:
        return augment.attribute_test(image, size, *stats)
    if flip_only or policy == "light":  # resize + horizontal flip
        return augment.recognition_train(rng, image, size, *stats)
    return augment.attribute_train(rng, image, size, *stats)


def dense_image(record) -> np.ndarray:
    """A dense-task record's image as float [0, 1] [H, W, 3] (the crop is warped from it)."""
    return preprocess.to_unit_float(decode_image(record["image"]))
