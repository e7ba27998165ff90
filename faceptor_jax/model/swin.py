"""Swin Transformer trunk (SwinFace's Swin-T at 112 px): image [B,H,W,3] -> every stage's output.

What matters for parity with SwinFace's PyTorch original:
- patch 2 at 112 px (56×56 tokens), then four stages of windowed attention with depths (2,2,6,2),
  heads (3,6,12,24), window 7; odd blocks shift the windows by 3 (roll −3 before, +3 after) and
  mask attention between tokens of different pre-shift regions with −100 (not −inf);
- a stage whose grid is no larger than the window (stage 4: 7×7) uses one window of the whole
  grid and never shifts;
- relative position bias: a learnt [(2w−1)², heads] table indexed by (Δh+w−1)·(2w−1) + (Δw+w−1);
- q is scaled by head_dim^−1/2 before q·kᵀ; the attention core runs in fp32;
- PatchMerging ends stages 1–3: concat of the (0,0), (1,0), (0,1), (1,1) (row, col) offsets of
  each 2×2 block -> LayerNorm(4C) -> Linear(4C, 2C, no bias);
- LayerNorm eps 1e-5, exact (erf) GELU, stochastic depth per sample, per-block rates
  linspace(0, drop_path_rate, Σ depths).
A stage's output is taken after its PatchMerging (what SwinFace's multi-level attention reads).
The final LayerNorm + token mean + embedding MLP belong to the recognition head that reads the
last stage (`interpreters.RecognitionHead`), not to the trunk.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.layers import LayerNorm, Linear, Mlp, drop_path, einsum, param
from faceptor_jax.sharding import constrain

MASK_VALUE = -100.0  # the original's mask between regions (softmax weight e^-100, not 0)


@dataclasses.dataclass(frozen=True)
class SwinConfig:
    """Swin-T as SwinFace builds it (`SwinTransformer(num_classes=512)` at 112 px) by default."""

    image_size: int = 112
    patch: int = 2
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    heads: tuple[int, ...] = (3, 6, 12, 24)
    window: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    dtype: str = "float32"  # compute dtype; params fp32, LayerNorm and attention core fp32
    remat: bool = False  # recompute block activations in the backward pass

    def __post_init__(self):
        if len(self.depths) != len(self.heads):
            raise ValueError(f"Swin depths {self.depths} and heads {self.heads} differ in length")
        if self.image_size % (self.patch * 2 ** (len(self.depths) - 1)):
            raise ValueError(
                f"Swin image_size {self.image_size} must be divisible by patch·2^(stages−1) = "
                f"{self.patch * 2 ** (len(self.depths) - 1)}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> "SwinConfig":
        d = dict(d)
        return cls(**d | {k: tuple(d[k]) for k in ("depths", "heads") if k in d})

    def grids(self) -> tuple[int, ...]:
        """Token grid side of each stage's blocks (56, 28, 14, 7 for Swin-T at 112)."""
        g = self.image_size // self.patch
        return tuple(g // 2**i for i in range(len(self.depths)))

    def widths(self) -> tuple[int, ...]:
        """Channels of each stage's blocks (96, 192, 384, 768)."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))

    def out_widths(self) -> tuple[int, ...]:
        """Channels of each stage's output, after its PatchMerging (192, 384, 768, 768)."""
        w = self.widths()
        return tuple(w[i + 1] if i + 1 < len(w) else w[i] for i in range(len(w)))


def window_and_shift(grid: int, window: int, block: int) -> tuple[int, int]:
    """(window, shift) of block `block` on a grid×grid stage: odd blocks shift by window//2,
    unless the grid fits in one window (then one window of the whole grid, no shift)."""
    if grid <= window:
        return grid, 0
    return window, (window // 2 if block % 2 else 0)


@functools.lru_cache(maxsize=16)
def relative_position_index(window: int) -> np.ndarray:
    """[w², w²] int32: row of the bias table for query token i and key token j of a window."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    flat = coords.reshape(2, -1)  # [2, w²] (row, col) of token n = (n // w, n % w)
    rel = (flat[:, :, None] - flat[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype(np.int32)


@functools.lru_cache(maxsize=16)
def shift_mask(grid: int, window: int, shift: int) -> np.ndarray:
    """[nW, w², w²] float32: 0 within a region, MASK_VALUE across the regions that the cyclic
    shift brings into one window (region ids over the unshifted grid, windows row-major)."""
    regions = np.zeros((grid, grid), np.int32)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, ws in enumerate(cuts):
            regions[hs, ws] = 3 * i + j
    ids = partition(regions[None, :, :, None], window)[0, :, :, 0]  # [nW, w²]
    return np.where(ids[:, None, :] != ids[:, :, None], MASK_VALUE, 0.0).astype(np.float32)


def partition(x, window: int):
    """[B, H, W, C] -> [B, nW, w², C], windows row-major (numpy or jax)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, window * window, c)


def unpartition(x: jax.Array, window: int, h: int, w: int) -> jax.Array:
    """[B, nW, w², C] -> [B, H, W, C] (inverse of `partition`)."""
    b, _, _, c = x.shape
    x = x.reshape(b, h // window, w // window, window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention(nnx.Module):
    """Multi-head self-attention inside each window, with relative position bias.

    qkv: [C, 3, H, K] (the original's Linear(C, 3C) rows are q | k | v, heads inside each),
    proj: [H, K, C]; bias table [(2w−1)², H].
    """

    def __init__(self, dim: int, heads: int, window: int, *, dtype: str, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"Swin width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim, self.window = heads, dim // heads, window
        self.dtype = jnp.dtype(dtype)
        k = self.head_dim
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=0)
        self.qkv = param(rngs, init, (dim, 3, heads, k), ("embed", "qkv", "heads", "kv"))
        self.qkv_bias = param(rngs, nnx.initializers.zeros, (3, heads, k), ("qkv", "heads", "kv"))
        out_init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1)
        )
        self.proj = param(rngs, out_init, (heads, k, dim), ("heads", "kv", "embed"))
        self.proj_bias = param(rngs, nnx.initializers.zeros, (dim,), ("embed",))
        table = nnx.initializers.truncated_normal(0.02)
        self.relative_position_bias = param(
            rngs, table, ((2 * window - 1) ** 2, heads), (None, "heads")
        )

    def __call__(self, x: jax.Array, mask: np.ndarray | None) -> jax.Array:
        """x: [B, nW, S, C] (S = w² tokens per window); mask [nW, S, S] or None -> [B, nW, S, C]."""
        qkv = einsum("bwsc,cthk->bwsthk", x, self.qkv[...], self.dtype)
        qkv = (qkv + self.qkv_bias[...].astype(self.dtype)).astype(jnp.float32)
        q, k, v = (qkv[..., i, :, :] for i in range(3))  # [B, nW, S, H, K], fp32 as the original
        q = q * self.head_dim**-0.5
        logits = jnp.einsum("bwqhk,bwnhk->bwhqn", q, k, precision=jax.lax.Precision.HIGHEST)
        index = relative_position_index(self.window)
        bias = self.relative_position_bias[...][index]  # [S, S, H]
        logits = logits + jnp.transpose(bias, (2, 0, 1))[None, None]
        if mask is not None:
            logits = logits + jnp.asarray(mask)[None, :, None]
        weights = jax.nn.softmax(logits, axis=-1)
        o = jnp.einsum("bwhqn,bwnhk->bwqhk", weights, v, precision=jax.lax.Precision.HIGHEST)
        y = einsum("bwqhk,hkc->bwqc", o, self.proj[...], self.dtype)
        return y + self.proj_bias[...].astype(self.dtype)


class SwinBlock(nnx.Module):
    """Pre-norm block: x + DP(W-MSA(LN1 x)), then x + DP(MLP(LN2 x)), on a grid×grid map."""

    def __init__(self, dim: int, heads: int, grid: int, block: int, cfg: SwinConfig, *, rngs):
        self.grid = grid
        self.window, self.shift = window_and_shift(grid, cfg.window, block)
        self.norm1 = LayerNorm(dim, rngs=rngs)
        self.attn = WindowAttention(dim, heads, self.window, dtype=cfg.dtype, rngs=rngs)
        self.norm2 = LayerNorm(dim, rngs=rngs)
        gelu = functools.partial(jax.nn.gelu, approximate=False)
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp = Mlp(dim, hidden, gelu, dtype=jnp.dtype(cfg.dtype), rngs=rngs)

    def __call__(self, x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
        """x: [B, N, C] (N = grid², row-major) -> [B, N, C]; `key` None: no stochastic depth."""
        b, n, c = x.shape
        g, s = self.grid, self.shift
        h = self.norm1(x).reshape(b, g, g, c)
        if s:
            h = jnp.roll(h, (-s, -s), axis=(1, 2))
        mask = shift_mask(g, self.window, s) if s else None
        h = self.attn(partition(h, self.window), mask)
        h = unpartition(h, self.window, g, g)
        if s:
            h = jnp.roll(h, (s, s), axis=(1, 2))
        h = h.reshape(b, n, c).astype(x.dtype)
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        x = x + (h if k1 is None else drop_path(h, rate, k1, "sample"))
        m = self.mlp(self.norm2(x))
        x = x + (m if k2 is None else drop_path(m, rate, k2, "sample"))
        return constrain(x, ("batch", "tokens", "embed"))


class PatchMerging(nnx.Module):
    """[B, g², C] -> [B, (g/2)², 2C]: 2×2 neighbours concatenated (0,0),(1,0),(0,1),(1,1)."""

    def __init__(self, dim: int, grid: int, *, dtype: str, rngs: nnx.Rngs):
        self.grid = grid
        self.norm = LayerNorm(4 * dim, rngs=rngs)
        self.reduction = Linear(
            4 * dim, 2 * dim, bias=False, axes=("mlp", "embed"), dtype=jnp.dtype(dtype), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        b, _, c = x.shape
        g = self.grid
        x = x.reshape(b, g, g, c)
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        x = jnp.concatenate(parts, axis=-1).reshape(b, (g // 2) ** 2, 4 * c)
        return self.reduction(self.norm(x))


class SwinStage(nnx.Module):
    def __init__(self, index: int, cfg: SwinConfig, *, rngs: nnx.Rngs):
        dim, grid, heads = cfg.widths()[index], cfg.grids()[index], cfg.heads[index]
        self.blocks = nnx.List(
            [SwinBlock(dim, heads, grid, b, cfg, rngs=rngs) for b in range(cfg.depths[index])]
        )
        last = index == len(cfg.depths) - 1
        self.downsample = None if last else PatchMerging(dim, grid, dtype=cfg.dtype, rngs=rngs)


class SwinTransformer(nnx.Module):
    """images [B, S, S, 3] (normalised) -> stage outputs, see `__call__`."""

    def __init__(self, cfg: SwinConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        p, d = cfg.patch, cfg.embed_dim
        init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1, 2)
        )
        self.patch_embed = param(rngs, init, (p, p, 3, d), (None, None, None, "embed"))
        self.patch_embed_bias = param(rngs, nnx.initializers.zeros, (d,), ("embed",))
        self.patch_norm = LayerNorm(d, rngs=rngs)
        self.stages = nnx.List([SwinStage(i, cfg, rngs=rngs) for i in range(len(cfg.depths))])

    def embed(self, images: jax.Array) -> jax.Array:
        """[B, S, S, 3] -> patch tokens [B, (S/p)², D]: the original's stride-p conv + LN."""
        b, h, w, c = images.shape
        s, p = self.cfg.image_size, self.cfg.patch
        if (h, w, c) != (s, s, 3):
            raise ValueError(f"Swin expects images [B, {s}, {s}, 3], got {tuple(images.shape)}")
        x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        dtype = jnp.dtype(self.cfg.dtype)
        x = einsum("bhwijc,ijcd->bhwd", x, self.patch_embed[...], dtype)
        x = x + self.patch_embed_bias[...].astype(dtype)
        return self.patch_norm(x.reshape(b, -1, x.shape[-1]))

    def __call__(
        self, images: jax.Array, *, train: bool = False, rng: jax.Array | None = None
    ) -> dict[str, tuple[jax.Array, ...]]:
        """-> {"stages": each stage's output as a map [B, g_i, g_i, C_i] after its PatchMerging
        (Swin-T at 112: 28²×192, 14²×384, 7²×768, 7²×768 — the last has no merging and no final
        norm)}. train=True with an `rng` key enables stochastic depth."""
        cfg = self.cfg
        x = self.embed(images)
        total = sum(cfg.depths)
        rates = np.linspace(0.0, cfg.drop_path_rate, total)
        use_dp = train and rng is not None and cfg.drop_path_rate > 0
        keys = list(jax.random.split(rng, total)) if use_dp else [None] * total
        outputs, k = [], 0
        for stage in self.stages:
            for block in stage.blocks:
                call = nnx.remat(type(block).__call__) if cfg.remat else type(block).__call__
                x = call(block, x, float(rates[k]), keys[k])
                k += 1
            if stage.downsample is not None:
                x = stage.downsample(x)
            g = round(x.shape[1] ** 0.5)
            outputs.append(x.reshape(x.shape[0], g, g, x.shape[-1]))
        return {"stages": tuple(outputs)}


def level_maps(stages: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """SwinFace's multi-level input: every stage's map average-pooled to the last stage's g×g
    grid ([B, g, g, C_i]; the last stage as is, before any final norm). The original
    concatenates the first three as its "local" features and calls the last "global"."""
    g = stages[-1].shape[1]
    out = []
    for s in stages:
        b, h, _, c = s.shape
        f = h // g
        out.append(s.reshape(b, g, f, g, f, c).mean(axis=(2, 4)) if f > 1 else s)
    return tuple(out)
