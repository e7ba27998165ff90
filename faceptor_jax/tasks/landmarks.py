"""Face alignment (300W 68, COFW 29, WFLW 98, AFLW 19, LaPa 106 points): one heatmap per landmark
at 4× the token grid; points are the soft-argmax of the sigmoid heatmaps.

In pixels of the model's input image: x_px = x_norm·W − 0.5 (the original's denormalisation,
pixel centres at integers); mapping back to the original photo is the pipeline's crop inverse.
Training crops are the dataset's face box (or, for a dataset without boxes such as LaPa, the
points' extent) scaled by the dataset's `scale_mu` and jittered.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import augment, datasets, landmark_metrics, losses, preprocess, report
from faceptor_jax.landmark_metrics import LandmarkAccumulator
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType

HEATMAP_RADIUS = 5.0  # pixels of the 128² heatmap of a 512² input


def _box(record, pts: np.ndarray) -> np.ndarray:
    """The record's face box (y1, x1, y2, x2), else the points' extent."""
    if "box" in record:
        return np.asarray(record["box"], np.float32)
    (x1, y1), (x2, y2) = pts.min(0), pts.max(0)
    return np.array([y1, x1, y2, x2], np.float32)


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    crops.check_policy(policy)
    image = crops.dense_image(record)
    pts = np.asarray(record["landmarks"], np.float32)
    box = _box(record, pts)
    matrix = preprocess.crop_matrix(box, size)
    c = (size - 1) / 2.0
    mu = dataset.scale_mu
    if train:
        jitter = preprocess.random_similarity(
            rng, size, 0.05, 0.174, 0.1, mu, rot_normal=False, scale_normal=False
        )
    else:
        jitter = preprocess.similarity_matrix(0.0, mu, (0.0, 0.0), (c, c))
    matrix = jitter @ matrix
    warped = preprocess.warp(image, matrix, size)
    out = {"landmarks": preprocess.source_to_warped(pts, matrix, 0.0, size)}
    if train:
        if policy == "original":
            warped = augment.dense_color_aug(rng, warped, occlusion=True)
        return out | {"image": crops.FACE5.normalize(warped)}
    out |= {"image": crops.FACE5.normalize(warped), "crop_matrix": matrix.astype(np.float32)}
    return out | {"landmarks_orig": pts, "box": box}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    size = jnp.asarray([task.input_size, task.input_size], jnp.float32)
    return {
        "heatmap": raw["heatmap"],
        "landmarks_normalized": raw["landmarks"],
        "landmarks": raw["landmarks"] * size - 0.5,
    }


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    """AlignLoss: mean L2 of normalised points + heatmap BCE against rendered Gaussians."""
    hm_size = ctx.image_size // 4
    return losses.landmark_loss(
        raw["heatmap"],  # [B, h, w, K]
        raw["landmarks"],
        batch["landmarks"],
        input_size=ctx.image_size,
        heatmap_size=hm_size,
        radius=HEATMAP_RADIUS * hm_size / 128,
    )


def evaluate(raw, batch, dataset: str, size: int) -> LandmarkAccumulator:
    """Predictions mapped back through the test crop to original-image pixels, then NME."""
    pred = np.asarray(raw["landmarks"], np.float64) * size - 0.5
    pred = np.stack(
        [
            preprocess.warped_to_source(p, m, 0.0, size)
            for p, m in zip(pred, batch["crop_matrix"], strict=True)
        ]
    )
    protocol = datasets.get(dataset).protocol
    return LandmarkAccumulator.from_batch(protocol, pred, batch["landmarks_orig"], batch["box"])


def summarize(acc: LandmarkAccumulator, dataset: str) -> report.Result:
    protocol = datasets.get(dataset).protocol
    return report.Result("landmarks", protocol, acc.compute(protocol))


def _table(r: report.Result) -> report.Table:
    proto = landmark_metrics.get_protocol(r.dataset.split("_")[0])
    groups = [g for g in (*proto.subsets, "full") if g in r.metrics]
    keys = list(proto.norms)
    if proto.auc_fr is not None:
        norm, thr = proto.auc_fr
        tag = f"{norm}_{round(thr * 100)}"
        keys += [f"fr_{tag}", f"auc_{tag}"]
    rows = []
    for k in keys:
        if k in proto.norms:
            label, scale, digits = f"NME {k} (%)", 100.0, 2
        elif k.startswith("fr_"):
            label, scale, digits = f"FR@{proto.auc_fr[1]:g} (%)", 100.0, 2
        else:
            label, scale, digits = f"AUC@{proto.auc_fr[1]:g}", 1.0, 4
        rows.append((label, *(report.fmt(r.metrics[g][k], scale, digits) for g in groups)))
    header = ("Metric", *(g.capitalize() for g in groups))
    return report.Table(f"Face alignment — {report.display(r.dataset)}", header, tuple(rows))


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    return [_table(r) for r in results]


def _entry(value, matrix, task, labels, mask) -> list:
    pts = preprocess.warped_to_source(value, matrix, 0.0, task.input_size)  # not clipped
    return np.asarray(pts, np.float64).round(2).tolist()  # float64: no float32 digits


PREDICT = PredictOutput(
    key="landmarks",
    schema={"type": "object"},  # task -> [[x, y]] image pixels
    essentials=lambda d: d["landmarks"],
    entry=_entry,
    columns=lambda task: ("landmarks_file",),  # the JSON + a pointer to the points in it
    cells=lambda entry, task, ref: {"landmarks_file": ref.link("landmarks", task.name)},
    extras=lambda entry, task: {"landmarks": entry},
)
TYPE = TaskType(
    name="landmarks", original="align", kind="map", output="landmarks", input_size=512,
    head=lambda d: (d.landmarks, d.landmarks), transform=transform, crop=crops.FACE5,
    decode=decode, loss=loss, evaluate=evaluate, summarize=summarize, report="landmarks",
    tables=tables, predict=PREDICT,
)  # fmt: skip
