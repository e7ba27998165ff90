"""Naive Faceptor: shared FaRL encoder + task-specific heads, the base task set; Faceptor-Base's
batches, equal task weights, and the original's Naive LRs (peak 5e-4, backbone ×0.1)."""

import ml_collections

from configs import faceptor_base, recipe


def get_config() -> ml_collections.ConfigDict:
    c = faceptor_base.get_config()
    c.model = ml_collections.ConfigDict(
        dict(
            kind="naive_faceptor",
            encoder=recipe.encoder(),
            embed_dim=512,
            recognition_level=11,
            swin_levels=(5, 7, 9, 11),
            swin_dim=512,
            swin_dropout=0.5,
            uper_levels=(3, 5, 7, 11),
            uper_channels=512,
            uper_dropout=0.1,
            dtype="bfloat16",
            tasks=(),
        )
    )
    c.task_weights = ml_collections.ConfigDict(
        dict(recognition=1, age=1, attributes=1, expression=1, parsing=1, landmarks=1)
    )
    c.optim = ml_collections.ConfigDict(recipe.faceptor_optim(c.total_steps))
    c.optim.base_lr, c.optim.peak_lr = 1e-5, 5e-4
    c.optim.multipliers = (("backbone", 0.1), ("heads", 1.0), ("losses", 1.0))
    return c
