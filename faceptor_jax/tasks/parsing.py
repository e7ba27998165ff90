"""Face parsing (CelebAMask-HQ 19 classes, LaPa 11): one query per class, dense maps at 4× the
token grid bilinearly upsampled to the input size; the label map is the per-pixel argmax.

CelebAMask-HQ ships aligned 512² images (a resize); LaPa is aligned by its 5 points onto the
face template with the dataset's tanh-warp and scored at the original resolution.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import align, augment, datasets, losses, preprocess, report
from faceptor_jax.metrics import ParsingAccumulator
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    crops.check_policy(policy)
    image = crops.dense_image(record)
    mask = crops.decode_image(record["mask"], "L")
    warp = dataset.warp
    if warp > 0:  # LaPa: 5-point alignment onto the template
        pts = np.asarray(record["landmarks"], np.float32)[list(preprocess.LAPA_ALIGN_INDICES)]
        matrix = crops.FACE5.align(pts, size)
    else:  # CelebAMask-HQ: aligned 512² images; a resize (identity at 512), align_corners=False
        h, w = image.shape[:2]
        matrix = preprocess.crop_matrix(np.array([-0.5, -0.5, h - 0.5, w - 0.5]), size)
    if not train:
        coords = preprocess.transform_map(matrix, (size, size), warp, size)
        out = {"image": crops.FACE5.normalize(preprocess.remap(image, coords, "bilinear"))}
        out["matrix"] = np.asarray(matrix, np.float32)
        if warp > 0:  # scored at the original resolution (test batch 1)
            return out | {"mask": mask.astype(np.int32)}
        return out | {"mask": preprocess.remap(mask, coords, "nearest").astype(np.int32)}
    matrix = preprocess.random_similarity(rng, size, 0.01, 0.314, 0.1) @ matrix
    coords = preprocess.transform_map(matrix, (size, size), warp, size)
    image = preprocess.remap(image, coords, "bilinear")
    mask = preprocess.remap(mask, coords, "nearest")
    if policy == "original":
        image = augment.dense_color_aug(rng, image, occlusion=False)
    return {"image": crops.FACE5.normalize(image), "mask": mask.astype(np.int32)}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]  # [B, H, W, C]
    return {"logits": logits, "label_map": jnp.argmax(logits, axis=-1).astype(jnp.int32)}


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.parsing_loss(raw["logits"], batch["mask"])  # per-pixel CE at input size


def _to_original(logits: np.ndarray, matrix: np.ndarray, shape, warp: float, size: int):
    """[H, W, C] logits of the aligned input -> the original image's [h, w, C] (bilinear), as
    the original inverse-warps LaPa predictions before the argmax."""
    coords = preprocess.inverse_transform_map(matrix, shape, warp, size)
    return preprocess.remap(logits, coords, "bilinear")


def evaluate(raw, batch, dataset: str, size: int) -> ParsingAccumulator:
    logits, mask = np.asarray(raw["logits"], np.float32), np.asarray(batch["mask"])
    num_classes = logits.shape[-1]
    if mask.shape[1:3] != logits.shape[1:3]:  # scored at the original resolution (LaPa)
        warp = datasets.get(dataset).warp
        logits = np.stack(
            [
                _to_original(lg, m, mask.shape[1:3], warp, size)
                for lg, m in zip(logits, batch["matrix"], strict=True)
            ]
        )
    return ParsingAccumulator.from_batch(np.argmax(logits, axis=-1), mask, num_classes)


def summarize(acc: ParsingAccumulator, dataset: str) -> report.Result:
    return report.Result("parsing", dataset, acc.compute(datasets.get(dataset).labels))


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    out, f = [], report.fmt
    for r in results:
        per = r.metrics["per_class"]
        names = [n for n in per if n != "background"]
        row = ("F1 (%)", *(f(per[n], 100) for n in names), f(r.metrics["fg_mean"], 100))
        title = f"Face parsing — {report.display(r.dataset)}"
        out.append(report.Table(title, ("Metric", *names, "Mean"), (row,)))
    return out


def _entry(value, matrix, task, labels, mask) -> dict:
    """Nearest-neighbour back through the inverse of the crop matrix into the image's `mask`;
    the JSON holds the face's pixel count per label."""
    region, (x1, y1, x2, y2) = align.label_map_to_image(value, matrix, mask.shape)
    dst = mask[y1:y2, x1:x2]
    dst[region > 0] = region[region > 0]
    counts = np.bincount(region.ravel(), minlength=len(labels))
    return {lab: int(c) for lab, c in zip(labels, counts, strict=False) if c}


PREDICT = PredictOutput(
    key="parsing",
    schema={"type": "object"},  # task -> {label: pixel count of this face}
    essentials=lambda d: d["label_map"].astype(jnp.uint8),
    entry=_entry,
    mask=True,
    columns=lambda task: ("parsing_file",),  # the photo's palette PNG (videos: none written)
    cells=lambda entry, task, ref: {"parsing_file": ref.masks.get(task.name)},
    extras=lambda entry, task: {"parsing_pixels": entry},
)
TYPE = TaskType(
    name="parsing", original="parsing", kind="map", output="parsing", input_size=512,
    head=lambda d: (len(d.labels), len(d.labels)), transform=transform, crop=crops.FACE5,
    decode=decode, loss=loss, evaluate=evaluate, summarize=summarize, report="parsing",
    tables=tables, predict=PREDICT,
)  # fmt: skip
