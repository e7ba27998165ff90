"""Photos read as they are displayed: EXIF orientation applied (a phone photo stored sideways
comes out upright, so coordinates are in the displayed image), 16-bit grayscale scaled rather than
clipped to white, palette images with a transparent colour over white."""

import numpy as np
import pytest
from PIL import Image

from faceptor_jax import media


def _stored() -> np.ndarray:
    """A 40×24 (W×H) RGB picture with a red block at the stored top-left corner."""
    a = np.full((24, 40, 3), 200, np.uint8)
    a[:6, :10] = (255, 0, 0)
    return a


@pytest.mark.parametrize(
    "orientation, shape, red_at",
    [
        (1, (24, 40), (0, 0)),
        (6, (40, 24), (0, 23)),
        (8, (40, 24), (39, 0)),
        (3, (24, 40), (23, 39)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, shape, red_at):
    path = str(tmp_path / "phone.jpg")
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    Image.fromarray(_stored()).save(path, quality=95, exif=exif)
    rgb = media.read_image(path)
    assert rgb.shape[:2] == shape  # displayed height × width
    y, x = red_at
    assert rgb[y, x, 0] > 200 and rgb[y, x, 1] < 60, rgb[y, x]


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 16).reshape(16, 64).astype(np.uint16)
    path = str(tmp_path / "gray16.png")
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = media.read_image(path)
    assert rgb.shape == (16, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_allclose(rgb[..., 0], ramp / 257, atol=1)
    assert (rgb[..., 0] == rgb[..., 2]).all() and 100 < rgb.mean() < 155  # not near white


def test_palette_images_convert_and_transparency_is_white(tmp_path):
    a = _stored()
    path = str(tmp_path / "palette.png")
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    np.testing.assert_array_equal(media.read_image(path), a)
    p = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    red = p.getpixel((0, 0))
    p.save(path, transparency=red)  # the red block transparent
    rgb = media.read_image(path)
    assert (rgb[:6, :10] == 255).all() and (rgb[10:, 20:] == 200).all()


def test_overlay_captions_and_legend_scale_with_the_image():
    from faceptor_jax import outputs

    def caption_height(w: int, h: int) -> int:
        face = {"box": [w * 0.4, h * 0.4, w * 0.6, h * 0.6], "score": 0.9, "points5": []}
        masks = {"parsing": np.ones((h, w), np.uint8)}
        img = outputs.draw_overlay(
            np.zeros((h, w, 3), np.uint8), [face], masks, {"parsing": ["bg", "skin"]}
        )
        legend = np.asarray(img)[:, : w // 4].max(-1) == 255  # the legend's white text
        rows = np.flatnonzero(legend.any(1))
        return rows.max() - rows.min() + 1

    small, large = caption_height(512, 384), caption_height(1920, 1080)
    assert large >= 2.5 * small, (small, large)
