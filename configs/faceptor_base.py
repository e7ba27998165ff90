"""Faceptor-Base, stage 1: 7 tasks, 2 GPUs in the original; the paper's
batch sizes, AdamW recipe and schedule."""

import ml_collections

from configs import recipe

BATCH = {  # global = the original's per-GPU batch × 2 GPUs
    "recognition_ms1mv3": 256,
    "age_morph2": 64,
    "attributes_celeba": 64,
    "expression_affectnet": 64,
    "expression_rafdb": 16,
    "parsing_celebamaskhq": 4,
    "landmarks_300w": 4,
}
TASK_WEIGHTS = dict(recognition=5, age=6, attributes=2, expression=5, parsing=100, landmarks=1000)


def get_config() -> ml_collections.ConfigDict:
    c = recipe.base_config()
    c.model = ml_collections.ConfigDict(
        dict(
            kind="faceptor",
            encoder=recipe.encoder(),
            decoder=recipe.decoder(),
            levels=(11,),
            new_levels=(),
            embed_dim=512,
            tasks=(),  # () = exactly the trained tasks
        )
    )
    c.tasks = ml_collections.ConfigDict(recipe.tasks(BATCH))
    c.task_weights = ml_collections.ConfigDict(TASK_WEIGHTS)
    c.optim = ml_collections.ConfigDict(recipe.faceptor_optim(c.total_steps))
    c.data.source = "tfds"
    return c
