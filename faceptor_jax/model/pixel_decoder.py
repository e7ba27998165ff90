"""The map interpreter's upsampling pixel decoder (the original's `mask_map`).

ConvTranspose(k2, s2) -> Norm2d (per-pixel LayerNorm over channels, eps 1e-6) -> GELU (exact
erf) -> ConvTranspose(k2, s2): an S×S source map becomes 4S×4S (32 -> 128 for 512-px inputs).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import ConvTranspose2x2, LayerNorm
from faceptor_jax.sharding import constrain


class PixelDecoder(nnx.Module):
    def __init__(self, dim: int, *, dtype: str = "float32", rngs: nnx.Rngs):
        d = jnp.dtype(dtype)
        self.up_1 = ConvTranspose2x2(dim, dim, dtype=d, rngs=rngs)
        self.norm = LayerNorm(dim, eps=1e-6, rngs=rngs)
        self.up_2 = ConvTranspose2x2(dim, dim, dtype=d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, S, S, C] -> [B, 4S, 4S, C]."""
        x = jax.nn.gelu(self.norm(self.up_1(x)), approximate=False)
        return constrain(self.up_2(x), ("batch", "height", "width", "embed"))
