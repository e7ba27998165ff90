"""A tiny SwinFace on synthetic faces: every task learns on a CPU in about a minute.

The recipe's model and losses (`configs/swinface.py`) at micro width: Swin stages 8..64 wide with
the real depths (2, 2, 6, 2), 64-px inputs (patch 2: grids 32, 16, 8, 4; window 4, so the last
stage is one unshifted window as at full size), MLCA width 32, a 32-d embedding, 64 identities.
One stream per task; task weights keep the four losses within a factor ~10 at the start.
"""

import ml_collections

from configs import swinface

BATCH = {
    "recognition_ms1mv2": 16,
    "age_gender_imdb": 16,
    "attribute_pairs_celeba": 16,
    "expression_ordered_rafdb": 16,
}


def get_config() -> ml_collections.ConfigDict:
    c = swinface.get_config()
    c.model = ml_collections.ConfigDict(
        dict(
            kind="swinface",
            encoder=dict(
                image_size=64, patch=2, embed_dim=8, depths=(2, 2, 6, 2), heads=(1, 2, 4, 8),
                window=4, mlp_ratio=4.0, drop_path_rate=0.0, dtype="float32", remat=False,
            ),
            embed_dim=32, feature_dim=32, level_out=(4, 8, 10, 10), drop=0.0, dtype="float32",
        )
    )  # fmt: skip
    c.tasks = ml_collections.ConfigDict(swinface.streams(BATCH, image_size=64, eval_batch_size=32))
    # the age loss is in years² (MSE) at the start: scaled down beside the CE terms (its gender
    # CE with it: CelebA's stream carries most of the Gender training here)
    c.task_weights = ml_collections.ConfigDict(
        dict(recognition=1.0, age_gender=0.02, attribute_pairs=0.5, expression_ordered=5.0)
    )
    c.recognition_classes = 64
    c.data.source = "synthetic"
    c.data.augment = "light"
    c.data.synthetic_identities = 64
    c.data.synthetic_length = 2048
    c.data.synthetic_cache = True
    c.data.synthetic_test_length = 128
    c.total_steps = 300
    c.optim.warmup_steps = 20
    c.optim.peak_lr, c.optim.base_lr, c.optim.end_lr = 2e-3, 1e-5, 1e-5
    c.optim.multipliers = (("backbone", 1.0), ("heads", 1.0), ("losses", 1.0))
    c.log_every = 10
    c.eval_every = 300
    c.checkpoint_every = 300
    c.mesh = (-1, 1, 1)
    return c
