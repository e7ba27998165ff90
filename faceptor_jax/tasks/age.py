"""Age estimation (MORPH2, UTKFace): 101 decoder queries, one logit per age 0..100.

Probabilities are sigmoid + L1 normalisation (not softmax), as in the original's DLDL-v2 loss and
evaluator; the estimate is the expectation Σ k·p_k.
"""

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from faceptor_jax import datasets, losses, report
from faceptor_jax.metrics import AgeAccumulator
from faceptor_jax.tasks import crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType

AGES = 101  # one bin per year 0..100


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    image = crops.small_image(rng, record["image"], train, size, policy)
    return {"image": image, "age": np.float32(record["age"])}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    p = losses.age_probabilities(raw["logits"])
    return {"logits": raw["logits"], "probabilities": p, "age": losses.expected_age(raw["logits"])}


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.age_loss(raw["logits"], batch["age"])  # DLDL-v2: KL + expectation L1


def evaluate(raw, batch, dataset: str, size: int) -> AgeAccumulator:
    pred = np.asarray(losses.expected_age(np.asarray(raw["logits"], np.float32)))
    return AgeAccumulator.from_batch(pred, batch["age"])


def summarize(acc: AgeAccumulator, dataset: str) -> report.Result:
    return report.Result("age", dataset, acc.compute())


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    out, f = [], report.fmt
    for r in results:
        m = r.metrics
        row = (f(m["mae"]), f(m["cs5"]), f(m["eps_error"], 1.0, 4))
        title = f"Age estimation — {report.display(r.dataset)}"
        out.append(report.Table(title, ("MAE", "CS@5 (%)", "ε-error"), (row,)))
    return out


PREDICT = PredictOutput(
    key="age",
    schema={"type": "object"},  # task -> years
    essentials=lambda d: d["age"],
    entry=lambda value, matrix, task, labels, mask: round(float(value), 2),
    columns=lambda task: ("age",),  # years
    cells=lambda entry, task, ref: {"age": entry},
)
TYPE = TaskType(
    name="age", original="age", kind="value", output="none", input_size=112,
    head=lambda d: (AGES, AGES), transform=transform, crop=crops.ARCFACE, decode=decode,
    loss=loss, evaluate=evaluate, summarize=summarize, report="age", tables=tables,
    predict=PREDICT,
)  # fmt: skip
