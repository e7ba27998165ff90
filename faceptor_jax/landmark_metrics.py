"""Face-alignment metrics of the original's `align_evaluator`: per-image NME with each dataset's
normalisation, AUC/FR from the CED curve, and the 300W common/challenging/full split. Host-side
numpy.

Points are (x, y) in original-image pixels (after mapping predictions back through the test crop).
NME per image = mean_k ‖p_k − p̂_k‖ / d; the dataset NME is its mean over images. AUC = Simpson
integral of the CED on xs = arange(0, thr + 1e-4, 1e-4), divided by thr, FR = 1 − CED(xs[-1]),
both exactly as the original (`scipy.integrate.simps` of its era, even='avg'; note that for
thr = 0.07 the grid has 702 points and ends at 0.0701).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import field

import numpy as np

from faceptor_jax.accumulators import CAT, Accumulator


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """d = ‖mean(p[left]) − mean(p[right])‖ (kind 'points'), √(w·h) ('box'), √(w²+h²) ('box_diag')
    of the ground-truth landmarks / the dataset's box (y1, x1, y2, x2)."""

    kind: str
    left: tuple[int, ...] = ()
    right: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class LandmarkProtocol:
    num_points: int
    norms: Mapping[str, Normalizer]  # reported NMEs, in column order
    auc_fr: tuple[str, float] | None  # (normaliser, threshold) of AUC/FR, if reported
    subsets: tuple[str, ...] = ()  # named subsets; 'full' = their union


def _pts(left, right) -> Normalizer:
    return Normalizer("points", tuple(left), tuple(right))


PROTOCOLS: dict[str, LandmarkProtocol] = {
    "300w": LandmarkProtocol(
        68,
        {"inter_ocular": _pts([36], [45]), "inter_pupil": _pts(range(36, 42), range(42, 48))},
        None,
        subsets=("common", "challenging"),
    ),
    "cofw": LandmarkProtocol(29, {"inter_ocular": _pts([8], [9])}, ("inter_ocular", 0.1)),
    "wflw": LandmarkProtocol(
        98,
        {"inter_ocular": _pts([60], [72]), "inter_pupil": _pts([96], [97])},
        ("inter_ocular", 0.1),
    ),
    "aflw": LandmarkProtocol(
        19,
        {
            "inter_ocular": _pts([6], [11]),
            "inter_pupil": _pts([7], [10]),
            "box": Normalizer("box"),
            "diag": Normalizer("box_diag"),
        },
        ("box", 0.07),
    ),
    # LaPa-106 (not in the paper): normalised by the pupils, 104 and 105
    "lapa": LandmarkProtocol(106, {"inter_pupil": _pts([104], [105])}, None),
}


def get_protocol(name: str) -> LandmarkProtocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown landmark protocol '{name}'; valid: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def unit_distance(norm: Normalizer, gt: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Normalising distance per image. gt [B,K,2] pixels; box [B,4] (y1,x1,y2,x2) -> [B]."""
    if norm.kind == "points":
        left = gt[:, list(norm.left)].mean(1)
        right = gt[:, list(norm.right)].mean(1)
        return np.linalg.norm(left - right, axis=-1)
    if box is None:
        raise ValueError(f"landmarks: normaliser '{norm.kind}' needs the box (y1, x1, y2, x2)")
    h, w = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    return np.sqrt(h * w) if norm.kind == "box" else np.sqrt(w * w + h * h)


def per_image_nme(pred: np.ndarray, gt: np.ndarray, d: np.ndarray) -> np.ndarray:
    """mean_k ‖pred − gt‖ / d. pred, gt [B,K,2]; d [B] -> [B]."""
    return np.mean(np.linalg.norm(gt - pred, axis=-1) / d[:, None], axis=1)


def simpson_legacy(y: np.ndarray, x: np.ndarray) -> float:
    """`scipy.integrate.simps(y, x=x)` as in scipy ≤ 1.10 (odd N: composite Simpson for uneven
    spacing; even N: average of Simpson on the first/last N−1 points plus a trapezoid)."""
    y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)

    def basic(start: int, stop: int) -> float:
        h = np.diff(x)
        h0, h1 = h[start:stop:2], h[start + 1 : stop + 1 : 2]
        hsum, hprod, h0h1 = h0 + h1, h0 * h1, h0 / h1
        y0, y1, y2 = y[start:stop:2], y[start + 1 : stop + 1 : 2], y[start + 2 : stop + 2 : 2]
        tmp = (
            hsum
            / 6.0
            * (y0 * (2.0 - 1.0 / h0h1) + y1 * (hsum * (hsum / hprod)) + y2 * (2.0 - h0h1))
        )
        return float(np.sum(tmp))

    n = len(y)
    if n % 2 == 1:
        return basic(0, n - 2)
    val = 0.5 * (x[-1] - x[-2]) * (y[-1] + y[-2]) + 0.5 * (x[1] - x[0]) * (y[1] + y[0])
    result = basic(0, n - 3) + basic(1, n - 2)
    return result / 2.0 + val / 2.0


def auc_fr(nmes: np.ndarray, threshold: float, step: float = 1e-4) -> tuple[float, float]:
    """(AUC, FR) of per-image NMEs at `threshold`, both fractions in [0, 1], as the original."""
    nmes = np.sort(np.asarray(nmes, np.float64))
    if nmes.size == 0:
        raise ValueError("auc_fr: no images")
    xs = np.arange(0.0, threshold + step, step)
    ced = np.searchsorted(nmes, xs, side="right") / nmes.size  # = count(nme ≤ x) / n
    return simpson_legacy(ced, xs) / threshold, 1.0 - float(ced[-1])


@dataclasses.dataclass(frozen=True)
class LandmarkAccumulator(Accumulator):
    """Per-image NMEs of one dataset. nme float64 [N, n_norms] (columns = protocol.norms order);
    subset int [N] (index into protocol.subsets, 0 when it has none)."""

    nme: np.ndarray = field(default=None, metadata=CAT)
    subset: np.ndarray = field(default=None, metadata=CAT)

    @classmethod
    def from_batch(
        cls,
        protocol: str,
        pred: np.ndarray,
        gt: np.ndarray,
        box: np.ndarray | None = None,
        subset: int | Sequence[int] = 0,
    ) -> "LandmarkAccumulator":
        """pred, gt [B,K,2] original-image pixels; box [B,4] (y1,x1,y2,x2) for AFLW's box norms."""
        p = get_protocol(protocol)
        pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
        if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[1:] != (p.num_points, 2):
            raise ValueError(
                f"landmarks[{protocol}]: pred {pred.shape} / gt {gt.shape}, "
                f"expected [B,{p.num_points},2]"
            )
        if not np.all(np.isfinite(pred)):
            raise ValueError(f"landmarks[{protocol}]: predictions contain NaN or inf")
        box = None if box is None else np.asarray(box, np.float64).reshape(-1, 4)
        cols = []
        for name, norm in p.norms.items():
            d = unit_distance(norm, gt, box)
            if not np.all(d > 0):
                raise ValueError(f"landmarks[{protocol}]: '{name}' distance is 0 for some image")
            cols.append(per_image_nme(pred, gt, d))
        sub = np.broadcast_to(np.asarray(subset, np.int64), (pred.shape[0],)).copy()
        if p.subsets and (sub.min() < 0 or sub.max() >= len(p.subsets)):
            raise ValueError(f"landmarks[{protocol}]: subset ids must index {p.subsets}")
        return cls(nme=np.stack(cols, axis=1), subset=sub)

    def compute(self, protocol: str) -> dict[str, dict[str, float]]:
        """{subset or 'full': {norm: NME, 'auc_<norm>_<thr>': AUC, 'fr_<norm>_<thr>': FR}}.

        'full' is the mean over the union of all images, i.e. the image-count-weighted
        combination of the subsets (300W full = common + challenging). Fractions, not %.
        """
        self._require("nme")
        p = get_protocol(protocol)
        groups = {"full": np.ones(len(self.subset), bool)}
        for i, name in enumerate(p.subsets):
            groups[name] = self.subset == i
        out = {}
        for group, sel in groups.items():
            if not sel.any():
                continue
            res = {n: float(np.mean(self.nme[sel, j])) for j, n in enumerate(p.norms)}
            if p.auc_fr is not None:
                norm, thr = p.auc_fr
                auc, fr = auc_fr(self.nme[sel, list(p.norms).index(norm)], thr)
                tag = f"{norm}_{round(thr * 100)}"
                res[f"auc_{tag}"], res[f"fr_{tag}"] = auc, fr
            out[group] = res
        return out
