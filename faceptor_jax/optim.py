"""Optimizer and learning-rate schedule of the original recipe
(the original's `Solver`: AdamW, gradient clipping, warmup + cosine).

- AdamW (0.9, 0.999, eps 1e-8), weight decay 0.05 on every parameter by default (the original
  excludes nothing; `decay_mask` can exclude biases/norms for users who want that);
- global-norm clipping at 5 over all parameters, before the update;
- one LR schedule scaled per parameter group (backbone ×1, heads ×10 for Faceptor; ×0.1 / ×1 for
  Naive); a group with multiplier 0 is frozen (no update, no decay, no optimizer state);
- the schedule: linear warmup from `base_lr` to `peak_lr` over `warmup_steps`, then cosine to
  `end_lr`, and — as the original steps its scheduler after the optimizer — the update of step i
  uses the schedule's value at i−1 (step 0 uses the value at 0).
"""

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    base_lr: float = 1e-6
    peak_lr: float = 5e-5
    end_lr: float = 0.0
    warmup_steps: int = 2000
    total_steps: int = 50000
    weight_decay: float = 0.05
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = 5.0
    grad_accum: int = 1
    decay_all: bool = True  # the original decays biases, norms and embeddings too
    # (path regex, group) pairs, first match wins; paths look like "encoder.blocks.attn.qkv".
    groups: tuple[tuple[str, str], ...] = ((r".*", "default"),)
    multipliers: tuple[tuple[str, float], ...] = (("default", 1.0),)
    # "faceptor": multiplier × (warmup + cosine over the steps after warmup); "timm": timm's
    # CosineLRScheduler as SwinFace sets it (warmup_prefix False): base_lr and end_lr absolute
    # for every group, peak_lr × multiplier, cosine over the raw step t / total_steps.
    schedule: str = "faceptor"
    # Groups whose own gradient norm is clipped at clip_norm (then no global clip); () = global.
    clip_groups: tuple[str, ...] = ()


def original_schedule(cfg: OptimConfig) -> Callable[[jax.Array], jax.Array]:
    """LR at schedule position t (before the multiplier), as the original's CosineLRScheduler."""
    span = max(cfg.total_steps - cfg.warmup_steps, 1)

    def schedule(t: jax.Array) -> jax.Array:
        t = jnp.asarray(t, jnp.float32)
        warm = cfg.base_lr + (t / max(cfg.warmup_steps, 1)) * (cfg.peak_lr - cfg.base_lr)
        progress = jnp.clip((t - cfg.warmup_steps) / span, 0.0, 1.0)
        cos = cfg.end_lr + (cfg.peak_lr - cfg.end_lr) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        return jnp.where(t < cfg.warmup_steps, warm, cos)

    return schedule


def timm_schedule(cfg: OptimConfig, multiplier: float) -> Callable[[jax.Array], jax.Array]:
    """LR at t of timm's CosineLRScheduler(t_initial=total_steps, lr_min=end_lr,
    warmup_lr_init=base_lr, warmup_t=warmup_steps, warmup_prefix=False) for a group whose
    base LR is peak_lr × multiplier."""
    peak = cfg.peak_lr * multiplier

    def schedule(t: jax.Array) -> jax.Array:
        t = jnp.asarray(t, jnp.float32)
        warm = cfg.base_lr + t * (peak - cfg.base_lr) / max(cfg.warmup_steps, 1)
        progress = jnp.clip(t / max(cfg.total_steps, 1), 0.0, 1.0)
        cos = cfg.end_lr + 0.5 * (peak - cfg.end_lr) * (1.0 + jnp.cos(math.pi * progress))
        return jnp.where(t < cfg.warmup_steps, warm, cos)

    return schedule


def step_lr(cfg: OptimConfig, multiplier: float = 1.0) -> Callable[[jax.Array], jax.Array]:
    """LR used by the update at optimizer step `count` (0-based): schedule(max(count − 1, 0))."""
    if cfg.schedule not in ("faceptor", "timm"):
        raise ValueError(f"optim.schedule {cfg.schedule!r}: expected 'faceptor' or 'timm'")
    if cfg.schedule == "timm":
        timm = timm_schedule(cfg, multiplier)
        return lambda count: timm(jnp.maximum(count - 1, 0))
    schedule = original_schedule(cfg)
    return lambda count: multiplier * schedule(jnp.maximum(count - 1, 0))


def path_name(path) -> str:
    """A pytree key path as the dotted name the group regexes see: "model.encoder.blocks.ln_1"."""
    name = ".".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
    return name.removesuffix(".value")


def param_groups(params, groups: Sequence[tuple[str, str]]):
    """Tree of group names, one per leaf, from (regex, group) rules on dotted paths."""
    compiled = [(re.compile(rx), g) for rx, g in groups]

    def label(path, _) -> str:
        name = path_name(path)
        for rx, group in compiled:
            if rx.fullmatch(name):
                return group
        raise ValueError(f"parameter {name} matches no optimizer group {[g for _, g in groups]}")

    return jax.tree_util.tree_map_with_path(label, params)


def _decay_mask(decay_all: bool):
    return None if decay_all else (lambda p: jax.tree.map(lambda x: x.ndim > 1, p))


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """The full transformation: clip → per-group AdamW (scaled schedule) → accumulation."""
    multipliers = dict(cfg.multipliers)
    names = sorted({g for _, g in cfg.groups})  # a set's order varies by process: so would the HLO
    unknown = [n for n in names if n not in multipliers]
    if unknown:
        raise ValueError(f"optimizer groups {unknown} have no LR multiplier in {multipliers}")
    if not set(cfg.clip_groups) <= set(names):
        raise ValueError(f"optim.clip_groups {list(cfg.clip_groups)}: not among groups {names}")
    transforms = {}
    for name in names:
        if multipliers[name] == 0:
            transforms[name] = optax.set_to_zero()  # frozen: no update, no decay, no state
            continue
        transforms[name] = optax.adamw(
            step_lr(cfg, multipliers[name]),
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=_decay_mask(cfg.decay_all),
        )
        if cfg.clip_norm and name in cfg.clip_groups:  # this group's own norm (SwinFace)
            transforms[name] = optax.chain(
                optax.clip_by_global_norm(cfg.clip_norm), transforms[name]
            )
    tx = optax.multi_transform(transforms, lambda p: param_groups(p, cfg.groups))
    if cfg.clip_norm and not cfg.clip_groups:
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    if cfg.grad_accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum)
    return tx
