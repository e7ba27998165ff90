"""Faceptor's task-query transformer decoder.

Learned queries per task attend to the multi-level image memory. Each of the `layers` (9) post-norm
layers runs, in this order:
  cross-attention  out = LN(out + MHA(q=out+qpos, k=mem+pos, v=mem))
  self-attention   out = LN(out + MHA(q=out+qpos, k=out+qpos, v=out))
  FFN              out = LN(out + W2·relu(W1·out))
The query positional embedding `qpos` is the raw `query_embed` table; the memory's is
`adapt(sine(anchor centres)) + level embedding` (the level part lives in `LayerAttention`).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.layers import LayerNorm, Linear, Mlp, MultiHeadAttention, param
from faceptor_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    hidden: int = 256
    heads: int = 8
    ffn: int = 2048
    layers: int = 9
    dtype: str = "float32"


@functools.lru_cache(maxsize=16)
def anchor_sine(grid: tuple[int, int], feats: int, temperature: float = 10000.0) -> np.ndarray:
    """Sine embedding of the cell centres of a gh×gw grid: [gh·gw, 2·feats], row-major cells.

    centre (x, y) = ((w + 0.5)/gw, (h + 0.5)/gh); a_k = 2π·v / T^(2⌊k/2⌋/F); features interleave
    sin(a_2j), cos(a_2j); y's embedding comes first, then x's (the original's `pos2posemb2d`).
    """
    gh, gw = grid
    k = np.arange(feats, dtype=np.float64)
    dim_t = temperature ** (2 * (k // 2) / feats)

    def emb(v: np.ndarray) -> np.ndarray:  # [n] -> [n, F]
        a = v[:, None] * 2 * np.pi / dim_t
        out = np.empty_like(a)
        out[:, 0::2], out[:, 1::2] = np.sin(a[:, 0::2]), np.cos(a[:, 1::2])
        return out

    ey = emb((np.arange(gh) + 0.5) / gh)  # [gh, F]
    ex = emb((np.arange(gw) + 0.5) / gw)  # [gw, F]
    grid_emb = np.concatenate(
        [np.repeat(ey[:, None], gw, axis=1), np.repeat(ex[None], gh, axis=0)], axis=-1
    )
    return grid_emb.reshape(gh * gw, 2 * feats).astype(np.float32)


class DecoderLayer(nnx.Module):
    """Cross-attention -> self-attention -> FFN, each followed by its LayerNorm (post-norm)."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        c = cfg.hidden
        self.cross_attn = MultiHeadAttention(c, cfg.heads, dtype=dtype, rngs=rngs)
        self.cross_norm = LayerNorm(c, rngs=rngs)
        self.self_attn = MultiHeadAttention(c, cfg.heads, dtype=dtype, rngs=rngs)
        self.self_norm = LayerNorm(c, rngs=rngs)
        self.ffn = Mlp(c, cfg.ffn, jax.nn.relu, dtype=dtype, rngs=rngs)
        self.ffn_norm = LayerNorm(c, rngs=rngs)

    def __call__(
        self, out: jax.Array, qpos: jax.Array, memory: jax.Array, mem_key: jax.Array
    ) -> jax.Array:
        """out/qpos: [B, Q, C]; memory (values) and mem_key (memory + pos): [B, M, C]."""
        out = self.cross_norm(out + self.cross_attn(out + qpos, mem_key, memory))
        qk = out + qpos
        out = self.self_norm(out + self.self_attn(qk, qk, out))
        out = self.ffn_norm(out + self.ffn(out))
        return constrain(out, ("batch", "queries", "embed"))


class TaskQueryDecoder(nnx.Module):
    """Query tables per task, the anchor-position MLP and the stacked decoder layers.

    `queries` maps task name -> number of queries; tables are `query_feat[task]` (initial state)
    and `query_embed[task]` (query positional embedding), both [Q, C].
    """

    def __init__(self, cfg: DecoderConfig, queries: dict[str, int], *, rngs: nnx.Rngs):
        self.cfg = cfg
        c = cfg.hidden
        normal, uniform = nnx.initializers.normal(1.0), nnx.initializers.uniform(1.0)
        self.query_feat = nnx.Dict(
            {t: param(rngs, normal, (q, c), ("queries", "embed")) for t, q in queries.items()}
        )
        self.query_embed = nnx.Dict(
            {t: param(rngs, uniform, (q, c), ("queries", "embed")) for t, q in queries.items()}
        )
        dtype = jnp.dtype(cfg.dtype)
        self.adapt_1 = Linear(c, c, axes=("embed", "mlp"), dtype=dtype, rngs=rngs)
        self.adapt_2 = Linear(c, c, axes=("mlp", "embed"), dtype=dtype, rngs=rngs)

        @nnx.split_rngs(splits=cfg.layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_layers(rngs: nnx.Rngs) -> DecoderLayer:
            return DecoderLayer(cfg, rngs=rngs)

        self.layers = make_layers(rngs)

    def anchor_pos(self, grid: tuple[int, int]) -> jax.Array:
        """adapt_pos2d(sine(anchor centres)): [gh·gw, C]."""
        sine = jnp.asarray(anchor_sine(tuple(grid), self.cfg.hidden // 2))
        return self.adapt_2(jax.nn.relu(self.adapt_1(sine)))

    def task_queries(self, task: str, batch: int) -> tuple[jax.Array, jax.Array]:
        """(query_feat, query_embed) of `task` broadcast to [batch, Q, C]."""
        feat, embed = self.query_feat[task][...], self.query_embed[task][...]
        return (
            jnp.broadcast_to(feat, (batch, *feat.shape)),
            jnp.broadcast_to(embed, (batch, *embed.shape)),
        )

    def __call__(
        self, out: jax.Array, qpos: jax.Array, memory: jax.Array, pos: jax.Array
    ) -> jax.Array:
        """out/qpos: [B, Q, C] initial queries and their embedding; memory: [B, M, C];
        pos: [M, C] or [B, M, C] memory key positions. Returns the decoder output [B, Q, C]."""
        dtype = jnp.dtype(self.cfg.dtype)
        memory = memory.astype(dtype)
        mem_key = memory + pos.astype(dtype)  # [B, M, C]
        out, qpos = out.astype(dtype), qpos.astype(dtype)

        def body(layer: DecoderLayer, out: jax.Array) -> tuple[jax.Array, None]:
            return layer(out, qpos, memory, mem_key), None

        out, _ = nnx.scan(body, in_axes=(0, nnx.Carry), out_axes=(nnx.Carry, 0))(self.layers, out)
        return out
