"""FRA (facial region awareness, CVPR 2024): online and momentum-teacher networks with region necks.

Each network is a ResNet encoder (the layer4 map [B, h, w, C]) and an `ObjectNeck`:
- `proj` (global): MLP1D of the spatially pooled map -> z_g [B, D];
- `proj_pixel`: MLP1D per pixel -> feat [B, h, w, D];
- `proj_attn`: learnable queries over the raw map -> mask embeddings [B, Q, D];
- heatmaps `dots` [B, h, w, Q] = cosine(mask embedding q, feat at the pixel). In the training path
  the mask embeddings are first averaged over the (global) batch, so every image is scored against
  the same Q embeddings; outside it the `proto` buffer (an EMA of batch-mean mask embeddings,
  momentum 0.9, updated by every training-path call) replaces them;
- `obj_attn` = softmax over the Q prototypes (temperature `scale`, 1.0) + 1e-7 per pixel;
- regions: `slots` [B, Q, C] = obj_attn-weighted spatial mean of the RAW backbone map, then
  `proj_obj` (MLP1D over the Q regions) -> obj_val [B, Q, D].
MLP1D = 1×1 conv (no bias) -> BatchNorm over every position (B·L) -> ReLU -> 1×1 conv (no bias).

`FRA` holds `online`, `teacher` (same modules, its own parameters: copied from the online ones at
construction, its buffers not) and the online-only `predictor` / `predictor_obj`. The teacher runs
in train mode (batch-statistics BN, dropout), its outputs are stop-gradient.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, einsum, param
from faceptor_jax.model.fra_decoder import QueryDecoder, QueryDecoderConfig
from faceptor_jax.model.resnet import ResNet, ResNetConfig
from faceptor_jax.sharding import constrain

# Optimised by gradient: everything but the teacher (which follows by EMA) and the buffers.
TRAINABLE = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("teacher")))


@dataclasses.dataclass(frozen=True)
class FRAConfig:
    """FRA-B with a ResNet-50 by default (proj dim 256, MLP hidden 4096, 8 prototypes)."""

    backbone: ResNetConfig = dataclasses.field(default_factory=ResNetConfig)
    dim: int = 256  # projection / transformer / mask-embedding width
    hidden: int = 4096  # MLP1D hidden width
    num_proto: int = 8  # queries = heatmaps = regions
    heads: int = 8
    dec_layers: int = 2
    dropout: float = 0.1  # decoder dropout (online and teacher, train mode)
    scale: float = 1.0  # heatmap softmax temperature
    proto_momentum: float = 0.9
    dtype: str = "float32"  # compute dtype; BN, norms, softmaxes and the buffers stay fp32

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FRAConfig":
        """From the `model.json` form (the backbone a nested dict)."""
        d = dict(d)
        if "backbone" in d:
            d["backbone"] = ResNetConfig.from_dict(d["backbone"])
        return cls(**d)

    def decoder(self) -> QueryDecoderConfig:
        return QueryDecoderConfig(
            in_channels=self.backbone.out_channels,
            dim=self.dim,
            queries=self.num_proto,
            heads=self.heads,
            layers=self.dec_layers,
            dropout=self.dropout,
            dtype=self.dtype,
        )


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """PyTorch F.normalize: x / max(‖x‖, eps), in fp32."""
    x = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)


class MLP1D(nnx.Module):
    """BYOL neck on [B, L, Cin] -> [B, L, Cout]; BN statistics over all B·L positions.

    Its BN is named `norm`, not `bn`: the original's LARS excludes parameters by the substring
    "bn" of their names and these BNs (`mlp.1`) are not excluded; our names keep that rule.
    """

    def __init__(self, din: int, hidden: int, dout: int, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        self.dtype = dtype
        init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # c2_msra_fill
        self.fc1 = param(rngs, init, (din, hidden), ("embed", "mlp"))
        self.norm = BatchNorm(hidden, eps=1e-5, momentum=0.9, rngs=rngs)
        self.fc2 = param(rngs, init, (hidden, dout), ("mlp", "embed"))

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = einsum("blc,cm->blm", x, self.fc1[...], self.dtype)
        h = jax.nn.relu(self.norm(h, train))
        return einsum("blm,md->bld", h, self.fc2[...], self.dtype)


class ObjectNeck(nnx.Module):
    """Global, pixel and region projections plus heatmaps; see the module docstring."""

    def __init__(self, cfg: FRAConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype, c = jnp.dtype(cfg.dtype), cfg.backbone.out_channels
        self.proj = MLP1D(c, cfg.hidden, cfg.dim, dtype, rngs=rngs)
        self.proj_pixel = MLP1D(c, cfg.hidden, cfg.dim, dtype, rngs=rngs)
        self.proj_obj = MLP1D(c, cfg.hidden, cfg.dim, dtype, rngs=rngs)
        self.proj_attn = QueryDecoder(cfg.decoder(), rngs=rngs)
        self.proto = nnx.BatchStat(jax.random.normal(rngs.params(), (cfg.num_proto, cfg.dim)))

    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool,
        neck_train: bool | None = None,
        rng: jax.Array | None = None,
    ) -> dict[str, jax.Array]:
        """x: [B, h, w, C] backbone map.

        train: BN on batch statistics and decoder dropout (if `rng`). neck_train (default
        `train`): heatmaps from the batch-mean mask embeddings and a `proto` update (the
        original's `isTrain`, which its LFW validation leaves on in eval mode); False: heatmaps
        from `proto`, no update.
        """
        cfg = self.cfg
        neck_train = train if neck_train is None else neck_train
        b, h, w, c = x.shape
        flat = x.reshape(b, h * w, c)
        pooled = flat.astype(jnp.float32).mean(axis=1, keepdims=True).astype(x.dtype)
        z_g = self.proj(pooled, train)[:, 0]  # [B, D]
        feat = self.proj_pixel(flat, train)  # [B, h·w, D]
        attn = self.proj_attn(x, rng=rng if train else None)
        mask_embed = attn["mask_embed"].astype(jnp.float32)  # [B, Q, D]
        if neck_train:
            # Mean over the global batch (SyncBN-like under a mesh): one set of Q embeddings.
            embed = l2_normalize(mask_embed.mean(axis=0))
        else:
            embed = l2_normalize(self.proto[...])
        dots = jnp.einsum("qd,bnd->bnq", embed, l2_normalize(feat))  # [B, h·w, Q] cosines
        obj_attn = jax.nn.softmax(dots / cfg.scale, axis=-1) + 1e-7  # over the Q prototypes
        weights = obj_attn / obj_attn.sum(axis=1, keepdims=True)  # normalised over space
        slots = jnp.einsum("bnc,bnq->bqc", flat.astype(jnp.float32), weights)  # raw map pooled
        slots = constrain(slots, ("batch", "queries", None))
        obj_val = self.proj_obj(slots.astype(x.dtype), train)  # [B, Q, D]
        if neck_train:
            m = cfg.proto_momentum
            batch_center = jax.lax.stop_gradient(mask_embed.mean(axis=0))
            self.proto[...] = self.proto[...] * m + batch_center * (1 - m)
        grid = (b, h, w)
        return {
            "z_g": z_g,
            "feat": feat.reshape(*grid, -1),
            "memory": attn["memory"],
            "queries": attn["queries"],
            "mask_embed": mask_embed,
            "dots": dots.reshape(*grid, -1),
            "obj_attn": obj_attn.reshape(*grid, -1),
            "slots": slots,
            "obj_val": obj_val,
        }


class FRANetwork(nnx.Module):
    """Backbone + neck (the original's `EncoderObj`); outputs the backbone stages and the neck's."""

    def __init__(self, cfg: FRAConfig, *, rngs: nnx.Rngs):
        if cfg.backbone.num_classes:
            raise ValueError("the FRA backbone is an encoder: backbone.num_classes must be 0")
        self.backbone = ResNet(cfg.backbone, rngs=rngs)
        self.neck = ObjectNeck(cfg, rngs=rngs)

    def __call__(
        self,
        images: jax.Array,
        *,
        train: bool,
        neck_train: bool | None = None,
        rng: jax.Array | None = None,
    ) -> dict[str, jax.Array]:
        """images: [B, H, W, 3] -> {stem, layer1..4 (maps), z_g, feat, …, obj_val}."""
        maps = self.backbone(images, train=train)
        out = self.neck(maps["layer4"], train=train, neck_train=neck_train, rng=rng)
        return {**maps, **out}


class FRA(nnx.Module):
    """Online + teacher networks and the two predictors (the original's `FRAB`)."""

    def __init__(self, cfg: FRAConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype = jnp.dtype(cfg.dtype)
        self.online = FRANetwork(cfg, rngs=rngs)
        self.teacher = FRANetwork(cfg, rngs=rngs)
        self.predictor = MLP1D(cfg.dim, cfg.hidden, cfg.dim, dtype, rngs=rngs)
        self.predictor_obj = MLP1D(cfg.dim, cfg.hidden, cfg.dim, dtype, rngs=rngs)
        # Teacher parameters start as the online ones; BN statistics and `proto` stay its own.
        nnx.update(self.teacher, jax.tree.map(jnp.copy, nnx.state(self.online, nnx.Param)))

    def __call__(
        self, view1: jax.Array, view2: jax.Array, *, rng: jax.Array | None = None
    ) -> dict[str, dict[str, jax.Array]]:
        """Training forward of both views through both networks, in the original's order.

        view1, view2: [B, H, W, 3]. rng: decoder dropout key (None: deterministic). Returns
        {"online1", "online2", "teacher1", "teacher2": network outputs (teacher stop-gradient),
         "pred1", "pred2": {"z" [B, D], "obj" [B, Q, D]} online predictions}. Mutates the BN
        statistics and `proto` of both networks (each network twice, view 1 first) and the
        predictors' BN statistics (view 1 first).
        """
        keys = list(jax.random.split(rng, 4)) if rng is not None else [None] * 4
        out = {
            "online1": self.online(view1, train=True, rng=keys[0]),
            "online2": self.online(view2, train=True, rng=keys[1]),
        }
        for i, view in ((1, view1), (2, view2)):
            teacher = self.teacher(view, train=True, rng=keys[1 + i])
            out[f"teacher{i}"] = jax.lax.stop_gradient(teacher)
        for i in (1, 2):
            o = out[f"online{i}"]
            z = self.predictor(o["z_g"][:, None], True)[:, 0]
            out[f"pred{i}"] = {"z": z, "obj": self.predictor_obj(o["obj_val"], True)}
        return out

    def embed(self, images: jax.Array) -> jax.Array:
        """Inference embedding: the online backbone's spatially averaged layer4 map [B, C]."""
        maps = self.online.backbone(images, train=False)["layer4"]
        return maps.astype(jnp.float32).mean(axis=(1, 2))
