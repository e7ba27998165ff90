"""Layer-Attention: the decoder's multi-level memory.

Each used encoder level ℓ_j is projected by its own 1×1 conv (768 -> 256, with bias) and tagged
with its own learned level embedding E_j in the memory's key positions. Stage 1 reads only the last
level ([11]); stage 2 appends levels [1, 3, 5, 7, 9] with *separate* projections and embeddings
(`new_input_proj`, `new_level_embed`, the only parameters stage 2 trains). There is no explicit
per-layer weight: the cross-attention softmax over the concatenated tokens selects among layers.

Memory order is the original's: the `levels` first, then the `new_levels`, each S² tokens
row-major. The decoder's dense source (`src`) is the projection of level 11 alone.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import einsum, param
from faceptor_jax.sharding import constrain


class LevelProjection(nnx.Module):
    """One 1×1 conv per level, stacked: kernel [n, D, C], bias [n, C]; embeddings [n, C]."""

    def __init__(self, n: int, din: int, dout: int, *, rngs: nnx.Rngs):
        # kaiming_uniform(a=1): bound sqrt(3 / fan_in), bias 0 (c2_xavier_fill)
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform", in_axis=1, out_axis=2)
        self.kernel = param(rngs, init, (n, din, dout), ("layers", "embed", "mlp"))
        self.bias = param(rngs, nnx.initializers.zeros, (n, dout), ("layers", "mlp"))
        self.embed = param(rngs, nnx.initializers.normal(1.0), (n, dout), ("layers", "mlp"))

    def __call__(self, feats: jax.Array, dtype: jnp.dtype) -> jax.Array:
        """feats: [n, B, N, D] -> [n, B, N, C]."""
        y = einsum("lbnd,ldc->lbnc", feats, self.kernel[...], dtype)
        return y + self.bias[...][:, None, None].astype(dtype)


class LayerAttention(nnx.Module):
    """Encoder tokens of every layer -> (memory, memory key positions, level-11 source)."""

    def __init__(
        self,
        width: int,
        hidden: int,
        levels: tuple[int, ...],
        new_levels: tuple[int, ...] = (),
        *,
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        if not levels:
            raise ValueError("LayerAttention needs at least one level")
        self.levels, self.new_levels, self.dtype = tuple(levels), tuple(new_levels), dtype
        self.input_proj = LevelProjection(len(levels), width, hidden, rngs=rngs)
        self.new_input_proj = (
            LevelProjection(len(new_levels), width, hidden, rngs=rngs) if new_levels else None
        )

    def __call__(
        self, patches: jax.Array, anchor_pos: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """patches: [L, B, N, D] patch tokens of every encoder layer (no CLS);
        anchor_pos: [N, C] adapted sine positions of the grid.

        Returns memory [B, M, C], its key positions [M, C] (M = levels·N) and the projection of
        the last used level (index 11 for ViT-B) [B, N, C], the map interpreter's source.
        """
        dtype = jnp.dtype(self.dtype)
        depth = patches.shape[0]
        src = self.input_proj(patches[jnp.asarray(self.levels)], dtype)  # [n, B, N, C]
        embeds = [self.input_proj.embed[...]]
        parts = [src]
        if self.new_input_proj is not None:
            parts.append(self.new_input_proj(patches[jnp.asarray(self.new_levels)], dtype))
            embeds.append(self.new_input_proj.embed[...])
        tokens = jnp.concatenate(parts, axis=0)  # [n_all, B, N, C]
        n_all, b, n, c = tokens.shape
        memory = jnp.moveaxis(tokens, 0, 1).reshape(b, n_all * n, c)
        pos = (anchor_pos[None] + jnp.concatenate(embeds, axis=0)[:, None]).reshape(n_all * n, c)
        last = depth - 1
        if last not in self.levels:
            raise ValueError(f"levels {self.levels} must include the last encoder layer {last}")
        source = src[self.levels.index(last)]
        return (
            constrain(memory, ("batch", "tokens", "embed")),
            pos.astype(dtype),
            constrain(source, ("batch", "tokens", "embed")),
        )
