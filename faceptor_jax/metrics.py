"""Evaluation metrics of the 112-px tasks and parsing, as the original's evaluators compute them,
as mergeable accumulators.

Each accumulator is built per batch with `from_batch(...)` from host numpy arrays (NaN/inf in the
predictions or mismatched shapes -> ValueError), merged with `merge` across batches, and turned
into numbers by `compute()`.
Percentages are in [0, 100] as the original logs them; F1 in [0, 1]. Verification lives in
`verification.py`, landmarks in `landmark_metrics.py`.
"""

import dataclasses
from dataclasses import field

import numpy as np

from faceptor_jax.accumulators import SUM, Accumulator
from faceptor_jax.datasets import CELEBA_ATTRIBUTES, CELEBAMASK_HQ_LABELS, EXPRESSIONS


def _finite(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: predictions contain NaN or inf")
    return x


def _same_shape(name: str, a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: predictions {a.shape} vs labels {b.shape}{what}")


def _confusion(gt: np.ndarray, pred: np.ndarray, n: int, name: str) -> np.ndarray:
    """Confusion counts [n, n] (row = ground truth, column = prediction) of int label arrays."""
    gt, pred = gt.reshape(-1).astype(np.int64), pred.reshape(-1).astype(np.int64)
    for arr, what in ((gt, "labels"), (pred, "predictions")):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"{name}: {what} outside [0, {n}): {arr.min()}..{arr.max()}")
    return np.bincount(n * gt + pred, minlength=n * n).reshape(n, n)


# ----------------------------------------------------------------------------- age
@dataclasses.dataclass(frozen=True)
class AgeAccumulator(Accumulator):
    """`AgeEvaluator_V2`: MAE (years), CS@5 (% with |â − age| ≤ 5), ε-error (σ = 3)."""

    count: np.ndarray = field(default=None, metadata=SUM)
    abs_err: np.ndarray = field(default=None, metadata=SUM)
    within5: np.ndarray = field(default=None, metadata=SUM)
    eps: np.ndarray = field(default=None, metadata=SUM)

    @classmethod
    def from_batch(
        cls, pred_age: np.ndarray, age: np.ndarray, sigma: np.ndarray | float = 3.0
    ) -> "AgeAccumulator":
        """pred_age [B] expected age in years (`losses.expected_age`), age [B] ground truth;
        sigma: the ε-error's σ, one for all or [B] per image (an apparent age's std)."""
        pred = _finite("age", pred_age).astype(np.float64)
        age = np.asarray(age, np.float64)
        _same_shape("age", pred, age)
        err = np.abs(pred - age)
        return cls(
            count=np.asarray(pred.size, np.int64),
            abs_err=np.sum(err),
            within5=np.asarray(np.sum(err <= 5), np.int64),
            eps=np.sum(1 - np.exp(-np.square(err) / (2 * np.square(sigma)))),
        )

    def compute(self) -> dict[str, float]:
        self._require("count")
        n = float(self.count)
        return {
            "mae": float(self.abs_err / n),
            "cs5": float(100 * self.within5 / n),
            "eps_error": float(self.eps / n),
        }


# ----------------------------------------------------------------------------- expression
@dataclasses.dataclass(frozen=True)
class ClassificationAccumulator(Accumulator):
    """`SingferEvaluator`: top-1 accuracy (%) plus mean per-class accuracy (%) from a confusion."""

    confusion: np.ndarray = field(default=None, metadata=SUM)

    @classmethod
    def from_batch(cls, logits: np.ndarray, labels: np.ndarray) -> "ClassificationAccumulator":
        """logits [B,C] (argmax, first on ties), labels int [B] in [0, C)."""
        logits = _finite("expression", logits)
        labels = np.asarray(labels)
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f"expression: logits {logits.shape} vs labels {labels.shape}")
        n = logits.shape[1]
        return cls(confusion=_confusion(labels, np.argmax(logits, axis=1), n, "expression"))

    def compute(self, class_names=EXPRESSIONS) -> dict[str, object]:
        """Mean class accuracy averages only classes that occur in the labels."""
        self._require("confusion")
        c = self.confusion.astype(np.float64)
        support = c.sum(1)
        per_class = np.divide(np.diag(c), support, out=np.zeros_like(support), where=support > 0)
        names = class_names if len(class_names) == len(c) else [str(i) for i in range(len(c))]
        return {
            "accuracy": float(100 * np.trace(c) / c.sum()),
            "mean_class_accuracy": 100 * float(np.mean(per_class[support > 0])),
            "per_class": {n: 100 * float(a) for n, a in zip(names, per_class, strict=True)},
        }


# ----------------------------------------------------------------------------- attributes
@dataclasses.dataclass(frozen=True)
class AttributeAccumulator(Accumulator):
    """`BiAttrEvaluator`: per-attribute accuracy, their mean ("Mean-Acc", the number the original
    reports) and the label-balanced mA = mean over attributes of (TPR + TNR)/2.

    Prediction = round(σ(logit)) in float32 (σ = 0.5 rounds to 0). Labels −1 are skipped; the
    original counted them as errors, which differs only if a label is −1 (never in CelebA).
    An attribute without positives (negatives) contributes TPR (TNR) = 0, as Rethinking-of-PAR.
    """

    correct: np.ndarray = field(default=None, metadata=SUM)
    valid: np.ndarray = field(default=None, metadata=SUM)
    tp: np.ndarray = field(default=None, metadata=SUM)
    pos: np.ndarray = field(default=None, metadata=SUM)
    tn: np.ndarray = field(default=None, metadata=SUM)
    neg: np.ndarray = field(default=None, metadata=SUM)

    @classmethod
    def from_batch(cls, logits: np.ndarray, labels: np.ndarray) -> "AttributeAccumulator":
        """logits [B,A]; labels int [B,A] in {0,1}, −1 = unknown."""
        logits = _finite("attributes", logits).astype(np.float32)
        labels = np.asarray(labels)
        _same_shape("attributes", logits, labels)
        with np.errstate(over="ignore"):
            sig = np.float32(1) / (np.float32(1) + np.exp(-logits))
        pred = sig > np.float32(0.5)
        valid, pos, neg = labels != -1, labels == 1, labels == 0
        return cls(
            correct=np.sum(valid & (pred == pos), 0),
            valid=np.sum(valid, 0),
            tp=np.sum(pos & pred, 0),
            pos=np.sum(pos, 0),
            tn=np.sum(neg & ~pred, 0),
            neg=np.sum(neg, 0),
        )

    def compute(self, names=CELEBA_ATTRIBUTES) -> dict[str, object]:
        self._require("valid")
        acc = 100 * self.correct / np.maximum(self.valid, 1)
        eps = 1e-20
        ma = 100 * (self.tp / (self.pos + eps) + self.tn / (self.neg + eps)) / 2
        names = names if len(names) == len(acc) else [str(i) for i in range(len(acc))]
        return {
            "mean_accuracy": float(np.mean(acc)),
            "mA": float(np.mean(ma)),
            "per_attribute": {n: float(a) for n, a in zip(names, acc, strict=True)},
        }


# ----------------------------------------------------------------------------- parsing
@dataclasses.dataclass(frozen=True)
class ParsingAccumulator(Accumulator):
    """`ParsingEvaluator`: dataset-level confusion matrix -> per-class F1 = 2·TP/(#pred + #gt) and
    "FG-Mean", the mean F1 over every class except background.

    A class absent from both predictions and labels (F1 = 0/0, NaN in the original) gets F1 = 1.0
    — nothing was mislabelled into or out of it — and is listed under `empty_classes`.
    """

    confusion: np.ndarray = field(default=None, metadata=SUM)

    @classmethod
    def from_batch(
        cls, pred: np.ndarray, mask: np.ndarray, num_classes: int
    ) -> "ParsingAccumulator":
        """pred, mask int [B,H,W] (or [H,W]) label maps at the evaluation resolution."""
        pred, mask = np.asarray(pred), np.asarray(mask)
        if np.issubdtype(pred.dtype, np.floating):
            raise ValueError("parsing: pass label maps (argmax of the logits), not float scores")
        _same_shape("parsing", pred, mask)
        return cls(confusion=_confusion(mask, pred, num_classes, "parsing"))

    def compute(self, label_names=CELEBAMASK_HQ_LABELS, bg="background") -> dict[str, object]:
        self._require("confusion")
        c = self.confusion.astype(np.float64)
        if len(label_names) != len(c):
            raise ValueError(f"parsing: {len(label_names)} label names for {len(c)} classes")
        denom = c.sum(0) + c.sum(1)
        f1 = np.divide(2 * np.diag(c), denom, out=np.ones_like(denom), where=denom > 0)
        per_class = {n: float(v) for n, v in zip(label_names, f1, strict=True)}
        fg = [v for n, v in per_class.items() if n != bg]
        return {
            "fg_mean": float(np.mean(fg)),
            "per_class": per_class,
            "empty_classes": [n for n, d in zip(label_names, denom, strict=True) if d == 0],
        }
