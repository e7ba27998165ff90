"""ResNet-50 (torchvision layout, v1.5) in NNX: image [B, H, W, 3] -> every stage's feature map.

torchvision's structure and names, so torchvision, FRA and FER checkpoints convert by a table:
`conv1` 7×7/2 (pad 3) -> `bn1` -> ReLU -> max-pool 3/2 (pad 1) -> `layer1..4`, each a dict of
Bottlenecks `"0".."n-1"` with `conv1` 1×1, `conv2` 3×3 carrying the stride (v1.5), `conv3` 1×1
(×4 expansion), a `downsample` (1×1 conv with the stride + BN) on each stage's first block. All
convolutions are bias-free. BatchNorm: eps 1e-5, PyTorch momentum 0.1; in train mode its
statistics are over every axis but the channels, i.e. the global batch under a mesh (SyncBN).

`width` is torchvision's 64 (stem channels, layer1's bottleneck width); smaller widths give the
same structure at reduced cost. `num_classes=0` is the encoder (no pooling, no `fc`: the map of
`layer4` is the output), `num_classes>0` adds global average pooling and `fc` (torchvision's
classifier, as FER fine-tuning uses).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, param
from faceptor_jax.sharding import constrain

MAP_AXES = ("batch", "height", "width", "channels")
STAGES = ("layer1", "layer2", "layer3", "layer4")


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """ResNet-50 by default (blocks 3, 4, 6, 3; base width 64; 2048 output channels)."""

    width: int = 64
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    num_classes: int = 0  # 0: encoder (layer4 map out); > 0: avg-pool + fc logits
    zero_init_residual: bool = False  # torchvision's option; FRA and FER leave it off
    bn_momentum: float = 0.1  # PyTorch convention: running = (1 - m)·running + m·batch
    bn_eps: float = 1e-5
    dtype: str = "float32"  # compute dtype; params and BN statistics stay fp32

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ResNetConfig":
        """From the `model.json` form (JSON lists become tuples)."""
        d = dict(d)
        return cls(**d | ({"blocks": tuple(d["blocks"])} if "blocks" in d else {}))

    @property
    def out_channels(self) -> int:
        return self.width * 8 * Bottleneck.expansion


def _kaiming_fan_out() -> nnx.Initializer:
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), untruncated.
    return nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


class Conv(nnx.Module):
    """Bias-free NHWC convolution with a stride; kernel [kh, kw, Cin, Cout], PyTorch padding."""

    def __init__(
        self,
        din: int,
        dout: int,
        kernel: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.stride, self.padding, self.dtype = stride, padding, dtype
        self.kernel = param(
            rngs, _kaiming_fan_out(), (kernel, kernel, din, dout), (None, None, "embed", "mlp")
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, Cin] -> [B, H', W', Cout], H' = ⌊(H + 2p − k)/s⌋ + 1 as in PyTorch."""
        p, s = self.padding, self.stride
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            self.kernel[...].astype(self.dtype),
            window_strides=(s, s),
            padding=((p, p), (p, p)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32,
        )
        return constrain(y.astype(self.dtype), MAP_AXES)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """PyTorch MaxPool2d(3, stride 2, padding 1): padding never wins (−inf). x: [B, H, W, C]."""
    return jax.lax.reduce_window(
        x,
        -jnp.inf,  # a Python scalar: JAX then lowers to the differentiable max-pool
        jax.lax.max,
        (1, 3, 3, 1),
        (1, 2, 2, 1),
        ((0, 0), (1, 1), (1, 1), (0, 0)),
    )


class Downsample(nnx.Module):
    """torchvision's `downsample` Sequential: 1×1 conv with the stride (`.0`) + BN (`.1`)."""

    def __init__(self, din: int, dout: int, stride: int, cfg: ResNetConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.conv = Conv(din, dout, 1, stride=stride, dtype=dtype, rngs=rngs)
        self.bn = _bn(dout, cfg, rngs)

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return self.bn(self.conv(x), train)


def _bn(dim: int, cfg: ResNetConfig, rngs: nnx.Rngs) -> BatchNorm:
    # layers.BatchNorm takes Flax's momentum convention (weight of the old running value).
    return BatchNorm(dim, eps=cfg.bn_eps, momentum=1.0 - cfg.bn_momentum, rngs=rngs)


class Bottleneck(nnx.Module):
    """1×1 -> 3×3 (stride) -> 1×1 (×4), each with BN; ReLU after the residual sum."""

    expansion = 4

    def __init__(self, din: int, planes: int, stride: int, cfg: ResNetConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        dout = planes * self.expansion
        self.conv1 = Conv(din, planes, 1, dtype=dtype, rngs=rngs)
        self.bn1 = _bn(planes, cfg, rngs)
        self.conv2 = Conv(planes, planes, 3, stride=stride, padding=1, dtype=dtype, rngs=rngs)
        self.bn2 = _bn(planes, cfg, rngs)
        self.conv3 = Conv(planes, dout, 1, dtype=dtype, rngs=rngs)
        self.bn3 = _bn(dout, cfg, rngs)
        if cfg.zero_init_residual:  # each block starts as the identity (Goyal et al., 2017)
            self.bn3.scale[...] = jnp.zeros_like(self.bn3.scale[...])
        needs_projection = stride != 1 or din != dout
        self.downsample = (
            Downsample(din, dout, stride, cfg, rngs=rngs) if needs_projection else None
        )

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """x: [B, H, W, Cin] -> [B, H/stride, W/stride, 4·planes]."""
        y = jax.nn.relu(self.bn1(self.conv1(x), train))
        y = jax.nn.relu(self.bn2(self.conv2(y), train))
        y = self.bn3(self.conv3(y), train)
        identity = x if self.downsample is None else self.downsample(x, train)
        return constrain(jax.nn.relu(y + identity), MAP_AXES)


class ResNet(nnx.Module):
    """`__call__(images [B, H, W, 3]) -> {"stem", "layer1".."layer4"[, "pooled", "logits"]}`.

    "stem" is the max-pooled stem map [B, H/4, W/4, width]; "layerk" is stage k's map
    [B, H/2^(k+1), W/2^(k+1), width·2^(k−1)·4]; with a classifier, "pooled" [B, 8·4·width] is
    the spatial mean of layer4 and "logits" [B, num_classes] = fc(pooled).
    """

    def __init__(self, cfg: ResNetConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype = jnp.dtype(cfg.dtype)
        self.conv1 = Conv(3, cfg.width, 7, stride=2, padding=3, dtype=dtype, rngs=rngs)
        self.bn1 = _bn(cfg.width, cfg, rngs)
        din = cfg.width
        for k, (name, n) in enumerate(zip(STAGES, cfg.blocks, strict=True)):
            planes = cfg.width * 2**k
            stage = {}
            for i in range(n):
                stride = 2 if (k > 0 and i == 0) else 1
                stage[str(i)] = Bottleneck(din, planes, stride, cfg, rngs=rngs)
                din = planes * Bottleneck.expansion
            setattr(self, name, nnx.Dict(stage))
        if cfg.num_classes:
            # FER fine-tuning re-initialises the head N(0, 0.01²), bias 0.
            self.fc = param(
                rngs, nnx.initializers.normal(0.01), (din, cfg.num_classes), ("embed", "classes")
            )
            self.fc_bias = param(rngs, nnx.initializers.zeros, (cfg.num_classes,), ("classes",))

    def __call__(self, images: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        """images: [B, H, W, 3] normalised. train: BatchNorm on batch statistics (and updated)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images [B, H, W, 3], got shape {tuple(images.shape)}")
        x = constrain(images, MAP_AXES)
        x = jax.nn.relu(self.bn1(self.conv1(x), train))
        out = {"stem": max_pool_3x3_s2(x)}
        x = out["stem"]
        for name in STAGES:
            stage = getattr(self, name)
            for i in range(len(stage)):
                x = stage[str(i)](x, train)
            out[name] = x
        if self.cfg.num_classes:
            pooled = x.astype(jnp.float32).mean(axis=(1, 2))  # [B, C]
            out["pooled"] = pooled
            logits = jnp.einsum(
                "bc,ck->bk",
                pooled.astype(x.dtype),
                self.fc[...].astype(x.dtype),
                preferred_element_type=jnp.float32,
            )
            out["logits"] = logits + self.fc_bias[...]
        return out
