"""Facial expression (AffectNet, RAF-DB, FERPlus): 7 queries, classes in AffectNet id order."""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import datasets, losses, report
from faceptor_jax.metrics import ClassificationAccumulator
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    image = crops.small_image(rng, record["image"], train, size, policy)
    return {"image": image, "label": np.int32(record["label"])}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]
    return {
        "logits": logits,
        "probabilities": jax.nn.softmax(logits.astype(jnp.float32), axis=-1),
        "label": jnp.argmax(logits, axis=-1),
    }


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.expression_loss(raw["logits"], batch["label"])


def evaluate(raw, batch, dataset: str, size: int) -> ClassificationAccumulator:
    return ClassificationAccumulator.from_batch(raw["logits"], batch["label"])


def summarize(acc: ClassificationAccumulator, dataset: str) -> report.Result:
    return report.Result("expression", dataset, acc.compute(datasets.get(dataset).labels))


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    out, f = [], report.fmt
    for r in results:
        row = (f(r.metrics["accuracy"]), f(r.metrics["mean_class_accuracy"]))
        title = f"Expression recognition — {report.display(r.dataset)}"
        out.append(report.Table(title, ("Accuracy (%)", "Mean class accuracy (%)"), (row,)))
    return out


def _entry(value, matrix, task, labels, mask) -> dict:
    probs = dict(zip(labels, np.asarray(value, np.float64).round(4).tolist(), strict=True))
    return {"label": labels[int(np.argmax(value))], "probabilities": probs}


def _cells(entry: dict, task: Task, ref) -> dict:
    label = entry["label"]
    return {"expression": label, "expression_probability": entry["probabilities"][label]}


PREDICT = PredictOutput(
    key="expression",
    schema={"type": "object"},  # task -> {"label", "probabilities": {label: p}}
    essentials=lambda d: d["probabilities"],
    entry=_entry,
    columns=lambda task: ("expression", "expression_probability"),  # the top class, its p
    cells=_cells,
    extras=lambda entry, task: {"expression_probabilities": entry["probabilities"]},
)
TYPE = TaskType(
    name="expression", original="affect", kind="value", output="none", input_size=112,
    head=lambda d: (len(d.labels), len(d.labels)), transform=transform, crop=crops.ARCFACE,
    decode=decode, loss=loss, evaluate=evaluate, summarize=summarize, report="expression",
    tables=tables, predict=PREDICT,
)  # fmt: skip
