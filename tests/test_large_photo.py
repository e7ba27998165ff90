"""A 72 MP photo goes through predict's image path (read, detect, crops, overlay) in < 1.5 GB."""

import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

from faceptor_jax import outputs

CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from faceptor_jax import align, media, outputs, preprocess
    from faceptor_jax.tasks import crops

    def mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = mb()
    rgb = media.read_image(sys.argv[1])
    align.detect_faces(rgb, 0.5)
    pts = np.float32([[4000, 3000], [4300, 3000], [4150, 3200], [4030, 3400], [4270, 3400]])
    for crop, size in ((crops.ARCFACE, 112), (crops.FACE5, 512)):
        crop.normalize(preprocess.warp(rgb, crop.align(pts, size), size))
    mask = np.zeros(rgb.shape[:2], np.uint8)
    face = np.ones((512, 512), np.uint8)
    matrix = crops.FACE5.align(pts, 512)
    labels, (x1, y1, x2, y2) = align.label_map_to_image(face, matrix, rgb.shape[:2])
    mask[y1:y2, x1:x2] = labels
    outputs.draw_overlay(rgb, [], {"parsing": mask}, {"parsing": ["background", "skin"]})
    print(rgb.shape[1], rgb.shape[0], round(mb() - base))
    """
)


def test_a_72_megapixel_photo_peaks_under_1_5_gb(tmp_path):
    path = tmp_path / "72mp.jpg"
    small = np.random.default_rng(0).integers(0, 255, (147, 196, 3), dtype=np.uint8)
    Image.fromarray(small).resize((9800, 7350), Image.BILINEAR).save(path, quality=85)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    w, h, peak_mb = map(int, out.stdout.split())
    assert (w, h) == (9800, 7350)
    # The decoded photo is 216 MB; one float32 copy of it alone would be 864 MB.
    assert peak_mb < 1500, f"peak {peak_mb} MB above the imports' baseline"


def test_overlay_blends_only_under_the_mask_as_before():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[38:52, 45:70] = rng.integers(0, 3, (14, 25))
    got = np.asarray(outputs.draw_overlay(rgb, [], {"p": mask}, {"p": ["bg", "a", "b"]}))
    colour = outputs.PALETTE[np.minimum(mask, len(outputs.PALETTE) - 1)].astype(np.float32)
    f = rgb.astype(np.float32)
    want = np.where((mask > 0)[..., None], 0.55 * f + 0.45 * colour, f).clip(0, 255)
    below = np.s_[35:]  # the legend is drawn at the top left
    np.testing.assert_array_equal(got[below], want.astype(np.uint8)[below])
