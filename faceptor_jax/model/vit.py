"""FaRL ViT image encoder (CLIP visual tower): image [B,H,W,3] -> every layer's tokens.

Differences from a textbook ViT that matter for parity with the original:
- the positional embedding is stored as a 32×32 (+CLS) grid and bicubic-resized on every call
  (PyTorch's bicubic: A = -0.75, no antialiasing, clamped taps), so 112-px inputs see a 7×7 grid;
- pre-LN blocks with QuickGELU, LayerNorm eps 1e-5 in fp32;
- stochastic depth draws one mask per token position shared by the batch (sequence-first layout
  in the original), per-block rate linspace(0, drop_path_rate, depth).

The blocks are stored stacked ([L, ...] leading axis) and run with `nnx.scan`: faster to compile
and to train than an unrolled loop, and the scan emits every layer's tokens for Layer-Attention.
"""

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.layers import LayerNorm, Mlp, MultiHeadAttention, drop_path, param, quick_gelu
from faceptor_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """FaRL ViT-B/16 by default. `pe_grid` is the stored positional grid (32 = 512 px / 16)."""

    width: int = 768
    depth: int = 12
    heads: int = 12
    patch: int = 16
    mlp_dim: int = 3072
    pe_grid: int = 32
    dtype: str = "float32"  # compute dtype; params are fp32, LayerNorm is always fp32
    drop_path_rate: float = 0.0
    drop_path_mode: str = "token"  # "token" (as the original) or "sample"
    attention_impl: str | None = None  # None (auto), "xla", "per_head" or "cudnn"
    remat: bool = False  # recompute block activations in the backward pass

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ViTConfig":
        return cls(**d)


def _cubic_weight(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


@functools.lru_cache(maxsize=64)
def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix of PyTorch `interpolate(mode='bicubic', align_corners=False)` (1-D).

    src = (n_in / n_out)·(o + 0.5) − 0.5 (not clamped), taps floor(src)−1 … +2 clamped to the
    edge, weights W(t+1), W(t), W(1−t), W(2−t) with A = −0.75. No antialiasing.
    """
    m = np.zeros((n_out, n_in), np.float64)
    if n_in == n_out:
        return np.eye(n_in)
    for o in range(n_out):
        src = (n_in / n_out) * (o + 0.5) - 0.5
        i0 = int(np.floor(src))
        t = src - i0
        weights = _cubic_weight(np.array([t + 1, t, 1 - t, 2 - t]))
        for tap, w in zip(range(i0 - 1, i0 + 3), weights, strict=True):
            m[o, min(max(tap, 0), n_in - 1)] += w
    return m


def resize_grid(grid: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """Bicubic-resize a [h, w, D] grid to [H, W, D] exactly as PyTorch does (differentiable)."""
    h, w = grid.shape[:2]
    if (h, w) == tuple(out_hw):
        return grid
    mh = jnp.asarray(bicubic_matrix(h, out_hw[0]), grid.dtype)
    mw = jnp.asarray(bicubic_matrix(w, out_hw[1]), grid.dtype)
    # Height first, then width, as PyTorch's separable upsample kernel does.
    hi = jax.lax.Precision.HIGHEST
    y = jnp.einsum("oh,hwd->owd", mh, grid, precision=hi)
    return jnp.einsum("pw,owd->opd", mw, y, precision=hi)


def resize_pos_embed(pos: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """pos: [1 + g·g, D] (CLS row first, grid row-major) -> [1 + H·W, D]; CLS row unchanged."""
    g = round((pos.shape[0] - 1) ** 0.5)
    if g * g + 1 != pos.shape[0]:
        raise ValueError(f"positional embedding of {pos.shape[0]} rows is not 1 + a square grid")
    grid = resize_grid(pos[1:].reshape(g, g, -1), out_hw)
    return jnp.concatenate([pos[:1], grid.reshape(-1, pos.shape[1])], axis=0)


class ResidualBlock(nnx.Module):
    """CLIP `ResidualAttentionBlock`: x + DP(attn(ln_1(x))); x + DP(mlp(ln_2(x)))."""

    def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.cfg = cfg
        self.ln_1 = LayerNorm(cfg.width, rngs=rngs)
        self.attn = MultiHeadAttention(
            cfg.width, cfg.heads, dtype=dtype, attention_impl=cfg.attention_impl, rngs=rngs
        )
        self.ln_2 = LayerNorm(cfg.width, rngs=rngs)
        self.mlp = Mlp(cfg.width, cfg.mlp_dim, quick_gelu, dtype=dtype, rngs=rngs)

    def __call__(
        self, x: jax.Array, rate: jax.Array, key: jax.Array | None, train: bool
    ) -> jax.Array:
        """x: [B, N, D]; rate: this block's drop-path rate; key: its RNG key when training."""
        h = self.attn(self.ln_1(x))
        if train and key is not None:
            h = drop_path(h, rate, jax.random.fold_in(key, 0), self.cfg.drop_path_mode)
        x = x + h
        h = self.mlp(self.ln_2(x))
        if train and key is not None:
            h = drop_path(h, rate, jax.random.fold_in(key, 1), self.cfg.drop_path_mode)
        return constrain(x + h, ("batch", "tokens", "embed"))


class ViTEncoder(nnx.Module):
    """FaRL image encoder. `__call__(images [B,H,W,3]) -> tokens [L, B, 1 + H/p·W/p, D]`.

    tokens[l] is the output of block l+1 (CLS token first, then patch tokens row-major), with no
    final LayerNorm, in the compute dtype. `ln_post`/`proj` of CLIP are not part of the encoder.
    """

    def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, p = cfg.width, cfg.patch
        self.patch_embed = param(
            rngs,
            nnx.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1, 2)),
            (p, p, 3, d),
            ("patch", "patch", "channels", "embed"),
        )
        self.class_embed = param(rngs, nnx.initializers.normal(d**-0.5), (d,), ("embed",))
        self.pos_embed = param(
            rngs, nnx.initializers.normal(d**-0.5), (1 + cfg.pe_grid**2, d), ("tokens", "embed")
        )
        self.ln_pre = LayerNorm(d, rngs=rngs)

        @nnx.split_rngs(splits=cfg.depth)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_blocks(rngs: nnx.Rngs) -> ResidualBlock:
            return ResidualBlock(cfg, rngs=rngs)

        self.blocks = make_blocks(rngs)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        p = self.cfg.patch
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not divisible by the patch size {p}")
        return height // p, width // p

    def embed(self, images: jax.Array) -> jax.Array:
        """images: [B, H, W, 3] -> ln_pre(CLS + patches + resized PE): [B, 1 + N, D]."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images [B, H, W, 3], got shape {tuple(images.shape)}")
        dtype, p = jnp.dtype(self.cfg.dtype), self.cfg.patch
        b, h, w, _ = images.shape
        gh, gw = self.grid_size(h, w)
        patches = images.astype(dtype).reshape(b, gh, p, gw, p, 3)
        x = jnp.einsum(
            "bhiwjc,ijcd->bhwd",
            patches,
            self.patch_embed[...].astype(dtype),
            preferred_element_type=jnp.float32,
        ).reshape(b, gh * gw, -1)
        cls = jnp.broadcast_to(self.class_embed[...], (b, 1, x.shape[-1]))
        # Same layout for both parts, so the concatenation needs no resharding.
        parts = [constrain(t, ("batch", "tokens", "embed")) for t in (cls, x)]
        pos = resize_pos_embed(self.pos_embed[...], (gh, gw))
        x = jnp.concatenate(parts, axis=1) + pos[None]
        return constrain(self.ln_pre(x.astype(dtype)), ("batch", "tokens", "embed"))

    def __call__(
        self, images: jax.Array, *, train: bool = False, rng: jax.Array | None = None
    ) -> jax.Array:
        """images: [B, H, W, 3] normalised -> tokens of every layer [L, B, 1 + N, D].

        train=True with an `rng` key enables stochastic depth.
        """
        cfg = self.cfg
        x = self.embed(images)
        rates = jnp.linspace(0.0, cfg.drop_path_rate, cfg.depth, dtype=jnp.float32)
        use_dp = train and rng is not None and cfg.drop_path_rate > 0
        keys = jax.random.split(rng, cfg.depth) if use_dp else jnp.zeros((cfg.depth,))

        def body(block: ResidualBlock, x: jax.Array, rate: jax.Array, key: jax.Array):
            y = block(x, rate, key if use_dp else None, use_dp)
            return y, y

        if cfg.remat:
            body = nnx.remat(body)
        scan = nnx.scan(body, in_axes=(0, nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))
        _, tokens = scan(self.blocks, x, rates, keys)
        return tokens


def patch_tokens(tokens: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """[..., B, 1 + gh·gw, D] -> patch feature maps [..., B, gh, gw, D] (CLS dropped)."""
    *lead, n, d = tokens.shape
    if n != 1 + grid[0] * grid[1]:
        raise ValueError(f"{n} tokens do not match a {grid[0]}x{grid[1]} grid plus CLS")
    return tokens[..., 1:, :].reshape(*lead, grid[0], grid[1], d)
