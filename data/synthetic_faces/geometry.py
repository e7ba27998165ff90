"""Face geometry of the synthetic renderer: parameters -> named curves -> landmark sets.

Canonical frame: face centre at (0, 0), x to the image right, y down, unit ≈ half the face width.
"R" features are on the image left (the subject's right), "L" on the image right. All curves are
parametrised so that mirroring the parameters maps R(t) to L(t) with x negated: that is what makes
the standard flip permutations of the 68/98/29/19 schemes hold on the rendered geometry.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Shape:
    """Geometry parameters of one rendered face (identity + expression + age)."""

    face_w: float = 0.82  # jaw half-width
    face_h: float = 1.05  # chin distance below the eye line
    forehead: float = 0.95  # forehead height above the eye line
    eye_x: float = 0.34  # eye-centre distance from the midline
    eye_y: float = -0.12
    eye_w: float = 0.15  # eye half-width
    eye_h: float = 0.07  # upper-lid height
    eye_open: float = 1.0  # expression: lid opening factor
    brow_y: float = -0.33
    brow_arch: float = 0.05
    brow_tilt: float = 0.0  # +: inner end raised (sad/fear); -: lowered (anger)
    brow_thick: float = 0.05
    nose_y: float = 0.22  # nose tip
    nose_w: float = 0.11
    mouth_y: float = 0.5
    mouth_w: float = 0.27
    mouth_open: float = 0.0
    mouth_curve: float = 0.0  # +: corners up (smile)
    lip_u: float = 0.05
    lip_l: float = 0.07
    ear_size: float = 0.22


def jaw(s: Shape, t: np.ndarray) -> np.ndarray:
    """Contour from the R temple (t=0) through the chin (t=.5) to the L temple (t=1)."""
    phi = np.pi * (-0.06 + 1.12 * np.asarray(t, np.float64))
    x = -s.face_w * np.cos(phi) * (1.0 - 0.12 * np.sin(phi) ** 4)
    y = s.eye_y + 0.02 + s.face_h * np.sin(phi)
    return np.stack([x, y], -1)


def forehead(s: Shape, n: int = 24) -> np.ndarray:
    """Upper outline from the L temple back to the R temple (closes the face polygon)."""
    a, b = jaw(s, 1.0), jaw(s, 0.0)
    phi = np.linspace(0.0, np.pi, n)
    x = a[0] * np.cos(phi)
    y = a[1] - (s.forehead + a[1] - s.eye_y) * np.sin(phi)
    del b
    return np.stack([x, y], -1)


def _side(side: str) -> float:
    return -1.0 if side == "R" else 1.0


def eye(s: Shape, side: str, t, lid: str) -> np.ndarray:
    """Lid point; t from the outer corner (0) to the inner corner (1); lid 'upper'/'lower'."""
    t = np.asarray(t, np.float64)
    sign = _side(side)
    x = sign * (s.eye_x + s.eye_w * (1 - 2 * t))
    bump = np.sin(np.pi * t)
    h = s.eye_h * s.eye_open if lid == "upper" else -0.75 * s.eye_h * s.eye_open
    return np.stack([x, s.eye_y - h * bump], -1)


def pupil(s: Shape, side: str) -> np.ndarray:
    return np.array([_side(side) * s.eye_x, s.eye_y - 0.1 * s.eye_h * s.eye_open])


def brow(s: Shape, side: str, t, edge: str) -> np.ndarray:
    """Brow point; t from outer (0) to inner (1); edge 'upper'/'lower'."""
    t = np.asarray(t, np.float64)
    sign = _side(side)
    x = sign * (s.eye_x + 0.2 - 0.42 * t)
    y = s.brow_y - s.brow_arch * np.sin(np.pi * t) - s.brow_tilt * t
    thick = s.brow_thick * (1.0 - 0.3 * t) if edge == "lower" else 0.0
    return np.stack([x, y + thick], -1)


def nose_bridge(s: Shape, t) -> np.ndarray:
    t = np.asarray(t, np.float64)
    return np.stack([np.zeros_like(t), s.eye_y + (s.nose_y - s.eye_y) * t], -1)


def nose_base(s: Shape, t) -> np.ndarray:
    """Nostril line from the R wing (0) through the subnasale (.5) to the L wing (1)."""
    t = np.asarray(t, np.float64)
    x = s.nose_w * (2 * t - 1)
    y = s.nose_y + 0.02 + 0.05 * np.sin(np.pi * t) - 0.04 * (1 - np.sin(np.pi * t))
    return np.stack([x, y], -1)


def mouth(s: Shape, t, lip: str) -> np.ndarray:
    """Lip curves; t from the R corner (0) to the L corner (1).

    lip: 'outer_upper', 'inner_upper', 'inner_lower', 'outer_lower'.
    """
    t = np.asarray(t, np.float64)
    x = s.mouth_w * (2 * t - 1)
    bump = np.sin(np.pi * t)
    corner = -s.mouth_curve * (1 - bump)  # corners up for a smile
    up, down = 0.4 * s.mouth_open * bump, 0.6 * s.mouth_open * bump  # the jaw drops more
    offset = {
        "outer_upper": -up - s.lip_u * bump**0.6,
        "inner_upper": -up,
        "inner_lower": down,
        "outer_lower": down + s.lip_l * bump**0.8,
    }[lip]
    return np.stack([x, s.mouth_y + corner + offset], -1)


def _lin(a: float, b: float, n: int) -> np.ndarray:
    return np.linspace(a, b, n)


def _eye_ring(s: Shape, side: str, n_up: int, n_low: int, start: str) -> np.ndarray:
    """Corner, upper lid, other corner, lower lid (clockwise in the image for both eyes)."""
    up = _lin(0, 1, n_up + 2)
    low = _lin(1, 0, n_low + 2)[1:-1]
    ring = np.concatenate([eye(s, side, up, "upper"), eye(s, side, low, "lower")])
    if start == "inner":  # L eye in the 68/98 schemes starts at its inner corner
        ring = np.concatenate([eye(s, side, up[::-1], "upper"), eye(s, side, low[::-1], "lower")])
    return ring


def landmarks_68(s: Shape) -> np.ndarray:
    pts = [jaw(s, _lin(0, 1, 17))]
    pts += [brow(s, "R", _lin(0, 1, 5), "upper"), brow(s, "L", _lin(1, 0, 5), "upper")]
    pts += [nose_bridge(s, _lin(0.25, 1, 4)), nose_base(s, _lin(0, 1, 5))]
    pts += [_eye_ring(s, "R", 2, 2, "outer"), _eye_ring(s, "L", 2, 2, "inner")]
    pts += [mouth(s, _lin(0, 1, 7), "outer_upper"), mouth(s, _lin(1, 0, 7)[1:-1], "outer_lower")]
    pts += [mouth(s, _lin(0, 1, 5), "inner_upper"), mouth(s, _lin(1, 0, 5)[1:-1], "inner_lower")]
    return np.concatenate(pts).astype(np.float32)


def landmarks_98(s: Shape) -> np.ndarray:
    t5, t4 = _lin(0, 1, 5), _lin(0, 1, 6)[1:-1]
    pts = [jaw(s, _lin(0, 1, 33))]
    pts += [brow(s, "R", t5, "upper"), brow(s, "R", t4[::-1], "lower")]
    pts += [brow(s, "L", t5[::-1], "upper"), brow(s, "L", t4, "lower")]
    pts += [nose_bridge(s, _lin(0.25, 1, 4)), nose_base(s, _lin(0, 1, 5))]
    pts += [_eye_ring(s, "R", 3, 3, "outer"), _eye_ring(s, "L", 3, 3, "inner")]
    pts += [mouth(s, _lin(0, 1, 7), "outer_upper"), mouth(s, _lin(1, 0, 7)[1:-1], "outer_lower")]
    pts += [mouth(s, _lin(0, 1, 5), "inner_upper"), mouth(s, _lin(1, 0, 5)[1:-1], "inner_lower")]
    pts += [pupil(s, "R")[None], pupil(s, "L")[None]]
    return np.concatenate(pts).astype(np.float32)


def landmarks_29(s: Shape) -> np.ndarray:
    """COFW-29 (this renderer's reading of it; flip pairs as in HRNet's COFW table)."""
    b = {k: brow(s, k, np.array([0.0, 1.0, 0.5, 0.5]), "upper") for k in "RL"}
    bl = {k: brow(s, k, 0.5, "lower") for k in "RL"}
    e = {k: eye(s, k, np.array([0.0, 1.0, 0.5]), "upper") for k in "RL"}
    el = {k: eye(s, k, 0.5, "lower") for k in "RL"}
    nb = nose_base(s, np.array([0.0, 1.0]))
    pts = [b["R"][0], b["L"][0], b["R"][1], b["L"][1], b["R"][2], bl["R"], b["L"][2], bl["L"]]
    pts += [e["R"][0], e["L"][0], e["R"][1], e["L"][1], e["R"][2], el["R"], e["L"][2], el["L"]]
    pts += [pupil(s, "R"), pupil(s, "L"), nb[0], nb[1], nose_bridge(s, 1.0), nose_base(s, 0.5)]
    m = mouth(s, np.array([0.0, 1.0]), "outer_upper")
    pts += [m[0], m[1], mouth(s, 0.5, "outer_upper"), mouth(s, 0.5, "inner_upper")]
    pts += [mouth(s, 0.5, "inner_lower"), mouth(s, 0.5, "outer_lower"), jaw(s, 0.5)]
    return np.stack(pts).astype(np.float32)


def landmarks_19(s: Shape) -> np.ndarray:
    """AFLW-19: 6 brow, 6 eye (outer, centre, inner), 3 nose, 3 mouth, chin."""
    t3 = np.array([0.0, 0.5, 1.0])
    pts = [brow(s, "R", t3, "upper"), brow(s, "L", t3[::-1], "upper")]
    re = np.stack([eye(s, "R", 0.0, "upper"), pupil(s, "R"), eye(s, "R", 1.0, "upper")])
    le = np.stack([eye(s, "L", 1.0, "upper"), pupil(s, "L"), eye(s, "L", 0.0, "upper")])
    pts += [re, le, nose_base(s, t3[[0]]), nose_bridge(s, 1.0)[None], nose_base(s, t3[[2]])]
    corners = mouth(s, np.array([0.0, 1.0]), "outer_upper")
    centre = (mouth(s, 0.5, "inner_upper") + mouth(s, 0.5, "inner_lower")) / 2
    pts += [corners[:1], centre[None], corners[1:], jaw(s, 0.5)[None]]
    return np.concatenate(pts).astype(np.float32)


def landmarks_106(s: Shape) -> np.ndarray:
    """LaPa-106 stand-in: only 104/105 (pupils), 54 (nose tip), 84/90 (mouth corners) matter."""
    t5, t4 = _lin(0, 1, 5), _lin(0, 1, 6)[1:-1]
    pts = [jaw(s, _lin(0, 1, 33))]  # 0-32
    pts += [brow(s, "R", t5, "upper"), brow(s, "R", t4[::-1], "lower")]  # 33-41
    pts += [brow(s, "L", t5[::-1], "upper"), brow(s, "L", t4, "lower")]  # 42-50
    pts += [nose_bridge(s, _lin(0.25, 0.85, 3)), nose_bridge(s, 1.0)[None]]  # 51-53, 54 tip
    pts += [nose_base(s, _lin(0, 1, 5))]  # 55-59
    pts += [_eye_ring(s, "R", 3, 3, "outer"), _eye_ring(s, "L", 3, 3, "inner")]  # 60-75
    pts += [nose_base(s, _lin(0.1, 0.9, 8))]  # 76-83
    pts += [mouth(s, _lin(0, 1, 7), "outer_upper"), mouth(s, _lin(1, 0, 7)[1:-1], "outer_lower")]
    pts += [mouth(s, _lin(0, 1, 5), "inner_upper"), mouth(s, _lin(1, 0, 5)[1:-1], "inner_lower")]
    pts += [pupil(s, "R")[None], pupil(s, "L")[None]]  # 104, 105
    return np.concatenate(pts).astype(np.float32)


LANDMARK_SETS = {68: landmarks_68, 98: landmarks_98, 29: landmarks_29, 19: landmarks_19}
LANDMARK_SETS[106] = landmarks_106
