"""Pure-numpy geometric preprocessing: normalisation, crop/align matrices, warps, flips.

Reproduces the original's transforms: py-blueprint's matrix helpers and
tanh-warp, cv2.remap sampling (bilinear with 1/32 sub-pixel weights, nearest, constant-0 border),
skimage's `SimilarityTransform.estimate` (Umeyama) for the 5-point LaPa alignment.

Conventions: images are HWC; points are (x, y) pixels with pixel centres at integer coordinates;
matrices are 3x3 homogeneous and map source pixels to output pixels (`p' = M @ p`).
"""

from __future__ import annotations

import numpy as np

# 112-px tasks (recognition, age, attributes, expression): (x/255 - 0.5) / 0.5.
HALF_MEAN = np.array([0.5, 0.5, 0.5], np.float32)
HALF_STD = np.array([0.5, 0.5, 0.5], np.float32)
# 512-px tasks (parsing, landmarks): FaRL/CLIP statistics.
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

# 5-point alignment template of py-blueprint (eyes, nose tip, mouth corners) in [-1, 1].
FACE_TEMPLATE = np.array(
    [[196.0, 226.0], [316.0, 226.0], [256.0, 286.0], [220.0, 360.4], [292.0, 360.4]], np.float32
) / np.float32(256.0) - np.float32(1.0)
LAPA_ALIGN_INDICES = (104, 105, 54, 84, 90)  # LaPa-106: pupils, nose tip, mouth corners


# ----------------------------------------------------------------------------- normalisation
def normalize(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] (scaled by 1/255) or float [0,1] [H,W,3] -> float32 (x - mean) / std."""
    x = image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 else image
    return ((x - mean) / std).astype(np.float32)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """py-blueprint Normalize255: uint8 -> float32 x/255 clipped to [0, 1]."""
    return np.clip(image / np.float32(255.0), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- matrices
def crop_matrix(box_y1x1y2x2: np.ndarray, size: int = 512) -> np.ndarray:
    """Box -> size² crop, align_corners=False: x' = (x - x1) * size / (x2 - x1) - 0.5."""
    y1, x1, y2, x2 = (float(v) for v in box_y1x1y2x2)
    ax, ay = size / (x2 - x1), size / (y2 - y1)
    return np.array([[ax, 0, -x1 * ax - 0.5], [0, ay, -y1 * ay - 0.5], [0, 0, 1]], np.float32)


def similarity_matrix(
    angle: float, scale: float, shift_xy=(0.0, 0.0), from_center=(255.5, 255.5), to_center=None
) -> np.ndarray:
    """Rotation by `angle` (rad) and `scale` about from_center, moved to to_center + shift."""
    to_center = from_center if to_center is None else to_center
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    (fx, fy), (tx, ty) = from_center, to_center
    return np.array(
        [
            [c, -s, tx - c * fx + s * fy + shift_xy[0]],
            [s, c, ty - s * fx - c * fy + shift_xy[1]],
            [0.0, 0.0, 1.0],
        ],
        np.float32,
    )


def random_similarity(
    rng: np.random.Generator,
    size: int = 512,
    shift_sigma: float = 0.01,
    rot_sigma: float = 0.314,
    scale_sigma: float = 0.1,
    scale_mu: float = 1.0,
    rot_normal: bool = True,
    scale_normal: bool = True,
) -> np.ndarray:
    """py-blueprint UpdateRandomTransformMatrix (shift always uniform here), about the centre."""
    shift = rng.uniform(-shift_sigma, shift_sigma, size=2) * size
    rot = rng.normal(0.0, rot_sigma) if rot_normal else rng.uniform(-rot_sigma, rot_sigma)
    if scale_normal:
        scale = rng.normal(scale_mu, scale_sigma)
    else:
        scale = rng.uniform(scale_mu - scale_sigma, scale_mu + scale_sigma)
    c = (size - 1) / 2.0
    return similarity_matrix(rot, scale, shift, (c, c))


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """skimage SimilarityTransform.estimate(src, dst).params: least-squares similarity [3,3]."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    a = dst_d.T @ src_d / n
    d = np.ones(dim)
    if np.linalg.det(a) < 0:
        d[-1] = -1
    t = np.eye(dim + 1)
    u, s, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        return np.full_like(t, np.nan)
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(v) > 0:
        t[:dim, :dim] = u @ v
    elif rank == dim - 1:
        t[:dim, :dim] = u @ np.diag(np.r_[d[:-1], -1.0]) @ v
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_d.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean)
    t[:dim, :dim] *= scale
    return t


def face_align_matrix(points5: np.ndarray, size: int = 512) -> np.ndarray:
    """5 points (eyes, nose, mouth corners) -> similarity onto FACE_TEMPLATE in [0, size-1]²."""
    target = (FACE_TEMPLATE + 1) * np.array([size - 1, size - 1], np.float32) / 2.0
    return umeyama_similarity(points5, target)


# ----------------------------------------------------------------------------- warps
def _tanh_forward(v: np.ndarray, w: float) -> np.ndarray:
    """Warped coords [-1,1] -> unwarped (atanh on the outer band of width w)."""
    out = v.copy()
    for sign in (1.0, -1.0):
        band = sign * v > 1.0 - w
        z = np.clip((sign * v[band] - 1.0 + w) / w, -0.999, 0.999)
        out[band] = sign * (np.arctanh(z) * w + 1.0 - w)
    return out


def _tanh_inverse(v: np.ndarray, w: float) -> np.ndarray:
    out = v.copy()
    for sign in (1.0, -1.0):
        band = sign * v > 1.0 - w
        out[band] = sign * (np.tanh((sign * v[band] - 1.0 + w) / w) * w + 1.0 - w)
    return out


def _apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Homogeneous 3x3 `matrix` on [N,2] points, elementwise (a 3-wide matmul is slow)."""
    m = np.asarray(matrix, np.float64)
    x, y = pts[:, 0], pts[:, 1]
    w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return np.stack([(m[0, 0] * x + m[0, 1] * y + m[0, 2]) / w,
                     (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / w], -1)  # fmt: skip


def warped_to_source(
    points: np.ndarray, matrix: np.ndarray, warp_factor: float = 0.0, size: int = 512
) -> np.ndarray:
    """Output-image points [N,2] -> source-image points (undo tanh-warp, then M⁻¹)."""
    pts = np.asarray(points, np.float64)
    if warp_factor > 0:
        pts = (_tanh_forward(pts / size * 2 - 1, warp_factor) + 1) / 2 * size
    return _apply(np.linalg.inv(np.asarray(matrix, np.float64)), pts).astype(np.float32)


def source_to_warped(
    points: np.ndarray, matrix: np.ndarray, warp_factor: float = 0.0, size: int = 512
) -> np.ndarray:
    """Source-image points [N,2] -> output-image points (M, then tanh-warp). Landmark labels."""
    pts = _apply(matrix, np.asarray(points, np.float64))
    if warp_factor > 0:
        pts = (_tanh_inverse(pts / size * 2 - 1, warp_factor) + 1) / 2 * size
    return pts.astype(np.float32)


def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(x, y) of every pixel, row-major -> float32 [h*w, 2]."""
    ys, xs = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx, yy], axis=-1).reshape(-1, 2)


def transform_map(matrix: np.ndarray, out_hw, warp_factor: float = 0.0, size: int = 512):
    """GetTransformMap: for each output pixel its source (x, y) -> float32 [h, w, 2]."""
    h, w = out_hw
    inv = np.linalg.inv(np.asarray(matrix, np.float64))
    if warp_factor > 0 or not np.allclose(inv[2], [0, 0, 1]):
        return warped_to_source(_pixel_grid(h, w), matrix, warp_factor, size).reshape(h, w, 2)
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)[:, None]
    out = np.empty((h, w, 2), np.float32)  # affine: separable, no per-pixel matmul
    out[..., 0] = inv[0, 0] * xs + (inv[0, 1] * ys + inv[0, 2])
    out[..., 1] = inv[1, 0] * xs + (inv[1, 1] * ys + inv[1, 2])
    return out


def inverse_transform_map(matrix, orig_hw, warp_factor: float = 0.0, size: int = 512):
    """GetInvertedTransformMap: for each original-image pixel its warped-image (x, y)."""
    h, w = orig_hw
    grid = _pixel_grid(h, w)
    return source_to_warped(grid, matrix, warp_factor, size).reshape(h, w, 2)


def _window(t0: np.ndarray, n: int) -> tuple[int, int]:
    """[start, stop) of the pixels that bilinear taps at t0 and t0 + 1 reach inside [0, n); a tap
    outside it is outside the image too, so it still reads 0."""
    lo, hi = int(np.clip(t0.min(), 0, n - 1)), int(np.clip(t0.max() + 1, 0, n - 1))
    return lo, hi + 1


def remap(image: np.ndarray, coords: np.ndarray, interpolation: str = "bilinear") -> np.ndarray:
    """cv2.remap(image, map_x, map_y, interp, BORDER_CONSTANT, 0) in numpy.

    image [H,W] or [H,W,C]; coords float32 [h,w,2] source (x, y). Bilinear quantises the
    fraction to 1/32 like cv2 (INTER_BITS=5); each tap outside the image contributes 0.
    """
    h_in, w_in = image.shape[:2]
    squeeze = image.ndim == 2
    img = image[..., None] if squeeze else image
    mx, my = coords[..., 0], coords[..., 1]
    if interpolation == "nearest":
        xi, yi = np.rint(mx).astype(np.int64), np.rint(my).astype(np.int64)
        ok = (xi >= 0) & (xi < w_in) & (yi >= 0) & (yi < h_in)
        out = img[np.clip(yi, 0, h_in - 1), np.clip(xi, 0, w_in - 1)]
        out = np.where(ok[..., None], out, 0).astype(image.dtype)
        return out[..., 0] if squeeze else out
    if interpolation != "bilinear":
        raise ValueError(f"interpolation {interpolation!r}: expected 'bilinear' or 'nearest'")
    fx, fy = np.rint(mx * 32).astype(np.int64), np.rint(my * 32).astype(np.int64)
    ax, ay = (fx & 31).astype(np.float32) / 32, (fy & 31).astype(np.float32) / 32
    x0, y0 = fx >> 5, fy >> 5
    if x0.size:  # pad only the window the taps reach: a crop of a 72 MP photo reads a few pixels
        (wx0, wx1), (wy0, wy1) = _window(x0, w_in), _window(y0, h_in)
        img, x0, y0 = img[wy0:wy1, wx0:wx1], x0 - wx0, y0 - wy0
        h_in, w_in = img.shape[:2]
    # Zero-pad by one pixel: every tap outside the image lands on the zero border.
    pad = np.zeros((h_in + 2, w_in + 2, img.shape[2]), np.float32)
    pad[1:-1, 1:-1] = img
    flat = pad.reshape(-1, img.shape[2])
    xa, xb = np.clip(x0, -1, w_in) + 1, np.clip(x0 + 1, -1, w_in) + 1
    ya, yb = (np.clip(y0, -1, h_in) + 1) * (w_in + 2), (np.clip(y0 + 1, -1, h_in) + 1) * (w_in + 2)
    tap = lambda i: np.take(flat, i, axis=0)  # faster than fancy indexing
    out = (
        tap(ya + xa) * ((1 - ax) * (1 - ay))[..., None]
        + tap(ya + xb) * (ax * (1 - ay))[..., None]
        + tap(yb + xa) * ((1 - ax) * ay)[..., None]
        + tap(yb + xb) * (ax * ay)[..., None]
    )
    if np.issubdtype(image.dtype, np.integer):
        out = np.clip(np.rint(out), np.iinfo(image.dtype).min, np.iinfo(image.dtype).max)
    out = out.astype(image.dtype)
    return out[..., 0] if squeeze else out


def warp(image, matrix, size: int = 512, warp_factor: float = 0.0, interpolation="bilinear"):
    """Warp `image` into a size² output through `matrix` (+ optional tanh-warp)."""
    return remap(image, transform_map(matrix, (size, size), warp_factor, size), interpolation)


# ----------------------------------------------------------------------------- flips
def hflip_image(image: np.ndarray) -> np.ndarray:
    """Mirror along the width axis ([..., H, W, C] or [H, W])."""
    axis = 1 if image.ndim in (2, 3) else image.ndim - 2
    return np.flip(image, axis=axis).copy()
