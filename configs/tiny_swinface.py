"""A tiny SwinFace on synthetic faces: every task learns on a CPU in about two minutes.

The recipe's model and losses (`configs/swinface.py`) at micro size: Swin stages 8..64 wide,
two blocks each (one plain, one shifted), 32-px inputs (patch 2: grids 16, 8, 4, 2; window 2,
so the last stage is one unshifted window as at full size), MLCA width 32, a 32-d embedding,
64 identities with PartialFC sampling half of them per step. One stream per task; task weights
keep the four losses within a factor ~10 at the start. 200 steps end near age MAE 10 (best
constant 22), RAF-DB 27–34 % (chance 14), CelebA mA 59–60 %, verification 56–77 %
(`tests/test_tiny_swinface.py` holds it to beating chance on each).
"""

import ml_collections

from configs import swinface

BATCH = {
    "recognition_ms1mv2": 16,
    "age_gender_imdb": 16,
    "attribute_pairs_celeba": 16,
    "expression_ordered_rafdb": 16,
}


SIZE = 32


def get_config() -> ml_collections.ConfigDict:
    c = swinface.get_config()
    c.model = ml_collections.ConfigDict(
        dict(
            kind="swinface",
            encoder=dict(
                image_size=32, patch=2, embed_dim=8, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8),
                window=2, mlp_ratio=4.0, drop_path_rate=0.0, dtype="float32", remat=False,
            ),
            embed_dim=32, feature_dim=32, level_out=(4, 8, 10, 10), drop=0.0, dtype="float32",
        )
    )  # fmt: skip
    streams = swinface.streams(BATCH, image_size=SIZE, eval_batch_size=32)
    c.tasks = ml_collections.ConfigDict(streams)
    # the age loss is in years² (MSE) at the start: scaled down beside the CE terms (its gender
    # CE with it: CelebA's stream carries most of the Gender training here)
    c.task_weights = ml_collections.ConfigDict(
        dict(recognition=1.0, age_gender=0.05, attribute_pairs=0.5, expression_ordered=5.0)
    )
    c.tasks.recognition_ms1mv2.partial_fc = 0.5  # as the recipe (0.3 of 85k), of 64 classes
    c.recognition_classes = 64
    c.data.source = "synthetic"
    c.data.augment = "light"
    c.data.synthetic_identities = 64
    c.data.synthetic_length = 2048
    c.data.synthetic_cache = True
    c.data.synthetic_test_length = 128
    c.total_steps = 200
    c.optim.warmup_steps = 20
    c.optim.peak_lr, c.optim.base_lr, c.optim.end_lr = 3e-3, 1e-5, 1e-5
    c.optim.multipliers = (("backbone", 1.0), ("heads", 1.0), ("losses", 1.0))
    c.log_every = 10
    c.eval_every = 200
    c.checkpoint_every = 200
    c.mesh = (-1, 1, 1)
    return c
