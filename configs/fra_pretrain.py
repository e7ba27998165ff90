"""FRA pretraining, the published recipe: ResNet-50 FRA-B on VGGFace2, 50 epochs of batch 512.

LARS (lr 0.9, not rescaled by the batch; momentum 0.9, weight decay 1e-6; no decay and no
adaptation for BatchNorm and bias tensors), 10 epochs of per-iteration linear warmup then a
per-epoch cosine; teacher EMA momentum 0.996 → 1 by a cosine over all iterations; 8 prototypes,
teacher temperature 0.04, consistency weight 0.5 (global vs region), clustering weight 0.1;
224-px views. `steps_per_epoch` is the VGGFace2 training split (3,141,890 images) over the
batch, drop_last; set it to the built dataset's length // batch_size for another copy.
"""

import ml_collections

from configs import recipe

VGGFACE2_TRAIN = 3_141_890


def fra_options(batch_size: int, image_size: int, epochs: int, steps_per_epoch: int) -> dict:
    """The pretraining recipe's numbers (config.fra)."""
    return dict(
        dataset="vggface2",
        source_size=0,  # raw image side asked of the source (synthetic faces); 0: its own
        batch_size=batch_size,
        image_size=image_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=10,
        lr=0.9,
        lars_momentum=0.9,
        weight_decay=1e-6,
        teacher_momentum=0.996,
        teacher_temp=0.04,
        student_temp=0.1,
        consistency_weight=0.5,
        cluster_weight=0.1,
        eval_batches=1,  # held-out two-view batches whose loss the evaluation logs (0: none)
    )


def fra_model(width: int = 64, dim: int = 256, hidden: int = 4096, heads: int = 8) -> dict:
    """config.model of FRA-B (a ResNet-50 by default)."""
    return dict(
        kind="fra",
        backbone=dict(width=width, blocks=(3, 4, 6, 3)),
        dim=dim,
        hidden=hidden,
        num_proto=8,
        heads=heads,
        dec_layers=2,
        dropout=0.1,
        scale=1.0,
        proto_momentum=0.9,
        dtype="float32",  # "bfloat16": bf16 compute (BN, norms, softmaxes, buffers stay fp32)
    )


def get_config() -> ml_collections.ConfigDict:
    c = recipe.base_config()
    c.trainer = "fra"
    c.model = ml_collections.ConfigDict(fra_model())
    steps = VGGFACE2_TRAIN // 512
    c.fra = ml_collections.ConfigDict(fra_options(512, 224, 50, steps))
    c.total_steps = 50 * steps
    c.data.source = "tfds"
    c.eval_every = 5 * steps  # the original validates every 5 epochs
    c.checkpoint_every = steps
    c.keep_every = 10 * steps
    return c
