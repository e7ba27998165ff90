"""Face alignment (300W 68, COFW 29, WFLW 98, AFLW 19 points): one heatmap per landmark at 4× the
token grid; points are the soft-argmax of the sigmoid heatmaps.

In pixels of the model's input image: x_px = x_norm·W − 0.5 (the original's denormalisation,
pixel centres at integers); mapping back to the original photo is the pipeline's crop inverse.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from faceptor_jax.tasks.spec import Task, TaskType


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    size = jnp.asarray([task.input_size, task.input_size], jnp.float32)
    return {
        "heatmap": raw["heatmap"],
        "landmarks_normalized": raw["landmarks"],
        "landmarks": raw["landmarks"] * size - 0.5,
    }


TYPE = TaskType("landmarks", "align", "map", "landmarks", decode)
