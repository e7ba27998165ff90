"""PIL drawing of a synthetic face and its two parsing masks, in painter's order."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data.synthetic_faces import geometry as geo
from data.synthetic_faces.render import _HAIR_COLOURS, PARTS, Identity, Sample, to_pixels


class _Canvas:
    """Paints a polygon/ellipse into the RGB image and, per PARTS, into both label maps."""

    def __init__(self, sample: Sample, size: int, background, masks: bool):
        self.sample = sample
        self.image = Image.new("RGB", (size, size), background)
        self.draw = ImageDraw.Draw(self.image)
        self.masks = None
        if masks:
            self.masks = [Image.new("L", (size, size), 0), Image.new("L", (size, size), 0)]
            self.mask_draws = [ImageDraw.Draw(m) for m in self.masks]

    def px(self, pts) -> list[tuple[float, float]]:
        return [tuple(p) for p in to_pixels(self.sample, np.asarray(pts).reshape(-1, 2))]

    def polygon(self, part: str | None, pts, colour) -> None:
        poly = self.px(pts)
        if colour is not None:
            self.draw.polygon(poly, fill=tuple(int(c) for c in colour))
        if part is not None and self.masks is not None:
            for d, label in zip(self.mask_draws, PARTS[part], strict=True):
                if label is not None:
                    d.polygon(poly, fill=label)

    def ellipse(self, part, centre, radii, colour, n: int = 28) -> None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts = np.stack([centre[0] + radii[0] * np.cos(t), centre[1] + radii[1] * np.sin(t)], -1)
        self.polygon(part, pts, colour)

    def line(self, pts, colour, width_units: float) -> None:
        w = max(1, round(width_units * self.sample.scale))
        self.draw.line(self.px(pts), fill=tuple(int(c) for c in colour), width=w)


def _lin(a, b, n=16):
    return np.linspace(a, b, n)


def _hair_colour(ident: Identity, age: int) -> np.ndarray:
    base = np.array(_HAIR_COLOURS[ident.hair], np.float64)
    grey = np.clip((age - 35) / 35, 0, 1)  # turns fully grey by 70
    return base * (1 - grey) + np.array([185, 185, 190]) * grey


def _head_and_hair(cv: _Canvas, ident: Identity, s: geo.Shape, hair, skin, cloth_colour) -> None:
    cloth_top = s.eye_y + s.face_h + 0.45
    cloth = [(-2.5, cloth_top + 0.5), (2.5, cloth_top + 0.5), (2.5, 5), (-2.5, 5)]
    cv.polygon("cloth", cloth, cloth_colour)
    if ident.hair_style != "bald" and not ident.male:  # long hair behind the head
        cv.ellipse("hair_back", (0, 0.15), (s.face_w + 0.22, s.forehead + 0.35), hair)
    cv.polygon(
        "neck",
        [(-0.36, 0.3), (0.36, 0.3), (0.4, cloth_top + 0.6), (-0.4, cloth_top + 0.6)],
        skin * 0.9,
    )
    for side, sign in (("ear_R", -1), ("ear_L", 1)):
        cv.ellipse(
            side, (sign * (s.face_w * 0.97), s.eye_y + 0.12), (0.09, s.ear_size), skin * 0.93
        )
    face = np.concatenate([geo.jaw(s, _lin(0, 1, 40)), geo.forehead(s)])
    cv.polygon("skin", face, skin)


def _hair_front(cv: _Canvas, ident: Identity, s: geo.Shape, hair) -> None:
    if ident.hair_style == "bald":
        return
    t = np.linspace(0, np.pi, 32)
    top = s.eye_y - s.forehead
    outer_r, outer_h = s.face_w + 0.12, s.forehead + 0.22
    wav = 0.04 * np.sin(9 * t) if ident.hair_style == "wavy" else 0.0
    outer = np.stack(
        [-(outer_r + wav) * np.cos(t), s.eye_y + 0.15 - (outer_h + 0.15 + wav) * np.sin(t)], -1
    )
    line_y = {"receding": top + 0.42, "bangs": s.brow_y - 0.1}.get(ident.hair_style, top + 0.25)
    inner_x = np.linspace(s.face_w * 0.98, -s.face_w * 0.98, 20)
    inner_y = line_y + (s.eye_y - line_y) * (np.abs(inner_x) / s.face_w) ** 4
    cv.polygon("hair", np.concatenate([outer, np.stack([inner_x, inner_y], -1)]), hair)


def _face_details(cv: _Canvas, ident: Identity, sample: Sample, s: geo.Shape, skin, hair) -> None:
    f, age = sample.flags, sample.age
    dark = skin * 0.72
    if ident.beard == "shadow":
        cv.polygon(
            None,
            np.concatenate([geo.jaw(s, _lin(0.2, 0.8)), geo.mouth(s, _lin(1, 0), "outer_upper")]),
            skin * 0.8,
        )
    elif ident.beard == "goatee":
        cv.polygon(
            None,
            [
                (-0.18, s.mouth_y + 0.12),
                (0.18, s.mouth_y + 0.12),
                (0.12, s.eye_y + s.face_h),
                (-0.12, s.eye_y + s.face_h),
            ],
            hair,
        )
    elif ident.beard == "mustache":
        cv.polygon(
            None,
            [
                (-s.mouth_w, s.mouth_y - 0.06),
                (s.mouth_w, s.mouth_y - 0.06),
                (s.mouth_w * 0.8, s.nose_y + 0.1),
                (-s.mouth_w * 0.8, s.nose_y + 0.1),
            ],
            hair,
        )
    elif ident.beard == "sideburns":
        for sign in (-1, 1):
            x0 = sign * s.face_w * 0.96
            cv.polygon(
                None,
                [
                    (x0, s.eye_y - 0.1),
                    (x0 * 0.82, s.eye_y - 0.1),
                    (x0 * 0.85, s.eye_y + 0.45),
                    (x0, s.eye_y + 0.45),
                ],
                hair,
            )
    if f["rosy"]:
        for sign in (-1, 1):
            cv.ellipse(
                None, (sign * 0.46, s.nose_y), (0.12, 0.08), skin * np.array([1.05, 0.75, 0.75])
            )
    for k in range(max(0, (age - 25) // 12)):  # forehead wrinkles: more and darker with age
        y = s.brow_y - 0.14 - 0.08 * k
        cv.line(
            [(-0.4, y), (-0.1, y - 0.02), (0.1, y - 0.02), (0.4, y)], dark * (1 - age / 300), 0.012
        )
    if age > 50 or f["bags"]:
        for side in "RL":
            cv.line(geo.eye(s, side, _lin(0.1, 0.9, 6), "lower") + np.array([0, 0.05]), dark, 0.015)
    for side in "RL":
        brow = np.concatenate(
            [geo.brow(s, side, _lin(0, 1, 8), "upper"), geo.brow(s, side, _lin(1, 0, 8), "lower")]
        )
        cv.polygon(f"brow_{side}", brow, hair * 0.7)
        ring = np.concatenate(
            [geo.eye(s, side, _lin(0, 1), "upper"), geo.eye(s, side, _lin(1, 0), "lower")]
        )
        cv.polygon(f"eye_{side}", ring, (240, 240, 235))
        r = 0.65 * s.eye_h * min(s.eye_open, 1.2)
        p = geo.pupil(s, side)
        cv.ellipse(None, p, (r, r), ident.iris, n=16)
        cv.ellipse(None, p, (r * 0.45, r * 0.45), (10, 10, 10), n=12)
    lip = np.array([200, 40, 60]) if f["lipstick"] else skin * np.array([0.85, 0.55, 0.55])
    if s.mouth_open > 0:
        inner = np.concatenate(
            [geo.mouth(s, _lin(0, 1), "inner_upper"), geo.mouth(s, _lin(1, 0), "inner_lower")]
        )
        cv.polygon("mouth", inner, (60, 15, 20))
    cv.polygon(
        "u_lip",
        np.concatenate(
            [geo.mouth(s, _lin(0, 1), "outer_upper"), geo.mouth(s, _lin(1, 0), "inner_upper")]
        ),
        lip,
    )
    cv.polygon(
        "l_lip",
        np.concatenate(
            [geo.mouth(s, _lin(0, 1), "inner_lower"), geo.mouth(s, _lin(1, 0), "outer_lower")]
        ),
        lip * 0.92,
    )
    # The nose last: it is in front of the upper lip (a wide-open mouth reaches up to it).
    nose = [(-0.05, s.eye_y + 0.06), (0.05, s.eye_y + 0.06)]
    nose += [tuple(p) for p in geo.nose_base(s, _lin(1, 0, 9))]
    cv.polygon("nose", nose, skin * 0.88)


def _accessories(cv: _Canvas, sample: Sample, s: geo.Shape, hair) -> None:
    f = sample.flags
    if f["necktie"]:
        y0 = s.eye_y + s.face_h + 0.45
        cv.polygon(
            None, [(-0.08, y0 + 0.5), (0.08, y0 + 0.5), (0.15, 3), (-0.15, 3)], (120, 20, 30)
        )
    if f["necklace"]:
        t = np.linspace(0.15 * np.pi, 0.85 * np.pi, 12)
        ring = np.stack([0.42 * np.cos(t), 0.75 + 0.35 * np.sin(t)], -1)
        cv.polygon(
            "necklace", np.concatenate([ring, ring[::-1] + np.array([0, 0.05])]), (230, 200, 80)
        )
    if f["earrings"]:
        for sign, part in ((-1, "earring"), (1, "earring")):
            cv.ellipse(
                part,
                (sign * s.face_w * 0.97, s.eye_y + 0.12 + s.ear_size + 0.05),
                (0.05, 0.05),
                (230, 200, 60),
            )
    if f["glasses"]:
        for side in "RL":
            centre = geo.pupil(s, side)
            cv.ellipse("glasses", centre, (s.eye_w + 0.07, s.eye_h * 1.6 + 0.06), (30, 30, 30))
            cv.ellipse("glasses", centre, (s.eye_w + 0.04, s.eye_h * 1.6 + 0.03), None)
        # lenses keep the eyes visible in the image; redraw the eyes on the image only
        for side in "RL":
            ring = np.concatenate(
                [geo.eye(s, side, _lin(0, 1), "upper"), geo.eye(s, side, _lin(1, 0), "lower")]
            )
            cv.polygon(None, ring, (235, 235, 230))
            p = geo.pupil(s, side)
            r = 0.3 * s.eye_h
            cv.ellipse(None, p, (r, r), (10, 10, 10), n=12)
    if f["hat"]:
        top = s.eye_y - s.forehead
        cv.polygon(
            "hat",
            [
                (-s.face_w - 0.2, top + 0.3),
                (s.face_w + 0.2, top + 0.3),
                (s.face_w * 0.8, top - 0.6),
                (-s.face_w * 0.8, top - 0.6),
            ],
            hair[::-1] * 0.5 + 40,
        )


def draw(sample: Sample, ident: Identity, size: int, masks: bool, rng: np.random.Generator):
    """-> image uint8 [size,size,3], (mask_celebamask [size,size], mask_lapa) or None."""
    background = tuple(int(v) for v in rng.integers(40, 220, 3))
    cv = _Canvas(sample, size, background, masks)
    skin = ident.skin * (1.12 if sample.flags["pale"] else 1.0)
    hair = _hair_colour(ident, sample.age)
    s = sample.shape
    _head_and_hair(cv, ident, s, hair, skin, rng.integers(0, 255, 3))
    _face_details(cv, ident, sample, s, skin, hair)
    _hair_front(cv, ident, s, hair)
    _accessories(cv, sample, s, hair)
    image = cv.image
    if sample.flags["blurry"]:
        image = image.filter(ImageFilter.GaussianBlur(radius=size / 80))
    x = np.asarray(image, np.float32)
    gain = np.float32(rng.uniform(0.85, 1.15))
    ramp = np.linspace(-1, 1, size, dtype=np.float32)[None, :, None]
    light = (1 + np.float32(rng.uniform(-0.2, 0.2)) * ramp) * gain
    x = x * light + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(4)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if cv.masks is None:
        return out, None
    return out, tuple(np.asarray(m) for m in cv.masks)
