"""Random photometric augmentations of the original, in numpy/PIL, driven by a numpy Generator.

- Dense tasks (py-blueprint's augmentations): occlusion, noise fusion, gray, gamma, box blur
  on float32 [0,1] HWC images.
- 112-px tasks (timm `create_transform`): RandomResizedCrop(scale=(1,1), ratio=(1,1),
  bicubic), horizontal flip, RandAugment `rand-m9-mstd0.5-inc1` (PIL ops as in timm), RandomErasing
  (p=0.25, 'pixel' mode) after normalisation.
The random draws follow the originals' distributions; the originals' global RNG streams are not
reproduced bit for bit (they depend on worker seeding), only per (seed, index) determinism here.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from faceptor_jax import preprocess

# ----------------------------------------------------------------------------- dense tasks


def random_occlusion(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """py-blueprint RandomOcclusion (h_min .2, h_max .8, w_delta .2), quirks kept."""
    h, w, _ = image.shape
    rh = rng.random() * 0.6 + 0.2
    rw = rh - 0.2 + 0.4 * rng.random()
    cx, cy = int((h - 1) * rng.random()), int((w - 1) * rng.random())
    dh, dw = int(h / 2 * rh), int(w / 2 * rw)
    x0, y0 = max(0, cx - dw // 2), max(0, cy - dh // 2)
    x1, y1 = min(w - 1, cx + dw // 2), min(h - 1, cy + dh // 2)
    image = np.array(image)
    image[y0 : y1 + 1, x0 : x1 + 1, :] = 0
    return image


def noise_fusion(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """img = (1-a) img + a U(0,1) noise, a ~ U(0, 0.5)."""
    noise = rng.random(image.shape)
    alpha = 0.5 * rng.random()
    return ((1 - alpha) * image + alpha * noise).astype(image.dtype)


def rgb_to_gray3(image: np.ndarray) -> np.ndarray:
    """cv2 RGB2GRAY (0.299, 0.587, 0.114) replicated to 3 channels."""
    g = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    return np.repeat(g[..., None].astype(image.dtype), 3, axis=-1)


def random_gray(rng: np.random.Generator, image: np.ndarray, p: float = 0.1) -> np.ndarray:
    return rgb_to_gray3(image) if rng.uniform() < p else image


def random_gamma(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Clip to [0,1], then sqrt / identity / square, chosen uniformly."""
    image = np.clip(image, 0, 1)
    gamma = rng.choice([-1, 0, 1])
    if gamma == -1:
        return np.sqrt(image)
    return np.square(image) if gamma == 1 else image


def box_blur(image: np.ndarray, k: int) -> np.ndarray:
    """cv2.blur(image, (k, k)): mean over a k×k window, anchor k//2, BORDER_REFLECT_101."""
    lo, hi = k // 2, k - 1 - k // 2
    pad = np.pad(image.astype(np.float64), ((lo, hi), (lo, hi), (0, 0)), mode="reflect")
    c = np.cumsum(np.cumsum(pad, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0), (0, 0)))
    h, w = image.shape[:2]
    s = c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]
    return (s / (k * k)).astype(image.dtype)


def random_blur(rng: np.random.Generator, image: np.ndarray, scale: float = 0.01) -> np.ndarray:
    k = int((image.shape[0] + image.shape[1]) / 2 * rng.uniform(0.0, scale))
    return box_blur(np.clip(image, 0, 1.0), k) if k > 1 else image


def dense_color_aug(rng: np.random.Generator, image: np.ndarray, occlusion: bool) -> np.ndarray:
    """[occlusion, p=.5 noise fusion (landmarks only)] -> gray -> gamma -> blur."""
    if occlusion:
        image = random_occlusion(rng, image)
        if rng.random() < 0.5:
            image = noise_fusion(rng, image)
    return random_blur(rng, random_gamma(rng, random_gray(rng, image)))


# ----------------------------------------------------------------------------- timm RandAugment
_FILL = (128, 128, 128)  # timm img_mean = round(255 * 0.5)
_BICUBIC = Image.Resampling.BICUBIC


def _negate(rng: np.random.Generator, v: float) -> float:
    return -v if rng.random() > 0.5 else v


def _affine(img: Image.Image, coeffs) -> Image.Image:
    affine = Image.Transform.AFFINE
    return img.transform(img.size, affine, coeffs, resample=_BICUBIC, fillcolor=_FILL)


def _solarize_add(img: Image.Image, add: int, thresh: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    """Keep the top `bits` bits. Magnitude 10 gives 0 bits (an all-black image), which the
    Pillow of timm's day produced and current Pillow refuses ('bits must be ... 1 and 8')."""
    if bits >= 8:
        return img
    if bits <= 0:
        return img.point([0] * 256 * len(img.getbands()))
    return ImageOps.posterize(img, bits)


def _enhance(kind):
    return lambda img, f: kind(img).enhance(f)


# name -> (op(img, *args), level_fn(magnitude, rng) -> args); timm's _RAND_INCREASING_TRANSFORMS.
_RAND_INCREASING = {
    "AutoContrast": (lambda img: ImageOps.autocontrast(img), None),
    "Equalize": (lambda img: ImageOps.equalize(img), None),
    "Invert": (lambda img: ImageOps.invert(img), None),
    "Rotate": (
        lambda img, deg: img.rotate(deg, resample=_BICUBIC, fillcolor=_FILL),
        lambda m, rng: (_negate(rng, m / 10 * 30.0),),
    ),
    "PosterizeIncreasing": (_posterize, lambda m, rng: (4 - int(m / 10 * 4),)),
    "SolarizeIncreasing": (ImageOps.solarize, lambda m, rng: (256 - int(m / 10 * 256),)),
    "SolarizeAdd": (_solarize_add, lambda m, rng: (int(m / 10 * 110),)),
    "ColorIncreasing": (_enhance(ImageEnhance.Color), None),
    "ContrastIncreasing": (_enhance(ImageEnhance.Contrast), None),
    "BrightnessIncreasing": (_enhance(ImageEnhance.Brightness), None),
    "SharpnessIncreasing": (_enhance(ImageEnhance.Sharpness), None),
    "ShearX": (lambda img, f: _affine(img, (1, f, 0, 0, 1, 0)), None),
    "ShearY": (lambda img, f: _affine(img, (1, 0, 0, f, 1, 0)), None),
    "TranslateXRel": (lambda img, p: _affine(img, (1, 0, p * img.size[0], 0, 1, 0)), None),
    "TranslateYRel": (lambda img, p: _affine(img, (1, 0, 0, 0, 1, p * img.size[1])), None),
}
_ENHANCE_OPS = {
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
}


def _level_args(name: str, m: float, rng: np.random.Generator) -> tuple:
    _, level_fn = _RAND_INCREASING[name]
    if level_fn is not None:
        return level_fn(m, rng)
    if name in _ENHANCE_OPS:  # timm _enhance_increasing_level_to_arg
        return (max(0.1, 1.0 + _negate(rng, m / 10 * 0.9)),)
    if name.startswith("Shear"):
        return (_negate(rng, m / 10 * 0.3),)
    if name.startswith("Translate"):
        return (_negate(rng, m / 10 * 0.45),)
    return ()


def rand_augment(
    rng: np.random.Generator, img: Image.Image, num_ops=2, magnitude=9.0, std=0.5, prob=0.5
):
    """timm RandAugment('rand-m9-mstd0.5-inc1'): 2 ops drawn with replacement, each p=0.5."""
    names = list(_RAND_INCREASING)
    for name in rng.choice(names, num_ops, replace=True):
        if rng.random() > prob:
            continue
        m = min(max(rng.normal(magnitude, std), 0.0), 10.0) if std > 0 else magnitude
        img = _RAND_INCREASING[name][0](img, *_level_args(name, m, rng))
    return img


def random_erasing(
    rng: np.random.Generator, x: np.ndarray, p=0.25, min_area=0.02, max_area=1 / 3, min_aspect=0.3
) -> np.ndarray:
    """timm RandomErasing(mode='pixel', count 1) on a normalised HWC image: N(0,1) pixels."""
    if rng.random() > p:
        return x
    h, w, c = x.shape
    log_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(10):
        target = rng.uniform(min_area, max_area) * h * w
        aspect = math.exp(rng.uniform(*log_ratio))
        eh, ew = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if ew < w and eh < h:
            top, left = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            x = x.copy()
            x[top : top + eh, left : left + ew] = rng.standard_normal((eh, ew, c))
            break
    return x


def center_square(img: Image.Image) -> Image.Image:
    """RandomResizedCrop(scale=(1,1), ratio=(1,1)) crop: whole image if square, else the centre."""
    w, h = img.size
    side = round(math.sqrt(w * h))
    if side <= w and side <= h:
        return img
    side = min(w, h)  # timm's fallback: central crop of the short side
    top, left = (h - side) // 2, (w - side) // 2
    return img.crop((left, top, left + side, top + side))


def attribute_train(
    rng: np.random.Generator,
    image: np.ndarray,
    size: int = 112,
    mean: np.ndarray = preprocess.HALF_MEAN,
    std: np.ndarray = preprocess.HALF_STD,
) -> np.ndarray:
    """uint8 HWC -> float32 [size,size,3]: the original's 112-px training transform."""
    img = center_square(Image.fromarray(image)).resize((size, size), _BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = rand_augment(rng, img)
    x = preprocess.normalize(np.asarray(img), mean, std)
    return random_erasing(rng, x)


def attribute_test(
    image: np.ndarray,
    size: int = 112,
    mean: np.ndarray = preprocess.HALF_MEAN,
    std: np.ndarray = preprocess.HALF_STD,
) -> np.ndarray:
    """Resize([size,size]) bilinear (PIL) -> normalise (0.5/0.5 for the ArcFace crops)."""
    img = Image.fromarray(image)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return preprocess.normalize(np.asarray(img), mean, std)


def recognition_train(
    rng: np.random.Generator,
    image: np.ndarray,
    size: int = 112,
    mean: np.ndarray = preprocess.HALF_MEAN,
    std: np.ndarray = preprocess.HALF_STD,
) -> np.ndarray:
    """Resize (no-op at 112) -> RandomHorizontalFlip(0.5) -> normalise 0.5/0.5."""
    x = attribute_test(image, size, mean, std)
    return preprocess.hflip_image(x) if rng.random() < 0.5 else x
