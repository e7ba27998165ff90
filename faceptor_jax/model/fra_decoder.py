"""FRA's mask-embedding predictor: learned queries attend over the backbone map (MaskFormer style).

`input_proj` (1×1 conv with bias) maps the raw backbone map [B, h, w, C] to the hidden width D;
there is no encoder (0 layers), so the memory is that projection, flattened row-major. Starting
from zeros, `layers` post-norm decoder layers run, in this order (the DETR decoder's, which
differs from Faceptor's cross-first order):
  tgt = norm1(tgt + drop(SelfAttn(q = k = tgt + query_pos, v = tgt)))
  tgt = norm2(tgt + drop(CrossAttn(q = tgt + query_pos, k = memory + pos, v = memory)))
  tgt = norm3(tgt + drop(linear2(drop(relu(linear1(tgt))))))
then a final LayerNorm and a 3-layer MLP give the mask embeddings [B, Q, D]. The memory's `pos`
is DETR's normalised sine encoding of the map shape. Dropout (attention weights and residual
branches) is active only when a key is given; a `None` key is the deterministic train mode.

Layer 0's self-attention sees tgt = 0, so its output is the input-independent out(b_v): kept as
is, its value rows never get a gradient (as in the original).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.layers import LayerNorm, MultiHeadAttention, dropout, einsum, param
from faceptor_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class QueryDecoderConfig:
    in_channels: int = 2048
    dim: int = 256  # hidden width = FFN width = mask-embedding width in FRA
    queries: int = 8
    heads: int = 8
    layers: int = 2
    dropout: float = 0.1
    dtype: str = "float32"


@functools.lru_cache(maxsize=32)
def sine_position_encoding(h: int, w: int, feats: int, temperature: float = 10000.0) -> np.ndarray:
    """DETR's `PositionEmbeddingSine(feats, normalize=True)` of an h×w map: [h·w, 2·feats] fp32.

    y = (row + 1)/(h + 1e-6)·2π, x likewise; channel k of each half is sin (k even) or cos (k
    odd) of v / T^(2⌊k/2⌋/feats); y's half comes first. Evaluated in fp32 in the original's order
    of operations, so the table matches it to float rounding.
    """
    f32 = np.float32
    two_pi = f32(2 * math.pi)
    rows = np.arange(1, h + 1, dtype=f32) / (f32(h) + f32(1e-6)) * two_pi  # [h]
    cols = np.arange(1, w + 1, dtype=f32) / (f32(w) + f32(1e-6)) * two_pi  # [w]
    k = np.arange(feats, dtype=f32)
    dim_t = f32(temperature) ** (f32(2) * np.floor(k / f32(2)) / f32(feats))  # [F]

    def emb(v: np.ndarray) -> np.ndarray:  # [n] -> [n, F]
        a = v[:, None] / dim_t
        out = np.empty_like(a)
        out[:, 0::2], out[:, 1::2] = np.sin(a[:, 0::2]), np.cos(a[:, 1::2])
        return out

    ey = np.broadcast_to(emb(rows)[:, None], (h, w, feats))
    ex = np.broadcast_to(emb(cols)[None], (h, w, feats))
    return np.concatenate([ey, ex], axis=-1).reshape(h * w, 2 * feats).astype(f32)


def _uniform(bound: float) -> nnx.Initializer:
    """U(−bound, bound): PyTorch nn.Linear's default for weight and bias (bound 1/√fan_in)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Dense(nnx.Module):
    """y = x·W + b over the last axis, W [in, out]; PyTorch nn.Linear default init unless told."""

    def __init__(
        self,
        din: int,
        dout: int,
        *,
        kernel_init: nnx.Initializer | None = None,
        axes: tuple[str | None, str | None] = ("embed", "mlp"),
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.dtype = dtype
        default = _uniform(din**-0.5)
        self.kernel = param(rngs, kernel_init or default, (din, dout), axes)
        self.bias = param(rngs, default, (dout,), axes[1:])

    def __call__(self, x: jax.Array) -> jax.Array:
        y = einsum("...i,io->...o", x, self.kernel[...], self.dtype)
        return y + self.bias[...].astype(self.dtype)


class DropoutAttention(MultiHeadAttention):
    """`layers.MultiHeadAttention` (same parameters) with PyTorch MHA's attention-weight dropout.

    Parameters are re-drawn as the original initialises them: the packed [3D, D] input
    projection and the output projection xavier-uniform, biases zero.
    """

    def __init__(self, dim: int, heads: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        super().__init__(dim, heads, dtype=dtype, rngs=rngs)
        xavier = nnx.initializers.xavier_uniform()
        packed = xavier(rngs.params(), (dim, 3 * dim))  # torch's [3D, D], transposed
        self.qkv[...] = packed.reshape(self.qkv[...].shape)
        self.out[...] = xavier(rngs.params(), (dim, dim)).reshape(self.out[...].shape)

    def __call__(  # type: ignore[override]
        self,
        query: jax.Array,
        key: jax.Array,
        value: jax.Array,
        *,
        rate: float = 0.0,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """query: [B, Nq, D]; key, value: [B, Nk, D] -> [B, Nq, D]."""
        q = self._project(query, slice(0, 1))[:, :, 0]  # [B, Nq, H, K]
        k = self._project(key, slice(1, 2))[:, :, 0]  # [B, Nk, H, K]
        v = self._project(value, slice(2, 3))[:, :, 0]
        scale = q.shape[-1] ** -0.5
        logits = jnp.einsum("bqhk,bnhk->bhqn", q, k, preferred_element_type=jnp.float32) * scale
        weights = dropout(jax.nn.softmax(logits, axis=-1), rate, rng)  # dropped after softmax
        o = einsum("bhqn,bnhk->bqhk", weights, v, self.dtype)
        y = einsum("bqhk,hkd->bqd", o, self.out[...], self.dtype)
        return y + self.out_bias[...].astype(self.dtype)


class DecoderLayer(nnx.Module):
    """Self-attention -> cross-attention -> FFN, each followed by its LayerNorm (post-norm)."""

    def __init__(self, cfg: QueryDecoderConfig, *, rngs: nnx.Rngs):
        dtype, d = jnp.dtype(cfg.dtype), cfg.dim
        self.rate = cfg.dropout
        self.self_attn = DropoutAttention(d, cfg.heads, dtype=dtype, rngs=rngs)
        self.cross_attn = DropoutAttention(d, cfg.heads, dtype=dtype, rngs=rngs)
        xavier = nnx.initializers.xavier_uniform()
        self.linear1 = Dense(d, d, kernel_init=xavier, dtype=dtype, rngs=rngs)
        out_axes = ("mlp", "embed")
        self.linear2 = Dense(d, d, kernel_init=xavier, axes=out_axes, dtype=dtype, rngs=rngs)
        self.norm1 = LayerNorm(d, rngs=rngs)
        self.norm2 = LayerNorm(d, rngs=rngs)
        self.norm3 = LayerNorm(d, rngs=rngs)

    def __call__(
        self,
        tgt: jax.Array,
        query_pos: jax.Array,
        memory: jax.Array,
        memory_key: jax.Array,
        rng: jax.Array | None,
    ) -> jax.Array:
        """tgt: [B, Q, D]; query_pos: [Q, D]; memory, memory_key (= memory + pos): [B, M, D]."""
        keys = list(jax.random.split(rng, 6)) if rng is not None else [None] * 6
        r = self.rate
        qk = tgt + query_pos
        h = self.self_attn(qk, qk, tgt, rate=r, rng=keys[0])
        tgt = self.norm1(tgt + dropout(h, r, keys[1]))
        h = self.cross_attn(tgt + query_pos, memory_key, memory, rate=r, rng=keys[2])
        tgt = self.norm2(tgt + dropout(h, r, keys[3]))
        h = self.linear2(dropout(jax.nn.relu(self.linear1(tgt)), r, keys[4]))
        tgt = self.norm3(tgt + dropout(h, r, keys[5]))
        return constrain(tgt, ("batch", "queries", "embed"))


class QueryDecoder(nnx.Module):
    """`__call__(x [B, h, w, C]) -> {"memory" [B, h·w, D], "queries" [B, Q, D], "mask_embed"}`."""

    def __init__(self, cfg: QueryDecoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype, d = jnp.dtype(cfg.dtype), cfg.dim
        # The original projects only when the widths differ.
        self.input_proj = (
            Dense(
                cfg.in_channels,
                d,
                kernel_init=nnx.initializers.variance_scaling(1.0, "fan_in", "uniform"),
                dtype=dtype,
                rngs=rngs,
            )
            if cfg.in_channels != d
            else None
        )
        if self.input_proj is not None:  # c2_xavier_fill: kaiming_uniform(a=1), bias 0
            self.input_proj.bias[...] = jnp.zeros_like(self.input_proj.bias[...])
        self.query_embed = param(
            rngs, nnx.initializers.normal(1.0), (cfg.queries, d), ("queries", "embed")
        )
        self.layers = nnx.Dict({str(i): DecoderLayer(cfg, rngs=rngs) for i in range(cfg.layers)})
        self.decoder_norm = LayerNorm(d, rngs=rngs)
        self.mask_embed = nnx.Dict({str(i): Dense(d, d, dtype=dtype, rngs=rngs) for i in range(3)})

    def __call__(self, x: jax.Array, rng: jax.Array | None = None) -> dict[str, jax.Array]:
        """x: [B, h, w, C] raw backbone map; rng: dropout key (None: no dropout)."""
        cfg = self.cfg
        dtype = jnp.dtype(cfg.dtype)
        b, h, w, c = x.shape
        memory = x.reshape(b, h * w, c).astype(dtype)
        if self.input_proj is not None:
            memory = self.input_proj(memory)
        memory = constrain(memory, ("batch", "tokens", "embed"))  # [B, M, D]
        pos = jnp.asarray(sine_position_encoding(h, w, cfg.dim // 2), dtype)  # [M, D]
        memory_key = memory + pos
        query_pos = self.query_embed[...].astype(dtype)  # [Q, D]
        tgt = jnp.zeros((b, cfg.queries, cfg.dim), dtype)
        for i in range(cfg.layers):
            key = jax.random.fold_in(rng, i) if rng is not None else None
            tgt = self.layers[str(i)](tgt, query_pos, memory, memory_key, key)
        queries = self.decoder_norm(tgt)
        e = queries
        for i in range(3):
            e = self.mask_embed[str(i)](e)
            e = jax.nn.relu(e) if i < 2 else e
        return {"memory": memory, "queries": queries, "mask_embed": e}
