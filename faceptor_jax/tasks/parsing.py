"""Face parsing (CelebAMask-HQ 19 classes, LaPa 11): one query per class, dense maps at 4× the
token grid bilinearly upsampled to the input size; the label map is the per-pixel argmax."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax.tasks.spec import Task, TaskType

CELEBAMASK_LABELS = (
    "background", "neck", "face", "cloth", "rr", "lr", "rb", "lb", "re", "le", "nose",
    "imouth", "llip", "ulip", "hair", "glass", "hat", "earr", "neckl",
)  # fmt: skip
LAPA_LABELS = (
    "background", "face_lr_rr", "lb", "rb", "le", "re", "nose", "ul", "im", "ll", "hair",
)  # fmt: skip


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    logits = raw["logits"]  # [B, H, W, C]
    return {"logits": logits, "label_map": jnp.argmax(logits, axis=-1).astype(jnp.int32)}


TYPE = TaskType("parsing", "parsing", "map", "parsing", decode)
