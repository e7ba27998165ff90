"""Landmark points and heatmaps (FACEPTOR_SPEC §2.6, §5.6) in JAX, without the original's CUDA op.

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


def soft_argmax(heatmap_logits: jax.Array) -> jax.Array:
    """`AlignOutput` landmarks: soft-argmax of σ(logits) on pixel-index grids, normalised.

    heatmap_logits [B,K,h,w] -> [B,K,2] (x,y) in [0,1]: Z = max(Σσ, 1e-6),
    x̂ = Σ x·σ / Z, ŷ = Σ y·σ / Z, then ((x̂ + 0.5)/w, (ŷ + 0.5)/h).
    """
    if heatmap_logits.ndim != 4:
        raise ValueError(f"soft_argmax: heatmaps must be [B,K,h,w], got {heatmap_logits.shape}")
    h, w = heatmap_logits.shape[-2:]
    act = jax.nn.sigmoid(heatmap_logits.astype(jnp.float32))
    z = jnp.maximum(jnp.sum(act, axis=(-2, -1)), 1e-6)  # [B,K]
    x = jnp.einsum("bkhw,w->bk", act, jnp.arange(w, dtype=jnp.float32)) / z
    y = jnp.einsum("bkhw,h->bk", act, jnp.arange(h, dtype=jnp.float32)) / z
    return jnp.stack([(x + 0.5) / w, (y + 0.5) / h], axis=-1)


def resize_bilinear(x: jax.Array, size: int) -> jax.Array:
    """Bilinear resize of [B,K,h,w] to [B,K,size,size] as torch `interpolate(align_corners=False)`.

    Identity when already size×size. No antialiasing (torch has none either); edge samples
    clamp to the border pixel like torch.
    """
    if x.shape[-2:] == (size, size):
        return x
    return jax.image.resize(x, (*x.shape[:-2], size, size), method="linear", antialias=False)
