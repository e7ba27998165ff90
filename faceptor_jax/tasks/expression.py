"""Facial expression (AffectNet, RAF-DB, FERPlus): 7 queries, classes in AffectNet id order."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax import losses, report
from faceptor_jax.metrics import ClassificationAccumulator
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

LABELS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")


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
    return report.Result("expression", dataset, acc.compute(LABELS))


TYPE = TaskType("expression", "affect", "value", "none", decode, loss, evaluate, summarize)
