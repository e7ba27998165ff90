"""Stage 2 (Layer-Attention) fine-tunes from Faceptor-Full: one task, only the added levels train.

`finetune_<task>.py` call `get_config(task)`; pass `--config.init.checkpoint=DIR` (a converted or
trained Faceptor-Full checkpoint). As the original's stage 2: the model keeps all 13 query sets,
one task trains, and only the added levels' projections and embeddings (`new_input_proj`, the
new level embeddings) are updated, ×10 LR; DropPath stays active.
"""

import ml_collections

from configs import faceptor_full, recipe

STAGE2_TASKS = ("expression_rafdb", "age_morph2", "attributes_celeba")


def get_config(task: str = "expression_rafdb") -> ml_collections.ConfigDict:
    if task not in STAGE2_TASKS:
        raise ValueError(f"stage-2 task {task!r}: choose one of {', '.join(STAGE2_TASKS)}")
    c = faceptor_full.get_config()
    c.total_steps = 20000
    c.eval_every = 500
    c.model.new_levels = (1, 3, 5, 7, 9)
    c.model.tasks = tuple(faceptor_full.BATCH)  # all query sets exist, as in the original
    c.tasks = ml_collections.ConfigDict(recipe.tasks({task: 64}, {task: 64}))
    c.tasks[task].eval_batch_size = 64 if task == "attributes_celeba" else 32
    c.optim = ml_collections.ConfigDict(recipe.faceptor_optim(c.total_steps))
    c.trainable = r"model\.layer_attention\.new_input_proj\..*"
    return c
