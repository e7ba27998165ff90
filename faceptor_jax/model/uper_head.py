"""Naive Faceptor's dense head: a ViT feature pyramid + mmseg's UPerHead.

Pyramid from four encoder layers (S×S maps, S = 32 at 512 px): level 0 ConvT -> BN -> GELU ->
ConvT (4S), level 1 ConvT (2S), level 2 identity (S), level 3 2×2 max-pool (S/2). UPerHead: PSP
on level 3 (adaptive average pools 1, 2, 3, 6 -> 1×1 ConvModule -> bilinear back, concatenated
after the input -> 3×3 bottleneck), 1×1 laterals on levels 0..2, top-down sums (coarse to fine),
3×3 FPN convs, everything resized to level 0, concatenated, 3×3 fuse, Dropout2d, 1×1 classifier.
ConvModule = conv (no bias) -> BatchNorm (eps 1e-5) -> ReLU. All resizes bilinear, corners off.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, Conv2d, ConvTranspose2x2, dropout
from faceptor_jax.resample import adaptive_avg_pool, resize_bilinear


class ConvModule(nnx.Module):
    def __init__(self, din: int, dout: int, kernel: int, *, dtype: str, rngs: nnx.Rngs):
        self.conv = Conv2d(
            din, dout, kernel, padding=kernel // 2, bias=False, dtype=jnp.dtype(dtype), rngs=rngs
        )
        self.bn = BatchNorm(dout, eps=1e-5, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x), train))


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """`nn.MaxPool2d(2, 2)` on [B, H, W, C] (odd edges dropped, as PyTorch floors)."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class FeaturePyramid(nnx.Module):
    """`fpns`: four S×S maps [B, S, S, D] -> [4S, 2S, S, S/2] resolutions (patch size 16)."""

    def __init__(self, width: int, *, dtype: str, rngs: nnx.Rngs):
        d = jnp.dtype(dtype)
        self.up4_1 = ConvTranspose2x2(width, width, dtype=d, rngs=rngs)
        self.up4_bn = BatchNorm(width, eps=1e-5, rngs=rngs)
        self.up4_2 = ConvTranspose2x2(width, width, dtype=d, rngs=rngs)
        self.up2 = ConvTranspose2x2(width, width, dtype=d, rngs=rngs)

    def __call__(self, feats: list[jax.Array], train: bool) -> list[jax.Array]:
        f0 = self.up4_1(feats[0])
        f0 = self.up4_2(jax.nn.gelu(self.up4_bn(f0, train), approximate=False))
        return [f0, self.up2(feats[1]), feats[2], max_pool_2x2(feats[3])]


class UPerHead(nnx.Module):
    def __init__(
        self,
        width: int,
        channels: int,
        classes: int,
        *,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
        dropout_rate: float = 0.1,
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        self.pool_scales, self.dropout_rate = tuple(pool_scales), dropout_rate
        c = channels
        self.fpns = FeaturePyramid(width, dtype=dtype, rngs=rngs)
        # String-keyed dicts: checkpoint paths stay plain strings ("psp.0.conv.kernel").
        self.psp = nnx.Dict(
            {
                str(i): ConvModule(width, c, 1, dtype=dtype, rngs=rngs)
                for i in range(len(pool_scales))
            }
        )
        self.bottleneck = ConvModule(width + len(pool_scales) * c, c, 3, dtype=dtype, rngs=rngs)
        self.lateral = nnx.Dict(
            {str(i): ConvModule(width, c, 1, dtype=dtype, rngs=rngs) for i in range(3)}
        )
        self.fpn_convs = nnx.Dict(
            {str(i): ConvModule(c, c, 3, dtype=dtype, rngs=rngs) for i in range(3)}
        )
        self.fpn_bottleneck = ConvModule(4 * c, c, 3, dtype=dtype, rngs=rngs)
        self.conv_seg = Conv2d(c, classes, 1, dtype=jnp.dtype(dtype), rngs=rngs)

    def _psp(self, x: jax.Array, train: bool) -> jax.Array:
        size = x.shape[1:3]
        outs = [x]
        for i, scale in enumerate(self.pool_scales):
            conv = self.psp[str(i)]
            outs.append(resize_bilinear(conv(adaptive_avg_pool(x, scale), train), size))
        return self.bottleneck(jnp.concatenate(outs, axis=-1), train)

    def __call__(
        self, feats: list[jax.Array], train: bool = False, rng: jax.Array | None = None
    ) -> jax.Array:
        """four encoder maps [B, S, S, D] -> logits [B, 4S, 4S, classes]."""
        feats = self.fpns(feats, train)
        lat = [self.lateral[str(i)](feats[i], train) for i in range(3)]
        lat.append(self._psp(feats[3], train))
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + resize_bilinear(lat[i], lat[i - 1].shape[1:3])
        outs = [self.fpn_convs[str(i)](lat[i], train) for i in range(3)] + [lat[-1]]
        size = outs[0].shape[1:3]
        x = jnp.concatenate([resize_bilinear(o, size) for o in outs], axis=-1)
        x = self.fpn_bottleneck(x, train)
        if train and rng is not None:  # Dropout2d: whole channels
            x = dropout(x, self.dropout_rate, rng, (x.shape[0], 1, 1, x.shape[-1]))
        return self.conv_seg(x).astype(jnp.float32)
