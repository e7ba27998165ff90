"""IJB-C 1:1 verification as a recognition test set (`recognition.TYPE.protocols["ijbc"]`).

Each loose crop of the built `ijbc/faces` is aligned onto the ArcFace template from its 5 points
(insightface's `norm_crop`: a similarity, bilinear, black border) and embedded with its mirror
image; the model's unnormalised embeddings are summed per crop and kept as float32 [N, D] with
the face score, template and media ids (no images are held: the batches stream). At the end
`faceptor_jax.ijbc` scores the template pairs of the built `ijbc/pairs` (dataset `ijbc_pairs`):
score weighting, media means, template sums, cosine, TAR at the paper's FARs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from absl import logging

from faceptor_jax import datasets, ijbc, preprocess, report
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import EvalProtocol

PAIRS = "ijbc_pairs"  # the dataset holding the template pairs (`datasets.DATASETS`)


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    """A loose crop aligned from its 5 points to the [size, size, 3] ArcFace crop, normalised."""
    if train:
        raise ValueError(f"{dataset.display} is a test set: it has no training transform")
    image = crops.decode_image(record["image"])
    matrix = crops.ARCFACE.align(np.asarray(record["landmarks"], np.float32), size)
    face = preprocess.warp(image, matrix, size)
    return {
        "image": crops.ARCFACE.normalize(face),
        "face_score": np.float32(record["face_score"]),
        "template": np.int32(record["template"]),
        "media": np.int32(record["media"]),
    }


def eval_images(batch: Mapping[str, jax.Array]) -> jax.Array:
    """[2B, S, S, 3]: the crops, then their mirror images."""
    from faceptor_jax.tasks import recognition  # the recognition type imports this file

    return recognition.flip_views(batch["image"])


def eval_rows(raw: Mapping) -> dict:
    """[2B, E] -> [B, 2, E] (crop, mirrored crop)."""
    e = np.asarray(raw["embedding"])
    return {"embedding": e.reshape(2, -1, e.shape[-1]).transpose(1, 0, 2)}


@dataclasses.dataclass(frozen=True)
class Part:
    """One batch's valid rows: index [n] (row of the meta files), feature [n, D] float32
    (emb + emb of the flip, unnormalised), face_score [n], template [n], media [n]."""

    index: np.ndarray
    feature: np.ndarray
    face_score: np.ndarray
    template: np.ndarray
    media: np.ndarray


@dataclasses.dataclass(frozen=True)
class TemplateAccumulator:
    """The template pairs (from `start`) and the batches' parts; merging appends parts (one
    concatenation at the end, not one per batch: IJB-C has 469k crops). `images`: the size of
    the test split (fewer features mean a limited run, `config.eval_max_batches`)."""

    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    images: int = 0
    parts: tuple[Part, ...] = ()

    def merge(self, other: TemplateAccumulator) -> TemplateAccumulator:
        pairs = self.pairs if self.pairs is not None else other.pairs
        return TemplateAccumulator(pairs, max(self.images, other.images), self.parts + other.parts)

    def features(self) -> Part:
        """Every part's rows, in the meta files' order; each image at most once."""
        if not self.parts:
            raise ValueError("ijbc: no image features accumulated")
        index = np.concatenate([p.index for p in self.parts])
        order = np.argsort(index, kind="stable")
        if np.any(np.diff(index[order]) == 0):
            raise ValueError("ijbc: an image was evaluated twice")
        row = np.empty_like(order)
        row[order] = np.arange(len(order))  # each accumulated row's place in the output
        out = {}
        for f in dataclasses.fields(Part):  # filled in place: no second [N, D] copy
            first = getattr(self.parts[0], f.name)
            out[f.name] = np.empty((len(index), *first.shape[1:]), first.dtype)
            start = 0
            for p in self.parts:
                values = getattr(p, f.name)
                out[f.name][row[start : start + len(values)]] = values
                start += len(values)
        return Part(**out)


def evaluate(raw, batch, dataset: str, size: int) -> TemplateAccumulator:
    e = np.asarray(raw["embedding"], np.float32)  # [B, 2, E]
    part = Part(
        index=np.asarray(batch["index"], np.int64),
        feature=e[:, 0] + e[:, 1],
        face_score=np.asarray(batch["face_score"], np.float32),
        template=np.asarray(batch["template"], np.int64),
        media=np.asarray(batch["media"], np.int64),
    )
    return TemplateAccumulator(parts=(part,))


def start(dataset: str, source, sources, size: int) -> TemplateAccumulator:
    """The template pairs (`ijbc_pairs`' test split) and the size of the faces' (`source`)."""
    chunks = sources(PAIRS, "test", size)
    pairs = ijbc.pairs_from_chunks(chunks[i] for i in range(len(chunks)))
    return TemplateAccumulator(pairs=pairs, images=len(source))


def _scorable(acc: TemplateAccumulator, f: Part) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs; in a limited run (fewer images than the split) only those whose templates
    both have an image, with a warning: such figures are not the protocol's."""
    a, b, y = acc.pairs
    if len(f.index) >= acc.images:
        return a, b, y
    keep = np.isin(a, f.template) & np.isin(b, f.template)
    logging.warning(
        "ijbc: %d of %d images evaluated (config.eval_max_batches): scoring the %d of %d pairs "
        "whose templates have an image; not the protocol's figures",
        len(f.index), acc.images, int(keep.sum()), len(y),
    )  # fmt: skip
    return a[keep], b[keep], y[keep]


def summarize(acc: TemplateAccumulator, dataset: str) -> report.Result:
    """TAR at `ijbc.FARS` ({} when a limited run leaves no genuine and impostor pair)."""
    if acc.pairs is None:
        raise ValueError(f"{dataset}: no template pairs (start was not run)")
    f = acc.features()
    a, b, y = _scorable(acc, f)
    feats = ijbc.image_features(f.feature, None, f.face_score)
    unique_templates, template_feats = ijbc.template_features(feats, f.template, f.media)
    tar = {}
    if y.any() and not y.all():
        scores = ijbc.pair_scores(unique_templates, template_feats, a, b)
        tar = ijbc.tar_at_far(y, scores)
    else:
        logging.warning("ijbc: no genuine and impostor pairs to score among %d", len(y))
    metrics = {"tar_at_far": tar, "pairs": len(y), "templates": len(unique_templates),
               "images": len(f.index)}  # fmt: skip
    return report.Result("verification", dataset, metrics)


def is_template_result(result: report.Result) -> bool:
    """A result of this protocol (recognition's report splits its tables on it)."""
    return "templates" in result.metrics


def far_label(far: float) -> str:
    """1e-06 -> '1e-6', as the paper's table heads."""
    return f"{far:.0e}".replace("e-0", "e-")


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    """The paper's IJB-C table: one row per template set, TAR (%) at each FAR ([] for none)."""
    if not results:
        return []
    fars = ijbc.FARS
    header = ("TAR (%) @ FAR", *(far_label(far) for far in fars))
    rows = tuple(
        (report.display(r.dataset), *(report.fmt(r.metrics["tar_at_far"].get(far), 100)
                                      for far in fars))
        for r in results
    )  # fmt: skip
    return [report.Table("Face verification (1:1 templates)", header, rows)]


PROTOCOL = EvalProtocol(
    transform=transform, eval_images=eval_images, eval_rows=eval_rows, evaluate=evaluate,
    summarize=summarize, start=start,
)  # fmt: skip
