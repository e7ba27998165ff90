"""Shared pieces of the published recipes (the original's training YAMLs). Configs are plain data.

Batch sizes are GLOBAL (the original's per-GPU size × its GPU count); `loss_weight` and
`task_weights` are the original YAML values: the effective weight of task t of type T is
loss_weight_t / Σ_{t'∈T} loss_weight_t' · task_weight_T, and the total loss is
Σ w_t·L_t / Σ w_t.
"""

import ml_collections


def encoder(drop_path_rate: float = 0.2, **overrides) -> dict:
    """FaRL ViT-B/16 with the 32×32 positional grid of 512-px inputs."""
    return (
        dict(
            width=768,
            depth=12,
            heads=12,
            patch=16,
            mlp_dim=3072,
            pe_grid=32,
            dtype="bfloat16",
            drop_path_rate=drop_path_rate,
            drop_path_mode="token",
            attention_impl=None,
            remat=False,
        )
        | overrides
    )


def decoder(**overrides) -> dict:
    return dict(hidden=256, heads=8, ffn=2048, layers=9, dtype="bfloat16") | overrides


def tasks(batch: dict[str, int], loss_weight: dict[str, float] | None = None, **extra) -> dict:
    """Per-task entries (task names of `faceptor_jax.tasks.TASKS`, which say the dataset each
    reads); the loss weight defaults to the batch size as in every original YAML."""
    return {
        name: dict(
            batch_size=bs,
            loss_weight=float((loss_weight or {}).get(name, bs)),
            eval_batch_size=32,
            image_size=0,  # 0: the task's own size (112 or 512); smaller for CPU demos
        )
        | extra
        for name, bs in batch.items()
    }


def base_config() -> ml_collections.ConfigDict:
    """Everything but the model, tasks and optimizer numbers of a specific recipe."""
    c = ml_collections.ConfigDict()
    c.trainer = "multitask"  # faceptor_jax.trainers.TRAINERS: the recipe's state, step and data
    c.seed = 2048
    c.total_steps = 50000
    c.mesh = (-1, 1, 1)  # (data, fsdp, model); -1 = all remaining devices
    # ((logical axis, mesh axis | (mesh axes) | None), ...); None: sharding.DEFAULT_RULES
    c.sharding_rules = None
    c.init = ml_collections.ConfigDict(dict(farl="", checkpoint=""))
    c.data = ml_collections.ConfigDict(
        dict(
            source="synthetic",  # or "tfds": datasets built by `python -m data build`
            data_dir="",
            workers=0,
            threads=2,
            prefetch=4,
            augment="original",  # train-time augmentation: "original" or "light" (flips, jitter)
            synthetic_identities=1000,
            synthetic_length=100_000,
            synthetic_test_length=512,
            synthetic_cache=False,  # keep rendered faces in memory (small sets, many epochs)
        )
    )
    c.recognition_classes = 0  # CosFace classes; 0: the dataset's identities
    c.trainable = ""  # regex on parameter paths: when set, only matching parameters train
    c.log_every = 10
    c.eval_every = 2500
    c.eval_at_end = True
    c.eval_max_batches = 0  # 0: the whole test split
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.keep_every = 5000  # also keep every N-th step's checkpoint
    # A checkpoint save that fails (a full disk): "stop" training, or "continue" with the previous.
    c.on_save_error = "stop"
    return c


def faceptor_optim(total_steps: int = 50000, warmup_steps: int = 2000) -> dict:
    """Faceptor: backbone ×1, heads/decoder/interpreters and the CosFace weight ×10."""
    return dict(
        base_lr=1e-6,
        peak_lr=5e-5,
        end_lr=0.0,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        weight_decay=0.05,
        clip_norm=5.0,
        grad_accum=1,
        decay_all=True,
        groups=((r"model\.encoder\..*", "backbone"), (r"model\..*", "heads"), (r".*", "losses")),
        multipliers=(("backbone", 1.0), ("heads", 10.0), ("losses", 10.0)),
    )
