"""Face recognition (MS1MV3): a 512-d embedding from the last encoder layer, no decoder queries.

Trained with CosFace (s 64, m 0.4) over 93,431 identities; the classifier weight belongs to the
loss, not the model. Verification compares L2-normalised embeddings (flip-summed at test time).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax.tasks.spec import Task, TaskType

IDENTITIES = 93431  # MS1MV3 classes of the CosFace classifier


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    e = raw["embedding"]
    norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
    return {"embedding": e, "embedding_normalized": e / jnp.maximum(norm, 1e-12)}


TYPE = TaskType("recognition", "recog", "feature", "none", decode)
