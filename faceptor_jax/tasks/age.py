"""Age estimation (MORPH2, UTKFace): 101 decoder queries, one logit per age 0..100.

Probabilities are sigmoid + L1 normalisation (not softmax), as in the original's DLDL-v2 loss and
evaluator; the estimate is the expectation Σ k·p_k.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax.tasks.spec import Task, TaskType


def probabilities(logits: jax.Array) -> jax.Array:
    s = jax.nn.sigmoid(logits.astype(jnp.float32))
    return s / jnp.maximum(s.sum(-1, keepdims=True), 1e-12)


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    p = probabilities(raw["logits"])
    ages = jnp.arange(p.shape[-1], dtype=jnp.float32)
    return {"logits": raw["logits"], "probabilities": p, "age": p @ ages}


TYPE = TaskType("age", "age", "value", "none", decode)
