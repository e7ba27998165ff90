"""Faceptor's task interpreters and output modules (the original's
`FeatureInterpreter_v2`, value and `map_v2` interpreters, `ParsingOutput`, `AlignOutput`).

One interpreter per kind, shared by every task of that kind:
- `RecognitionHead` (`feature_v2`): last-layer patch tokens -> LN -> token mean -> Linear -> BN ->
  Linear -> BN: a 512-d embedding, no activation (also Naive Faceptor's recognition head).
- `ValueInterpreter`: one Linear(C, 1) on each decoder query -> [B, Q] logits.
- `MapInterpreter`: pixel decoder on the level-11 source map, MLP on the decoder queries, einsum
  -> [B, 4S, 4S, Q] maps (channels last).
Output modules have no parameters: `parsing_output` (bilinear to the input size) and
`landmark_output` (soft-argmax of the sigmoid heatmaps).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, LayerNorm, Linear, einsum
from faceptor_jax.model.pixel_decoder import PixelDecoder
from faceptor_jax.resample import resize_bilinear


class RecognitionHead(nnx.Module):
    """tokens [B, N, D] -> embedding [B, E]. BN eps 2e-5 (insightface), PyTorch momentum 0.1."""

    def __init__(self, width: int, out: int, *, dtype: str = "float32", rngs: nnx.Rngs):
        d = jnp.dtype(dtype)
        self.norm = LayerNorm(width, rngs=rngs)
        self.fc_1 = Linear(width, width, bias=False, axes=("embed", "mlp"), dtype=d, rngs=rngs)
        self.bn_1 = BatchNorm(width, eps=2e-5, rngs=rngs)
        self.fc_2 = Linear(width, out, bias=False, axes=("mlp", "embed"), dtype=d, rngs=rngs)
        self.bn_2 = BatchNorm(out, eps=2e-5, rngs=rngs)

    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        x = self.norm(tokens).astype(jnp.float32).mean(axis=1)
        x = self.bn_1(self.fc_1(x), train)
        return self.bn_2(self.fc_2(x), train).astype(jnp.float32)


class ValueInterpreter(nnx.Module):
    def __init__(self, hidden: int, *, dtype: str = "float32", rngs: nnx.Rngs):
        self.fc = Linear(hidden, 1, axes=("embed", None), dtype=jnp.dtype(dtype), rngs=rngs)

    def __call__(self, queries: jax.Array) -> jax.Array:
        """decoder output [B, Q, C] -> logits [B, Q]."""
        return self.fc(queries)[..., 0].astype(jnp.float32)


class MapInterpreter(nnx.Module):
    def __init__(self, hidden: int, *, dtype: str = "float32", rngs: nnx.Rngs):
        d = jnp.dtype(dtype)
        self.dtype = d
        self.pixel_decoder = PixelDecoder(hidden, dtype=dtype, rngs=rngs)
        self.mask_embed_1 = Linear(hidden, hidden, axes=("embed", "mlp"), dtype=d, rngs=rngs)
        self.mask_embed_2 = Linear(hidden, hidden, axes=("mlp", "embed"), dtype=d, rngs=rngs)
        self.mask_embed_3 = Linear(hidden, hidden, axes=("embed", "mlp"), dtype=d, rngs=rngs)

    def features(self, source: jax.Array, grid: tuple[int, int]) -> jax.Array:
        """level-11 source tokens [B, N, C] (row-major grid) -> mask features [B, 4S, 4S, C]."""
        b, _, c = source.shape
        return self.pixel_decoder(source.reshape(b, grid[0], grid[1], c))

    def __call__(self, queries: jax.Array, features: jax.Array) -> jax.Array:
        """decoder output [B, Q, C], mask features [B, H, W, C] -> maps [B, H, W, Q]."""
        e = jax.nn.relu(self.mask_embed_1(queries))
        e = self.mask_embed_3(jax.nn.relu(self.mask_embed_2(e)))
        return einsum("bqc,bhwc->bhwq", e, features, self.dtype).astype(jnp.float32)


def parsing_output(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
    """ParsingOutput: [B, h, w, Q] logits -> bilinear (align_corners False) to [B, H, W, Q]."""
    return resize_bilinear(maps, size)


def landmark_output(heatmaps: jax.Array) -> dict[str, jax.Array]:
    """AlignOutput: [B, h, w, K] logits -> sigmoid maps and their soft-argmax.

    landmarks: [B, K, 2] (x, y) normalised to [0, 1] as ((x̂ + 0.5)/w, (ŷ + 0.5)/h), where x̂, ŷ are
    the sigmoid-weighted means of the pixel indices (weights summed with a floor of 1e-6).
    """
    _, h, w, _ = heatmaps.shape
    acted = jax.nn.sigmoid(heatmaps.astype(jnp.float32))
    total = jnp.maximum(acted.sum(axis=(1, 2)), 1e-6)  # [B, K]
    hi = jax.lax.Precision.HIGHEST
    ys = jnp.einsum("bhwk,h->bk", acted, jnp.arange(h, dtype=jnp.float32), precision=hi)
    xs = jnp.einsum("bhwk,w->bk", acted, jnp.arange(w, dtype=jnp.float32), precision=hi)
    points = jnp.stack([(xs / total + 0.5) / w, (ys / total + 0.5) / h], axis=-1)
    return {"heatmap": heatmaps, "heatmap_acted": acted, "landmarks": points}


def output_module(kind: str, maps: jax.Array, size: tuple[int, int]) -> dict[str, jax.Array]:
    """Apply a task's output module ("parsing", "landmarks" or "none") to its maps [B, h, w, Q]."""
    if kind == "parsing":
        return {"maps": maps, "logits": parsing_output(maps, size)}
    if kind == "landmarks":
        return landmark_output(maps)
    return {"maps": maps}
