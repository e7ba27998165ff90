"""A tiny FRA pretraining on synthetic faces: a few CPU minutes, the published recipe's code path.

ResNet of base width 8 (256-channel layer4), projections 32 wide (hidden 64), 8 prototypes,
64-px views of 80-px aligned synthetic faces, batch 16; 4 epochs of 6 steps with one warmup
epoch. lr 0.3 instead of 0.9: a batch of 16 gives noisier gradients than one of 512.
"""

import ml_collections

from configs import fra_pretrain, recipe


def get_config() -> ml_collections.ConfigDict:
    c = recipe.base_config()
    c.trainer = "fra"
    c.model = ml_collections.ConfigDict(fra_pretrain.fra_model(width=8, dim=32, hidden=64, heads=4))
    c.fra = ml_collections.ConfigDict(fra_pretrain.fra_options(16, 64, 4, 6))
    c.fra.dataset = "ms1mv3"  # aligned synthetic faces (labels unused)
    c.fra.source_size = 80
    c.fra.warmup_epochs = 1
    c.fra.lr = 0.3
    c.total_steps = 24
    c.data.source = "synthetic"
    c.data.synthetic_identities = 64
    c.data.synthetic_length = 512
    c.data.synthetic_test_length = 64
    c.data.synthetic_cache = True
    c.log_every = 2
    c.eval_every = 12
    c.checkpoint_every = 12
    c.keep_every = 0
    c.mesh = (-1, 1, 1)
    return c
