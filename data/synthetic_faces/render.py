"""Procedural face renderer: one (seed, index) -> an image with every Faceptor label at once.

Identity fixes the face geometry, skin/hair/eye colours and hair style; each sample then draws age,
expression, accessories, pose and lighting. Labels are computed from the same parameters that drive
the drawing, so they agree with what is visible (and are learnable):
  identity, age (wrinkles, grey hair, child proportions), 40 CelebA attributes, 7 expressions
  (AffectNet ids), parsing masks in the CelebAMask-HQ (19) and LaPa (11) label sets, and the
  68/98/29/19/106 landmark sets in image pixels (pixel centres at integer coordinates).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data.synthetic_faces import geometry as geo
from faceptor_jax.datasets import CELEBA_ATTRIBUTES

# (celebamask_hq label, lapa label) per drawn part; None = that label set does not paint it.
PARTS = {
    "cloth": (3, 0), "neck": (1, 0), "hair_back": (14, 10), "ear_R": (5, 1), "ear_L": (4, 1),
    "skin": (2, 1), "brow_R": (7, 3), "brow_L": (6, 2), "eye_R": (9, 5), "eye_L": (8, 4),
    "nose": (10, 6), "u_lip": (13, 7), "l_lip": (12, 9), "mouth": (11, 8), "hair": (14, 10),
    "hat": (16, 0), "glasses": (15, None), "earring": (17, None), "necklace": (18, None),
}  # fmt: skip
_HAIR_COLOURS = {"black": (25, 20, 18), "brown": (95, 60, 35), "blond": (215, 185, 120)}
# Caricatured on purpose (about twice a real face's change): the cues must survive 64-px crops.
_EXPRESSION_SHAPES = {  # eye_open, brow_dy, brow_tilt, mouth_open, mouth_curve, mouth_w scale
    0: (1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    1: (0.5, 0.0, 0.0, 0.12, 0.18, 1.3),
    2: (0.6, 0.0, 0.14, 0.0, -0.14, 0.9),
    3: (1.9, -0.18, 0.0, 0.45, 0.0, 0.4),
    4: (1.7, -0.12, 0.12, 0.22, -0.06, 1.2),
    5: (0.2, 0.08, -0.04, 0.06, -0.1, 0.8),
    6: (0.8, 0.1, -0.16, 0.0, -0.04, 0.7),
}


@dataclasses.dataclass(frozen=True)
class Identity:
    shape: geo.Shape
    skin: np.ndarray  # RGB float
    hair: str  # black / brown / blond
    hair_style: str  # straight / wavy / bald / receding / bangs
    iris: tuple
    male: bool
    beard: str  # none / shadow / goatee / mustache / sideburns


def make_identity(seed: int, identity: int) -> Identity:
    rng = np.random.default_rng([seed, 7919, identity])
    u = lambda lo, hi: float(rng.uniform(lo, hi))
    shape = geo.Shape(
        face_w=u(0.72, 0.95), face_h=u(0.95, 1.15), forehead=u(0.85, 1.05), eye_x=u(0.3, 0.38),
        eye_w=u(0.12, 0.17), eye_h=u(0.05, 0.085), brow_y=u(-0.37, -0.29), brow_arch=u(0.0, 0.09),
        brow_thick=u(0.03, 0.08), nose_y=u(0.16, 0.28), nose_w=u(0.08, 0.15), mouth_y=u(0.45, 0.56),
        mouth_w=u(0.22, 0.32), lip_u=u(0.03, 0.07), lip_l=u(0.04, 0.1), ear_size=u(0.18, 0.26),
    )  # fmt: skip
    male = bool(rng.random() < 0.5)
    skin = np.array([u(150, 240), 0, 0])
    skin[1], skin[2] = skin[0] * u(0.7, 0.85), skin[0] * u(0.55, 0.72)
    styles = ["straight", "wavy", "bangs", "receding", "bald"]
    style = str(
        rng.choice(styles, p=[0.35, 0.3, 0.2, 0.1, 0.05] if male else [0.4, 0.35, 0.25, 0, 0])
    )
    beard = (
        str(rng.choice(["none", "shadow", "goatee", "mustache", "sideburns"])) if male else "none"
    )
    iris = tuple(int(v) for v in rng.integers(20, 140, 3))
    return Identity(shape, skin, str(rng.choice(list(_HAIR_COLOURS))), style, iris, male, beard)


@dataclasses.dataclass(frozen=True)
class Sample:
    identity: int
    age: int
    expression: int
    shape: geo.Shape  # identity shape with age and expression applied
    flags: dict  # accessories and appearance switches
    roll: float
    scale: float  # face unit in pixels
    centre: tuple  # face centre in pixels


def make_sample(
    seed, index, size, num_identities, face_scale=0.3, jitter=0.04, identity=None
) -> Sample:
    rng = np.random.default_rng([seed, index])
    drawn = int(rng.integers(num_identities))
    identity = drawn if identity is None else identity
    ident = make_identity(seed, identity)
    age, expression = int(rng.integers(1, 91)), int(rng.integers(7))
    e_open, b_dy, b_tilt, m_open, m_curve, m_w = _EXPRESSION_SHAPES[expression]
    s = ident.shape
    child = max(0.0, (16 - age) / 16)  # children: bigger eyes, rounder face
    s = dataclasses.replace(
        s, eye_open=e_open * (1 + 0.25 * child), brow_y=s.brow_y + b_dy, brow_tilt=b_tilt,
        mouth_open=m_open, mouth_curve=m_curve, mouth_w=s.mouth_w * m_w,
        eye_w=s.eye_w * (1 + 0.2 * child), face_h=s.face_h * (1 - 0.12 * child),
    )  # fmt: skip
    flags = {k: bool(rng.random() < p) for k, p in _FLAG_PROBS.items()}
    flags["lipstick"] &= not ident.male
    flags["necktie"] &= ident.male
    roll = float(rng.normal(0, 0.08))
    scale = size * face_scale * float(rng.uniform(0.92, 1.08))
    c = (size - 1) / 2
    centre = (c + size * jitter * rng.normal(), c + size * (0.03 + jitter * rng.normal()))
    return Sample(identity, age, expression, s, flags, roll, scale, centre)


_FLAG_PROBS = {"glasses": 0.15, "hat": 0.1, "earrings": 0.2, "necklace": 0.15, "necktie": 0.2}
_FLAG_PROBS |= {"lipstick": 0.4, "rosy": 0.2, "pale": 0.15, "blurry": 0.05, "bags": 0.2}


def attributes(sample: Sample, ident: Identity) -> np.ndarray:
    """The 40 CelebA attributes (1/0) implied by the drawn parameters."""
    s, f, age = sample.shape, sample.flags, sample.age
    gray = age > 55 and ident.hair_style != "bald"
    hair_visible = ident.hair_style != "bald" and not gray
    a = {
        "5_o_Clock_Shadow": ident.beard == "shadow", "Arched_Eyebrows": s.brow_arch > 0.055,
        "Attractive": age < 40 and not f["bags"] and ident.beard == "none",
        "Bags_Under_Eyes": f["bags"], "Bald": ident.hair_style == "bald",
        "Bangs": ident.hair_style == "bangs", "Big_Lips": s.lip_u + s.lip_l > 0.13,
        "Big_Nose": s.nose_w > 0.125, "Black_Hair": hair_visible and ident.hair == "black",
        "Blond_Hair": hair_visible and ident.hair == "blond", "Blurry": f["blurry"],
        "Brown_Hair": hair_visible and ident.hair == "brown",
        "Bushy_Eyebrows": s.brow_thick > 0.065,
        "Chubby": s.face_w > 0.9, "Double_Chin": s.face_w > 0.88 and age > 45,
        "Eyeglasses": f["glasses"], "Goatee": ident.beard == "goatee", "Gray_Hair": gray,
        "Heavy_Makeup": f["lipstick"] and f["rosy"], "High_Cheekbones": sample.expression == 1,
        "Male": ident.male, "Mouth_Slightly_Open": s.mouth_open > 0.02,
        "Mustache": ident.beard == "mustache", "Narrow_Eyes": s.eye_h * s.eye_open < 0.05,
        "No_Beard": ident.beard == "none", "Oval_Face": s.face_h / s.face_w > 1.3,
        "Pale_Skin": f["pale"], "Pointy_Nose": s.nose_w < 0.095,
        "Receding_Hairline": ident.hair_style == "receding", "Rosy_Cheeks": f["rosy"],
        "Sideburns": ident.beard == "sideburns", "Smiling": sample.expression == 1,
        "Straight_Hair": ident.hair_style in ("straight", "bangs"),
        "Wavy_Hair": ident.hair_style == "wavy", "Wearing_Earrings": f["earrings"],
        "Wearing_Hat": f["hat"], "Wearing_Lipstick": f["lipstick"],
        "Wearing_Necklace": f["necklace"], "Wearing_Necktie": f["necktie"], "Young": age < 35,
    }  # fmt: skip
    return np.array([int(a[k]) for k in CELEBA_ATTRIBUTES], np.int32)


def to_pixels(sample: Sample, pts: np.ndarray) -> np.ndarray:
    """Canonical face coordinates [N,2] -> image pixels (roll, scale, translate)."""
    c, s = np.cos(sample.roll), np.sin(sample.roll)
    rot = np.array([[c, -s], [s, c]]) * sample.scale
    return (np.asarray(pts, np.float64) @ rot.T + np.array(sample.centre)).astype(np.float32)
