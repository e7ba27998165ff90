"""Landmark points and target heatmaps of the landmark loss, in JAX, without the original's CUDA
`p2i` op. The model's soft-argmax of its heatmaps is `model/interpreters.landmark_output`.

Conventions: points are (x, y); "pixel" coordinates have pixel centres at integers; "normalised"
coordinates are (p + 0.5) / size in [0, 1]. Heatmaps are [B, K, H, W].
"""

import jax
import jax.numpy as jnp


def normalize_points(points: jax.Array, size: int) -> jax.Array:
    """Pixel (x,y) in a size×size image -> normalised [0,1]: (p + 0.5) / size. [...,2]."""
    return (points + 0.5) / size


def denormalize_points(points: jax.Array, size: int) -> jax.Array:
    """Inverse of `normalize_points`: p·size − 0.5."""
    return points * size - 0.5


def render_heatmaps(points: jax.Array, size: int = 128, radius: float = 5.0) -> jax.Array:
    """Landmark target heatmaps, equal to the original's CUDA `p2i(kernel='gaussian_awing', 'max')`.

    points [B,K,2] normalised (x,y) -> [B,K,size,size] float32. Channel k holds one point at
    q = g·size − 0.5 heatmap pixels; pixel (x,y) with r = √((x−qx)²+(y−qy)²) ≤ radius gets
    exp(−r²·16/(2·radius²)) (σ = radius/4, peak 1 at the point), every other pixel 0. Points
    outside the map only light the pixels within `radius`. The operation order of the CUDA kernel
    is kept so float32 values agree to rounding.
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"render_heatmaps: points must be [B,K,2], got {points.shape}")
    q = denormalize_points(points.astype(jnp.float32), size)  # [B,K,2]
    grid = jnp.arange(size, dtype=jnp.float32)
    dx = grid[None, None, None, :] - q[..., 0, None, None]  # [B,K,1,W]
    dy = grid[None, None, :, None] - q[..., 1, None, None]  # [B,K,H,1]
    r = jnp.sqrt(dx * dx + dy * dy)  # [B,K,H,W]
    r_ = jnp.float32(radius)
    w = jnp.exp(-r * r * 16 / 2 / r_ / r_)
    return jnp.where(r <= r_, w, 0.0)
