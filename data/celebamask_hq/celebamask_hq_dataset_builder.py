"""CelebAMask-HQ: `CelebA-HQ-img/<id>.jpg` (1024²), `CelebAMask-HQ-mask-anno/<id//2000>/<id:05d>_
<part>.png`, `CelebA-HQ-to-CelebA-mapping.txt`, `list_eval_partition.txt`.

Stored as the original loads it: the image resized to 512² (cv2 INTER_LINEAR = 2×2 mean for 1024²)
and the label map painted part by part in SUFFIXES order with value i+1 (later parts overwrite).
"""

import os
from typing import ClassVar

import numpy as np

from data import common

SUFFIXES = (
    "neck",
    "skin",
    "cloth",
    "l_ear",
    "r_ear",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "nose",
    "mouth",
    "l_lip",
    "u_lip",
    "hair",
    "eye_g",
    "hat",
    "ear_r",
    "neck_l",
)
_GROUPS = {"train": (0, 1), "test": (2,)}


def resize_linear(image: np.ndarray, size: int) -> np.ndarray:
    """cv2.resize(INTER_LINEAR) to size² (exact for integer downscales by 2, rounding half up)."""
    h, w = image.shape[:2]
    out = image.astype(np.float64)
    for axis, n in ((0, h), (1, w)):
        src = np.maximum((np.arange(size) + 0.5) * n / size - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        t = (src - i0).reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        out = np.take(out, i0, axis) * (1 - t) + np.take(out, i1, axis) * t
    return np.floor(out + 0.5).clip(0, 255).astype(np.uint8)


class CelebamaskHq(common.ManualBuilder):
    name = "celebamask_hq"
    FEATURES: ClassVar[dict] = {
        "image": common.image_feature(),
        "mask": common.image_feature(1),
        "filename": common.text(),
    }

    def check_layout(self, manual_dir):
        for f in ("CelebA-HQ-to-CelebA-mapping.txt", "list_eval_partition.txt"):
            common.need(os.path.join(manual_dir, f), "a CelebAMask-HQ list file")
        common.need(os.path.join(manual_dir, "CelebA-HQ-img"), "the CelebA-HQ image folder")
        common.need(os.path.join(manual_dir, "CelebAMask-HQ-mask-anno"), "the mask folder")

    def ids(self, manual_dir, split):
        orig_to_hq = {}
        path = os.path.join(manual_dir, "CelebA-HQ-to-CelebA-mapping.txt")
        for i, line in enumerate(common.read_lines(path, "the HQ->CelebA mapping"), 1):
            if ".jpg" in line:
                f = line.split()
                if len(f) != 3 or not f[0].isdigit():
                    raise common.malformed(path, i, "'idx orig_idx orig_file'", line)
                orig_to_hq[f[2]] = int(f[0])
        path = os.path.join(manual_dir, "list_eval_partition.txt")
        out = []
        for i, line in enumerate(common.read_lines(path, "the CelebA partition list"), 1):
            if ".jpg" in line:
                f = line.split()
                if len(f) != 2 or f[1] not in "012":
                    raise common.malformed(path, i, "'orig_file 0|1|2'", line)
                if f[0] in orig_to_hq and int(f[1]) in _GROUPS[split]:
                    out.append(orig_to_hq[f[0]])
        return out

    def examples(self, manual_dir, split, corrupt):
        for hq in self.ids(manual_dir, split):
            path = os.path.join(manual_dir, "CelebA-HQ-img", f"{hq}.jpg")
            data = corrupt.check(None, path)
            if data is None:
                continue
            image = resize_linear(common.decode(data), 512)
            label = np.zeros((512, 512), np.uint8)
            stem = os.path.join(manual_dir, "CelebAMask-HQ-mask-anno", str(hq // 2000), f"{hq:05d}")
            for value, suffix in enumerate(SUFFIXES, 1):
                part = f"{stem}_{suffix}.png"
                if os.path.exists(part):
                    mask_bytes = corrupt.check(None, part)
                    if mask_bytes is not None:
                        label[common.decode(mask_bytes, "L") > 0] = value
            yield (
                hq,
                {
                    "image": common.encode_png(image),
                    "mask": common.encode_png(label[..., None]),
                    "filename": str(hq),
                },
            )
