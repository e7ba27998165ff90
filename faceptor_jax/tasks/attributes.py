"""Facial attributes (CelebA, 40 binary attributes): one decoder query and logit per attribute.

Prediction is σ(logit) rounded (logit > 0), as the original's evaluator.
"""

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from faceptor_jax import datasets, losses, report
from faceptor_jax.metrics import AttributeAccumulator
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    image = crops.small_image(rng, record["image"], train, size, policy)
    return {"image": image, "attributes": np.asarray(record["attributes"], np.int32)}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]
    return {"logits": logits, "probabilities": jax.nn.sigmoid(logits), "present": logits > 0}


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.attribute_loss(raw["logits"], batch["attributes"])  # BCE, -1 labels ignored


def evaluate(raw, batch, dataset: str, size: int) -> AttributeAccumulator:
    return AttributeAccumulator.from_batch(raw["logits"], batch["attributes"])


def summarize(acc: AttributeAccumulator, dataset: str) -> report.Result:
    return report.Result("attributes", dataset, acc.compute(datasets.get(dataset).labels))


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    out, f = [], report.fmt
    for r in results:
        row = (f(r.metrics["mean_accuracy"]), f(r.metrics["mA"]))
        title = f"Attribute recognition — {report.display(r.dataset)}"
        out.append(report.Table(title, ("Mean accuracy (%)", "mA (%)"), (row,)))
    return out


def _entry(value, matrix, task, labels, mask) -> dict:
    # rounded in float64: a float32 0.2273 would print as 0.2273000031709671
    return dict(zip(labels, np.asarray(value, np.float64).round(4).tolist(), strict=True))


def _columns(task: Task) -> tuple[str, ...]:
    """`gender`, P(male), where the dataset has CelebA's Male (Faceptor's and SwinFace's gender),
    then every attribute's probability under the dataset's name."""
    return (("gender",) if "Male" in task.labels else ()) + tuple(task.labels)


def _cells(entry: dict, task: Task, ref) -> dict:
    return ({"gender": entry["Male"]} if "Male" in entry else {}) | entry


PREDICT = PredictOutput(
    key="attributes",
    schema={"type": "object"},  # task -> {CelebA attribute: probability}
    essentials=lambda d: d["probabilities"],
    entry=_entry,
    columns=_columns,
    cells=_cells,
)
TYPE = TaskType(
    name="attributes", original="biattr", kind="value", output="none", input_size=112,
    head=lambda d: (len(d.labels), len(d.labels)), transform=transform, crop=crops.ARCFACE,
    decode=decode, loss=loss, evaluate=evaluate, summarize=summarize, report="attributes",
    tables=tables, predict=PREDICT,
)  # fmt: skip
