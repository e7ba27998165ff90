"""Age estimation (MORPH2, UTKFace): 101 decoder queries, one logit per age 0..100.

Probabilities are sigmoid + L1 normalisation (not softmax), as in the original's DLDL-v2 loss and
evaluator; the estimate is the expectation Σ k·p_k.
"""

from collections.abc import Mapping

import jax
import numpy as np

from faceptor_jax import losses, report
from faceptor_jax.metrics import AgeAccumulator
from faceptor_jax.tasks.spec import LossContext, Task, TaskType


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


TYPE = TaskType("age", "age", "value", "none", decode, loss, evaluate, summarize)
