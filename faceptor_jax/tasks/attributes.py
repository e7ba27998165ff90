"""Facial attributes (CelebA, 40 binary attributes): one decoder query and logit per attribute.

Prediction is σ(logit) rounded (logit > 0), as the original's evaluator.
"""

from collections.abc import Mapping

import jax

from faceptor_jax.tasks.spec import Task, TaskType


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]
    return {"logits": logits, "probabilities": jax.nn.sigmoid(logits), "present": logits > 0}


TYPE = TaskType("attributes", "biattr", "value", "none", decode)
