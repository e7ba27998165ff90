"""Face alignment (300W 68, COFW 29, WFLW 98, AFLW 19 points): one heatmap per landmark at 4× the
token grid; points are the soft-argmax of the sigmoid heatmaps.

In pixels of the model's input image: x_px = x_norm·W − 0.5 (the original's denormalisation,
pixel centres at integers); mapping back to the original photo is the pipeline's crop inverse.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import losses, preprocess, report
from faceptor_jax.landmark_metrics import LandmarkAccumulator
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

# dataset -> the evaluation protocol (normalisation, AUC/FR threshold) of landmark_metrics
PROTOCOL = {"ibug300w": "300w", "cofw": "cofw", "wflw": "wflw", "aflw19": "aflw"}
HEATMAP_RADIUS = 5.0  # pixels of the 128² heatmap of a 512² input


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    size = jnp.asarray([task.input_size, task.input_size], jnp.float32)
    return {
        "heatmap": raw["heatmap"],
        "landmarks_normalized": raw["landmarks"],
        "landmarks": raw["landmarks"] * size - 0.5,
    }


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    """AlignLoss: mean L2 of normalised points + heatmap BCE against rendered Gaussians."""
    heatmap = jnp.moveaxis(raw["heatmap"], -1, 1)  # [B, h, w, K] -> [B, K, h, w]
    hm_size = ctx.image_size // 4
    return losses.landmark_loss(
        heatmap,
        raw["landmarks"],
        batch["landmarks"],
        input_size=ctx.image_size,
        heatmap_size=hm_size,
        radius=HEATMAP_RADIUS * hm_size / 128,
    )


def evaluate(raw, batch, dataset: str, size: int) -> LandmarkAccumulator:
    """Predictions mapped back through the test crop to original-image pixels, then NME."""
    pred = np.asarray(raw["landmarks"], np.float64) * size - 0.5
    pred = np.stack(
        [
            preprocess.warped_to_source(p, m, 0.0, size)
            for p, m in zip(pred, batch["crop_matrix"], strict=True)
        ]
    )
    protocol = PROTOCOL.get(dataset, dataset)
    return LandmarkAccumulator.from_batch(protocol, pred, batch["landmarks_orig"], batch["box"])


def summarize(acc: LandmarkAccumulator, dataset: str) -> report.Result:
    protocol = PROTOCOL.get(dataset, dataset)
    return report.Result("landmarks", protocol, acc.compute(protocol))


TYPE = TaskType("landmarks", "align", "map", "landmarks", decode, loss, evaluate, summarize)
