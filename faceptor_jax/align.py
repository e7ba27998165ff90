"""Face detection (yuface, libfacedetection's CNN with bundled weights) and 5-point alignment.

Points are (x, y) pixels with pixel centres at integers, in the order eye (image-left), eye
(image-right), nose tip, mouth corner (image-left), mouth corner (image-right) — the order of
yuface and of the task types' crop templates (`tasks.crops`).
"""

import dataclasses

import numpy as np
from PIL import Image

from faceptor_jax import preprocess

DETECT_MAX_SIDE = 960  # yuface warns above this; larger images are detected on a downscaled copy


@dataclasses.dataclass(frozen=True)
class Detection:
    """score in [0, 1]; box (x1, y1, x2, y2) pixels; points [5, 2] (x, y) pixels."""

    score: float
    box: np.ndarray
    points: np.ndarray


def detect_faces(rgb: np.ndarray, conf: float = 0.5) -> list[Detection]:
    """Faces of an RGB uint8 [H, W, 3] image, most confident first, in its pixel coordinates."""
    import yuface  # lazy: the rest of the package does not need the detector

    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    img = rgb
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        scale = img.shape[1] / w
    bgr = np.ascontiguousarray(img[..., ::-1])
    confs, boxes, points = yuface.detect(bgr, conf=conf)
    out = []
    for c, b, p in zip(np.asarray(confs), np.asarray(boxes), np.asarray(points), strict=True):
        x, y, bw, bh = (float(v) / scale for v in b)  # XYWH, int16
        box = np.clip(np.array([x, y, x + bw, y + bh], np.float32), 0, [w, h, w, h])
        pts = np.asarray(p, np.float32).reshape(5, 2) / scale
        out.append(Detection(float(c) / 100.0, box, pts))
    return sorted(out, key=lambda d: -d.score)


def crop_footprint(matrix: np.ndarray, size: int, hw: tuple[int, int]) -> tuple[int, ...]:
    """The image region (x1, y1, x2, y2), clipped, that a size² crop through `matrix` covers."""
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float32)
    src = preprocess.warped_to_source(corners, matrix, 0.0, size)
    x1, y1 = np.floor(src.min(0)).astype(int)
    x2, y2 = np.ceil(src.max(0)).astype(int) + 1
    h, w = hw
    return max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)


def label_map_to_image(
    labels: np.ndarray, matrix: np.ndarray, hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """A crop's [S, S] label map -> labels over the image region it covers (nearest; outside the
    crop 0 = background). Returns (labels [y2-y1, x2-x1], (x1, y1, x2, y2))."""
    size = labels.shape[0]
    x1, y1, x2, y2 = crop_footprint(matrix, size, hw)
    if x2 <= x1 or y2 <= y1:
        return np.zeros((0, 0), labels.dtype), (x1, y1, x1, y1)
    ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    src = np.stack([xs.ravel(), ys.ravel()], axis=1)
    coords = preprocess.source_to_warped(src, matrix, 0.0, size).reshape(y2 - y1, x2 - x1, 2)
    return preprocess.remap(labels, coords, "nearest"), (x1, y1, x2, y2)
