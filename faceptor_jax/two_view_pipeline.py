"""Two augmented views per image for self-supervised pretraining (FRA), as a grain MapDataset.

Both views of an image come from one record; each view has its own chain (torchvision's order):
RandomResizedCrop(size, scale (0.2, 1), ratio (3/4, 4/3), bilinear) -> horizontal flip (0.5) ->
ColorJitter(brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with p 0.8, its four ops in
random order -> grayscale (p 0.2) -> Gaussian blur (PIL radius σ ~ U(0.1, 2)) with p 1.0 for
view 1 and 0.1 for view 2 -> solarize (threshold 128) with p 0 for view 1 and 0.2 for view 2 ->
[0, 1] -> normalised with the VGGFace2 mean/std.

Sampling is the existing pipeline's (`input_pipeline.original_permutation`: one shuffle of the
source tiled to num_steps·B, step s takes slots s·B … s·B + B − 1). Each view's RNG is keyed by
(seed, view stream, step, slot in the global batch), so the global batch at a step is the same
for any number of processes and meshes, and the two views draw independent parameters. Records
are any random-access source whose `[i]["image"]` is an HWC uint8 array or encoded image bytes;
every other field (labels) is ignored.
"""

from __future__ import annotations

import io
import math

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from faceptor_jax import input_pipeline

MEAN = np.array([0.5231, 0.4044, 0.3489], np.float32)  # VGGFace2 statistics
STD = np.array([0.2536, 0.2194, 0.2070], np.float32)
BLUR_P = (1.0, 0.1)  # view 1, view 2
SOLARIZE_P = (0.0, 0.2)
VIEW_STREAMS = (7101, 7102)  # the views' ids in the RNG key


def _pil(image) -> Image.Image:
    if isinstance(image, (bytes, np.bytes_)):
        return Image.open(io.BytesIO(bytes(image))).convert("RGB")
    return Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")


def random_resized_crop_box(
    rng: np.random.Generator, h: int, w: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params: (top, left, height, width)."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    in_ratio = w / h  # fallback: the central crop at the clamped ratio
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _hue(img: Image.Image, shift: float) -> Image.Image:
    """torchvision's PIL adjust_hue: shift the uint8 H channel by shift·255 (mod 256)."""
    h, s, v = img.convert("HSV").split()
    hue = np.asarray(h, np.uint8).astype(np.int16) + np.int16(round(shift * 255))
    h = Image.fromarray((hue % 256).astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(
    rng: np.random.Generator, img: Image.Image, b=0.4, c=0.4, s=0.2, hue=0.1
) -> Image.Image:
    """ColorJitter: factors drawn first, then applied in a random order of the four ops."""
    order = rng.permutation(4)
    fb, fc, fs = (rng.uniform(max(0.0, 1 - x), 1 + x) for x in (b, c, s))
    fh = rng.uniform(-hue, hue)
    for op in order:
        if op == 0:
            img = ImageEnhance.Brightness(img).enhance(fb)
        elif op == 1:
            img = ImageEnhance.Contrast(img).enhance(fc)
        elif op == 2:
            img = ImageEnhance.Color(img).enhance(fs)
        else:
            img = _hue(img, fh)
    return img


def augment_view(rng: np.random.Generator, image, size: int, view: int) -> np.ndarray:
    """One view (0 or 1) of `image` -> normalised float32 [size, size, 3]."""
    img = _pil(image)
    top, left, ch, cw = random_resized_crop_box(rng, img.height, img.width)
    img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.8:
        img = color_jitter(rng, img)
    if rng.random() < 0.2:
        img = img.convert("L").convert("RGB")
    if rng.random() < BLUR_P[view]:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))
    if rng.random() < SOLARIZE_P[view]:
        img = ImageOps.solarize(img, threshold=128)
    x = np.asarray(img, np.float32) / 255.0
    return (x - MEAN) / STD


def two_views(seed: int, step: int, slot: int, image, size: int) -> dict[str, np.ndarray]:
    """Both views of the image at (step, slot): {"view1", "view2"} [size, size, 3] float32."""
    out = {}
    for v in (0, 1):
        rng = np.random.default_rng([seed, VIEW_STREAMS[v], step, slot])
        out[f"view{v + 1}"] = augment_view(rng, image, size, v)
    return out


class _Elements:
    """k-th local element -> the two views of its global (step, slot) (picklable)."""

    def __init__(self, source, batch_size, size, num_steps, seed, process_index, process_count):
        self.source, self.batch_size, self.size = source, batch_size, size
        self.num_steps, self.seed = num_steps, seed
        self.local = batch_size // process_count
        self.offset = process_index * self.local

    def __call__(self, k: int) -> dict[str, np.ndarray]:
        step, j = divmod(k, self.local)
        slot = self.offset + j
        perm = input_pipeline.original_permutation(
            len(self.source), self.num_steps * self.batch_size, self.seed
        )
        idx = int(perm[step * self.batch_size + slot])
        views = two_views(self.seed, step, slot, self.source[idx]["image"], self.size)
        return views | {"index": np.int32(idx)}


def two_view_dataset(
    source,
    batch_size: int,
    size: int,
    num_steps: int,
    *,
    seed: int,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.MapDataset:
    """This process's local two-view batches, one per step (the global batch split evenly over
    the processes): {"view1", "view2": [b, size, size, 3], "index": [b]}."""
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    if batch_size % pc:
        raise ValueError(f"batch {batch_size} is not divisible by the {pc} processes")
    fn = _Elements(source, batch_size, size, num_steps, seed, pi, pc)
    ds = grain.MapDataset.range(num_steps * fn.local).map(fn)
    return ds.batch(fn.local, drop_remainder=True)


def to_global(batch, mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Local numpy batch -> global jax.Arrays, the batch dimension over the data axes."""
    sharding = NamedSharding(mesh, PartitionSpec(input_pipeline.BATCH_AXES))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }
