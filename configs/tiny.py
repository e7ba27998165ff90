"""A tiny Faceptor on synthetic faces: trains, checkpoints and evaluates on a laptop CPU in minutes.

Same code path as the published recipes (7 base tasks, Layer-Attention decoder, the original's
losses and schedule shape) at reduced width and image size: 64-px crops for the 112-px tasks,
128-px crops for parsing and landmarks. The task weights are balanced instead of the recipe's
(where landmarks take 1000/1118 of the loss): with 50k steps every task still learns under the
recipe's weights, in a few hundred steps only the heavily weighted ones would.
"""

import ml_collections

from configs import faceptor_base, recipe

BATCH = {
    "recognition_ms1mv3": 16,
    "age_morph2": 8,
    "attributes_celeba": 8,
    "expression_affectnet": 8,
    "expression_rafdb": 8,
    "parsing_celebamaskhq": 2,
    "landmarks_300w": 2,
}


def get_config() -> ml_collections.ConfigDict:
    c = faceptor_base.get_config()
    c.model.encoder = recipe.encoder(
        width=48, heads=4, mlp_dim=96, pe_grid=8, dtype="float32", drop_path_rate=0.1
    )
    c.model.decoder = recipe.decoder(hidden=32, heads=4, ffn=64, layers=2, dtype="float32")
    c.model.embed_dim = 32
    c.tasks = ml_collections.ConfigDict(recipe.tasks(BATCH))
    for name, task in c.tasks.items():
        task.image_size = 128 if name.startswith(("parsing", "landmarks")) else 64
        task.eval_batch_size = 8
    c.task_weights = ml_collections.ConfigDict(
        dict(recognition=1, age=1, attributes=1, expression=1, parsing=1, landmarks=5)
    )
    c.recognition_classes = 64
    c.data.source = "synthetic"
    c.data.synthetic_identities = 64
    c.data.synthetic_length = 4096
    c.data.synthetic_test_length = 64
    c.total_steps = 300
    c.optim = ml_collections.ConfigDict(recipe.faceptor_optim(c.total_steps, warmup_steps=30))
    c.optim.base_lr, c.optim.peak_lr = 1e-5, 5e-4
    c.log_every = 10
    c.eval_every = 150
    c.checkpoint_every = 100
    c.mesh = (-1, 1, 1)
    return c
