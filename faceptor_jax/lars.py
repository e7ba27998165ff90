"""FRA's optimiser and schedules: LARS with name-based exclusions, teacher EMA, LR, momentum.

LARS per parameter w with gradient g, learning rate lr, weight decay wd, η = 0.001, ε = 1e-8:
  local = 1 if excluded else η·‖w‖ / (‖g‖ + wd·‖w‖ + ε)       (wd = 0 when excluded)
  d = (g + wd·w)·lr·local;  buf = 0.9·buf + d (buf = d on the first step);  w ← w − buf.
`optax.lars` is not this: its trust ratio divides by ‖g + wd·w‖ (not ‖g‖ + wd·‖w‖) and uses 1
where ‖w‖ or ‖g‖ is 0 (here ‖w‖ = 0 gives no step). So the trust ratio is our own
transformation; the learning-rate scaling and the momentum are optax's (`scale_by_learning_rate`,
`trace`), which match (lr inside the buffer, no dampening, no Nesterov).

Exclusion (no weight decay, no adaptation): the original tests the parameter's NAME for the
substrings "bn", "downsample.1" or "bias". Our parameter paths are named so that the same test on
them selects the same tensors: ResNet BNs are `bn1..3` / `downsample.bn`, every bias ends in
`bias`, while the BatchNorms of the projection MLPs are `norm` (the original's `mlp.1`, adapted
and decayed, as are LayerNorm scales, `query_embed` and the attention input projections).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

EXCLUDED_SUBSTRINGS = ("bn", "downsample.1", "bias")


def lars_excluded(path: str) -> bool:
    """The original's `collect_params` test on a parameter name ("a.b.c")."""
    return any(s in path for s in EXCLUDED_SUBSTRINGS)


def exclusion_mask(params) -> object:
    """Pytree of bools (True = excluded) over a params pytree, by the dotted path of each leaf."""

    def name(path) -> str:
        return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)

    return jax.tree_util.tree_map_with_path(lambda p, _: lars_excluded(name(p)), params)


class ScaleByLarsState(NamedTuple):
    pass


def scale_by_lars_trust_ratio(
    weight_decay: float, eta: float = 1e-3, eps: float = 1e-8, excluded=None
) -> optax.GradientTransformation:
    """u = (g + wd·w)·local_lr, the original's per-tensor rule (see the module docstring).

    `excluded`: a pytree of bools like the params (or a callable params -> such a pytree);
    excluded tensors get u = g (no decay, local_lr 1).
    """

    def init(params):
        del params
        return ScaleByLarsState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("LARS needs the parameters (pass params to update)")
        mask = excluded(params) if callable(excluded) else excluded
        if mask is None:
            mask = jax.tree.map(lambda _: False, params)

        def one(g: jax.Array, w: jax.Array, skip: bool) -> jax.Array:
            if skip:
                return g
            g32, w32 = g.astype(jnp.float32), w.astype(jnp.float32)
            w_norm = jnp.linalg.norm(w32.ravel())
            g_norm = jnp.linalg.norm(g32.ravel())
            local = eta * w_norm / (g_norm + weight_decay * w_norm + eps)
            return ((g32 + weight_decay * w32) * local).astype(g.dtype)

        return jax.tree.map(one, updates, params, mask), state

    return optax.GradientTransformation(init, update)


def lars(
    learning_rate: float | optax.Schedule,
    *,
    momentum: float = 0.9,
    weight_decay: float = 1e-6,
    eta: float = 1e-3,
    eps: float = 1e-8,
    excluded=exclusion_mask,
) -> optax.GradientTransformation:
    """The original's LARS as an optax chain (trust ratio -> −lr -> momentum buffer)."""
    return optax.chain(
        scale_by_lars_trust_ratio(weight_decay, eta, eps, excluded),
        optax.scale_by_learning_rate(learning_rate),
        optax.trace(decay=momentum, nesterov=False),
    )


def teacher_momentum(cur_iter: jax.Array | int, max_iter: int, base: float = 0.996) -> jax.Array:
    """1 − (1 − base)·(cos(π·cur/max) + 1)/2: base at iteration 0, 1 at the last.

    cur_iter = epoch·iters_per_epoch + i (0-based, the step just taken); max_iter = iters·epochs.
    """
    cur = jnp.asarray(cur_iter, jnp.float32)
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * cur / max_iter) + 1.0) / 2.0


def ema_update(teacher, online, momentum: jax.Array | float):
    """θ_T ← m·θ_T + (1 − m)·θ_O over matching pytrees (parameters only: buffers are not)."""
    return jax.tree.map(lambda t, o: t * momentum + o * (1.0 - momentum), teacher, online)


def learning_rate_schedule(
    base_lr: float, iters_per_epoch: int, epochs: int, warmup_epochs: int
) -> Callable[[jax.Array], jax.Array]:
    """step (0-based update count) -> lr: per-iteration linear warmup, then per-epoch cosine.

    Warmup epochs: base·min(1, (step + 1)/(warmup·iters)). Later epochs: base·½(1 + cos(π·(e −
    warmup)/(epochs − warmup))) for the step's epoch e, constant within the epoch; no floor.
    """

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step)
        epoch = (step // iters_per_epoch).astype(jnp.float32)
        warm = base_lr * jnp.clip((step + 1) / max(1, warmup_epochs * iters_per_epoch), 0.0, 1.0)
        span = max(epochs - warmup_epochs, 1)
        cosine = base_lr * 0.5 * (1.0 + jnp.cos(math.pi * (epoch - warmup_epochs) / span))
        return jnp.where(epoch < warmup_epochs, warm, cosine).astype(jnp.float32)

    return schedule
