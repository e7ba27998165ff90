"""Expression as SwinFace predicts it: 7 logits in RAF-DB's label order (`datasets.RAFDB_ORDER`).

The model's "expression" output [B, 7] is reordered by name into the dataset's label order
(`datasets.Dataset.labels`, the ids its records carry) before the loss (softmax CE), metrics
(top-1 accuracy) and predict, so a record's label indexes the logits directly.
"""

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import datasets, losses
from faceptor_jax.metrics import ClassificationAccumulator
from faceptor_jax.tasks import crops, expression
from faceptor_jax.tasks.spec import LossContext, Task, TaskType


@functools.lru_cache(maxsize=8)
def order(labels: Sequence[str]) -> np.ndarray:
    """[7] int: index in `datasets.RAFDB_ORDER` (the model's order) of each of `labels`."""
    missing = [n for n in labels if n not in datasets.RAFDB_ORDER]
    if missing:
        raise ValueError(f"expressions {missing} are not among {datasets.RAFDB_ORDER}")
    return np.asarray([datasets.RAFDB_ORDER.index(n) for n in labels], np.int32)


def in_dataset_order(logits, labels: Sequence[str]):
    """[B, 7] in RAF-DB order -> [B, 7] in the order of `labels`."""
    return logits[:, order(tuple(labels))]


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    return expression.decode({"logits": in_dataset_order(raw["expression"], task.labels)}, task)


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    from faceptor_jax import tasks  # the task table imports this file

    logits = in_dataset_order(raw["expression"], tasks.get(ctx.task).labels)
    return losses.expression_loss(logits.astype(jnp.float32), batch["label"])


def evaluate(raw, batch, dataset: str, size: int) -> ClassificationAccumulator:
    logits = in_dataset_order(np.asarray(raw["expression"]), datasets.get(dataset).labels)
    return ClassificationAccumulator.from_batch(logits, batch["label"])


TYPE = TaskType(
    name="expression_ordered", original="affect", kind="value", output="none", input_size=112,
    head=lambda d: (7, 7), transform=expression.transform, crop=crops.ARCFACE, decode=decode,
    loss=loss, evaluate=evaluate, summarize=expression.summarize, report="expression",
    tables=expression.tables, predict=expression.PREDICT,
)  # fmt: skip
