"""Facial expression (AffectNet, RAF-DB, FERPlus): 7 queries, classes in AffectNet id order."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax.tasks.spec import Task, TaskType

LABELS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]
    return {
        "logits": logits,
        "probabilities": jax.nn.softmax(logits.astype(jnp.float32), axis=-1),
        "label": jnp.argmax(logits, axis=-1),
    }


TYPE = TaskType("expression", "affect", "value", "none", decode)
