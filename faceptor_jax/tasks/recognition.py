"""Face recognition (MS1MV3): a 512-d embedding from the last encoder layer, no decoder queries.

Trained with CosFace (s 64, m 0.4) over 93,431 identities; the classifier weight belongs to the
loss, not the model. Verification compares L2-normalised embeddings (flip-summed at test time).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax import losses
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

IDENTITIES = 93431  # MS1MV3 classes of the CosFace classifier


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    e = raw["embedding"]
    norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
    return {"embedding": e, "embedding_normalized": e / jnp.maximum(norm, 1e-12)}


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    """CosFace with the class matrix sharded over the mesh's `model` axis (never gathered)."""
    return losses.cosface_loss(
        raw["embedding"].astype(jnp.float32),
        ctx.loss_params["cosface"],
        batch["label"],
        ctx.mesh,
        num_classes=ctx.num_classes,
    )


# Evaluated on the verification sets (evaluate.py): no per-batch accumulator of its own.
TYPE = TaskType("recognition", "recog", "feature", "none", decode, loss)
