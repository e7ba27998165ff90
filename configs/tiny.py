"""A tiny Faceptor on synthetic faces: trains, checkpoints and evaluates on a laptop CPU in minutes.

Same code path as the published recipes (7 base tasks, Layer-Attention decoder, the original's
losses and schedule shape) at reduced width and image size: 64-px crops for the 112-px tasks,
128-px crops for parsing and landmarks. Three departures make 1500 steps enough for every task
to learn (tests/test_tiny_learns.py holds it to that):
- task weights put every task's weighted loss at about the same size at the start (recognition
  ≈ 30, age and attributes ≈ 20, expression ≈ 2, parsing ≈ 1, landmarks ≈ 0.13); the recipe's
  weights leave expression a hundredth of the landmark term, fine over 50k steps, not over 1.5k;
- "light" augmentation (flips and geometric jitter): RandAugment, RandomErasing and occlusion
  hide the few-pixel cues of 64-px faces from a model that sees each face a few times;
- expression gets 16 faces per dataset and step: it is the last task to leave its plateau.
"""

import ml_collections

from configs import faceptor_base, recipe

BATCH = {
    "recognition_ms1mv3": 16,
    "age_morph2": 8,
    "attributes_celeba": 8,
    "expression_affectnet": 16,
    "expression_rafdb": 16,
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
        dict(
            recognition=1.0, age=1.5, attributes=1.5, expression=15.0, parsing=30.0, landmarks=250.0
        )
    )
    c.recognition_classes = 64
    c.data.source = "synthetic"
    c.data.augment = "light"
    c.data.synthetic_identities = 64
    c.data.synthetic_length = 4096
    c.data.synthetic_cache = True  # render each face once: rendering dominates a CPU step
    c.data.synthetic_test_length = 256
    c.total_steps = 1500
    c.optim = ml_collections.ConfigDict(recipe.faceptor_optim(c.total_steps, warmup_steps=50))
    c.optim.base_lr, c.optim.peak_lr = 1e-5, 5e-4
    c.log_every = 10
    c.eval_every = 500
    c.checkpoint_every = 500
    c.mesh = (-1, 1, 1)
    return c
