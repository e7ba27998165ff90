"""Faceptor-Full ("plus"), stage 1: all 13 tasks, 4 GPUs in the original."""

import ml_collections

from configs import faceptor_base, recipe

BATCH = {  # global = the original's per-GPU batch × 4 GPUs
    "recognition_ms1mv3": 256,
    "age_morph2": 64,
    "age_utkface": 16,
    "attributes_celeba": 64,
    "expression_affectnet": 64,
    "expression_rafdb": 16,
    "expression_ferplus": 16,
    "parsing_celebamaskhq": 4,
    "parsing_lapa": 4,
    "landmarks_300w": 4,
    "landmarks_cofw": 4,
    "landmarks_wflw": 4,
    "landmarks_aflw": 4,
}
TASK_WEIGHTS = dict(recognition=5, age=5, attributes=2, expression=10, parsing=200, landmarks=1000)


def get_config() -> ml_collections.ConfigDict:
    c = faceptor_base.get_config()
    c.tasks = ml_collections.ConfigDict(recipe.tasks(BATCH))
    c.task_weights = ml_collections.ConfigDict(TASK_WEIGHTS)
    return c
