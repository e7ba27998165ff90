"""IJB-C 1:1 template verification (insightface's protocol), pure numpy.

The meta files of insightface's IJB release (`IJBC/meta/`):
  ijbc_name_5pts_score.txt      `name x1 y1 … x5 y5 face_score` per loose crop (row i = image i)
  ijbc_face_tid_mid.txt         `name template_id media_id`, row-aligned with the file above
  ijbc_template_pair_label.txt  `template_a template_b label` (1 genuine, 0 impostor)

Protocol: each image's feature is emb(aligned crop) + emb(its horizontal flip), left unnormalised
(the norm carries quality) and multiplied by the detector's face score; features of one media
(video frames or a still) are averaged, the media features of one template summed and the sum
L2-normalised; a pair's score is the cosine of its two templates. TAR@FAR is read off the ROC
(built like scikit-learn's `roc_curve`, intermediate collinear points dropped) at the point whose
FAR is nearest to each target, the highest TAR among ties.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # the paper's IJB-C table
PAIR_BATCH = 100_000  # pairs scored at once: [batch, D] gathers stay small


class IJBCFormatError(ValueError):
    """A meta file is missing or not in the layout above."""


def _read_table(path: str, what: str, dtype, columns: int) -> np.ndarray:
    if not os.path.exists(path):
        raise IJBCFormatError(f"{path}: missing; expected {what}")
    try:
        table = np.loadtxt(path, dtype=dtype, ndmin=2, comments=None)
    except ValueError as e:
        raise IJBCFormatError(f"{path}: malformed; expected {what} ({e})") from e
    if table.shape[1] != columns:
        raise IJBCFormatError(f"{path}: {table.shape[1]} columns, expected {columns} ({what})")
    return table


def read_template_media(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ijbc_face_tid_mid.txt` -> (names [N] str, templates [N] int64, medias [N] int64)."""
    table = _read_table(path, "lines 'name template_id media_id'", str, 3)
    try:
        return table[:, 0], table[:, 1].astype(np.int64), table[:, 2].astype(np.int64)
    except ValueError as e:
        raise IJBCFormatError(f"{path}: template/media ids must be integers ({e})") from e


def read_template_pairs(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ijbc_template_pair_label.txt` -> (template_a [P], template_b [P], label [P]) int64."""
    table = _read_table(path, "lines 'template_a template_b label' (integers)", np.int64, 3)
    return table[:, 0], table[:, 1], table[:, 2]


def read_landmarks(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ijbc_name_5pts_score.txt` -> (names [N], points [N,5,2] float32 (x, y), scores [N])."""
    table = _read_table(path, "lines 'name x1 y1 … x5 y5 face_score'", str, 12)
    try:
        values = table[:, 1:].astype(np.float32)
    except ValueError as e:
        raise IJBCFormatError(f"{path}: landmarks and score must be numbers ({e})") from e
    return table[:, 0], values[:, :10].reshape(-1, 5, 2), values[:, 10]


def image_features(
    embeddings: np.ndarray, flipped: np.ndarray | None = None, face_scores: np.ndarray | None = None
) -> np.ndarray:
    """[N, D] embeddings (+ those of the flipped crops) [× face score] -> [N, D] float64."""
    feats = np.asarray(embeddings, np.float64)
    if flipped is not None:
        feats = feats + np.asarray(flipped, np.float64)
    if face_scores is not None:
        feats = feats * np.asarray(face_scores, np.float64)[:, None]
    return feats


def template_features(
    feats: np.ndarray, templates: np.ndarray, medias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] image features -> (sorted unique template ids [T], L2-normalised features [T, D]).

    Media-mean within each (template, media), then the sum over a template's medias.
    """
    feats = np.asarray(feats, np.float64)
    templates, medias = np.asarray(templates), np.asarray(medias)
    if not len(feats) == len(templates) == len(medias):
        raise ValueError(
            f"{len(feats)} features, {len(templates)} template ids, {len(medias)} media ids: "
            "expected one of each per image"
        )
    keys, media_of = np.unique(np.stack([templates, medias], 1), axis=0, return_inverse=True)
    media_of = media_of.reshape(-1)
    media_sum = np.zeros((len(keys), feats.shape[1]))
    np.add.at(media_sum, media_of, feats)
    media_mean = media_sum / np.bincount(media_of, minlength=len(keys))[:, None]
    unique_templates, template_of = np.unique(keys[:, 0], return_inverse=True)
    template_sum = np.zeros((len(unique_templates), feats.shape[1]))
    np.add.at(template_sum, template_of.reshape(-1), media_mean)
    norm = np.linalg.norm(template_sum, axis=1, keepdims=True)
    return unique_templates, template_sum / np.maximum(norm, 1e-12)


def pair_scores(
    unique_templates: np.ndarray,
    template_feats: np.ndarray,
    template_a: np.ndarray,
    template_b: np.ndarray,
) -> np.ndarray:
    """Cosine of each pair's template features [P] (`unique_templates` sorted, as returned by
    `template_features`); template ids without an image are an error."""
    unique_templates = np.asarray(unique_templates)
    wanted = np.unique(np.concatenate([template_a, template_b]))
    pos = np.minimum(np.searchsorted(unique_templates, wanted), len(unique_templates) - 1)
    missing = wanted[unique_templates[pos] != wanted]
    if len(missing):
        raise KeyError(
            f"{len(missing)} template id(s) in the pairs have no image: {missing[:10].tolist()}"
        )
    ia = np.searchsorted(unique_templates, template_a)
    ib = np.searchsorted(unique_templates, template_b)
    scores = np.empty(len(ia))
    for s in range(0, len(ia), PAIR_BATCH):
        a, b = template_feats[ia[s : s + PAIR_BATCH]], template_feats[ib[s : s + PAIR_BATCH]]
        scores[s : s + PAIR_BATCH] = np.einsum("pd,pd->p", a, b)
    return scores


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr), each [R], from the highest threshold down, as scikit-learn's `roc_curve`
    with `drop_intermediate=True`: one point per distinct score, a point dropped where the steps
    before and after it are equal in both counts, (0, 0) prepended."""
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (impostor) or 1 (genuine)")
    if labels.all() or not labels.any():
        raise ValueError("the ROC needs both genuine (1) and impostor (0) pairs")
    order = np.argsort(np.asarray(scores), kind="mergesort")[::-1]
    s, y = np.asarray(scores)[order], labels[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    if len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1]


def tar_at_far(
    labels: np.ndarray, scores: np.ndarray, fars: Sequence[float] = FARS
) -> dict[float, float]:
    """{far: TAR at the ROC point whose FAR is nearest `far` (the highest TAR among ties)}."""
    fpr, tpr = roc_curve(labels, scores)
    fpr, tpr = fpr[::-1], tpr[::-1]  # ties in |fpr - far| resolve to the first = highest TAR
    return {far: float(tpr[int(np.argmin(np.abs(fpr - far)))]) for far in fars}


def evaluate(
    embeddings: np.ndarray,
    flipped: np.ndarray | None,
    face_scores: np.ndarray | None,
    templates: np.ndarray,
    medias: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    fars: Sequence[float] = FARS,
) -> dict[float, float]:
    """The whole protocol: per-image embeddings [N, D] -> {far: TAR} over the template pairs."""
    feats = image_features(embeddings, flipped, face_scores)
    unique_templates, template_feats = template_features(feats, templates, medias)
    template_a, template_b, labels = pairs
    scores = pair_scores(unique_templates, template_feats, template_a, template_b)
    return tar_at_far(labels, scores, fars)


def format_table(results: dict[str, dict[float, float]]) -> str:
    """Rows `name | TAR% at each FAR` like the paper's IJB-C table."""
    fars = sorted({far for row in results.values() for far in row})
    lines = [" | ".join(["method", *(f"{far:.0e}" for far in fars)])]
    for name, row in results.items():
        lines.append(" | ".join([name, *(f"{100 * row[far]:.2f}" for far in fars)]))
    return "\n".join(lines)


def pairs_from_chunks(chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of the built `ijbc/pairs` ({template_a, template_b, label} [n] each), in order,
    -> (template_a [P], template_b [P], label [P])."""
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no pair records")
    keys = ("template_a", "template_b", "label")
    a, b, y = (np.concatenate([np.asarray(c[k], np.int64) for c in chunks]) for k in keys)
    return a, b, y
