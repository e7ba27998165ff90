"""Face parsing (CelebAMask-HQ 19 classes, LaPa 11): one query per class, dense maps at 4× the
token grid bilinearly upsampled to the input size; the label map is the per-pixel argmax."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import losses, preprocess, report
from faceptor_jax.metrics import ParsingAccumulator
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

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


LABELS = {"celebamask_hq": CELEBAMASK_LABELS, "lapa": LAPA_LABELS}
WARP = {"lapa": 0.8}  # LaPa is aligned with a tanh-warp and scored at the original resolution


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    return losses.parsing_loss(raw["logits"], batch["mask"])  # per-pixel CE at input size


def _to_original(logits: np.ndarray, matrix: np.ndarray, shape, warp: float, size: int):
    """[H, W, C] logits of the aligned input -> the original image's [h, w, C] (bilinear), as
    the original inverse-warps LaPa predictions before the argmax."""
    coords = preprocess.inverse_transform_map(matrix, shape, warp, size)
    return preprocess.remap(logits, coords, "bilinear")


def evaluate(raw, batch, dataset: str, size: int) -> ParsingAccumulator:
    logits, mask = np.asarray(raw["logits"], np.float32), np.asarray(batch["mask"])
    num_classes = logits.shape[-1]
    if mask.shape[1:3] != logits.shape[1:3]:  # scored at the original resolution (LaPa)
        warp = WARP.get(dataset, 0.0)
        logits = np.stack(
            [
                _to_original(lg, m, mask.shape[1:3], warp, size)
                for lg, m in zip(logits, batch["matrix"], strict=True)
            ]
        )
    return ParsingAccumulator.from_batch(np.argmax(logits, axis=-1), mask, num_classes)


def summarize(acc: ParsingAccumulator, dataset: str) -> report.Result:
    names = LABELS.get(dataset, CELEBAMASK_LABELS)
    return report.Result("parsing", dataset, acc.compute(names))


TYPE = TaskType("parsing", "parsing", "map", "parsing", decode, loss, evaluate, summarize)
