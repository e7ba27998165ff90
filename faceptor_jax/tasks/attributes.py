"""Facial attributes (CelebA, 40 binary attributes): one decoder query and logit per attribute.

Prediction is σ(logit) rounded (logit > 0), as the original's evaluator.
"""

from collections.abc import Mapping

import jax

from faceptor_jax import losses, report
from faceptor_jax.metrics import AttributeAccumulator
from faceptor_jax.tasks.spec import LossContext, Task, TaskType


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]
    return {"logits": logits, "probabilities": jax.nn.sigmoid(logits), "present": logits > 0}


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.attribute_loss(raw["logits"], batch["attributes"])  # BCE, -1 labels ignored


def evaluate(raw, batch, dataset: str, size: int) -> AttributeAccumulator:
    return AttributeAccumulator.from_batch(raw["logits"], batch["attributes"])


def summarize(acc: AttributeAccumulator, dataset: str) -> report.Result:
    return report.Result("attributes", dataset, acc.compute())


TYPE = TaskType("attributes", "biattr", "value", "none", decode, loss, evaluate, summarize)
