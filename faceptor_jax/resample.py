"""PyTorch's resampling of feature maps, as separable matrices on channels-last arrays.

`F.interpolate(mode='bilinear', align_corners=False)` and `nn.AdaptiveAvgPool2d` are linear maps
per axis; writing them as small [out, in] matrices applied with einsum spells out PyTorch's index
rules (source index clamped at 0, taps clamped to the last pixel; no antialiasing, which
`jax.image.resize` applies by default when downsampling). The one bilinear resize of the project:
the model's parsing output, UPerHead, and the landmark loss's heatmaps all use it.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in]: src = (n_in/n_out)(o + 0.5) − 0.5 clamped at 0, taps floor(src), +1."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for o in range(n_out):
        src = max(scale * (o + 0.5) - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        t = src - i0
        m[o, i0] += 1.0 - t
        m[o, i1] += t
    return m


@functools.lru_cache(maxsize=64)
def adaptive_avg_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] of `AdaptiveAvgPool`: bin i averages [floor(i·n/o), ceil((i+1)·n/o))."""
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = math.ceil((i + 1) * n_in / n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def apply_separable(x: jax.Array, mh: np.ndarray, mw: np.ndarray) -> jax.Array:
    """x: [B, H, W, C] -> [B, H', W', C] with mh: [H', H], mw: [W', W] (fp32 accumulation)."""
    hi = jax.lax.Precision.HIGHEST
    ah, aw = jnp.asarray(mh, jnp.float32), jnp.asarray(mw, jnp.float32)
    y = jnp.einsum("ph,bhwc->bpwc", ah, x, precision=hi, preferred_element_type=jnp.float32)
    y = jnp.einsum("qw,bpwc->bpqc", aw, y, precision=hi, preferred_element_type=jnp.float32)
    return y.astype(x.dtype)


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """`F.interpolate(x, size, mode='bilinear', align_corners=False)` on [B, H, W, C]."""
    h, w = x.shape[1:3]
    if (h, w) == tuple(size):
        return x
    return apply_separable(x, bilinear_matrix(h, size[0]), bilinear_matrix(w, size[1]))


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """`nn.AdaptiveAvgPool2d(size)` on [B, H, W, C]."""
    h, w = x.shape[1:3]
    return apply_separable(x, adaptive_avg_pool_matrix(h, size), adaptive_avg_pool_matrix(w, size))
