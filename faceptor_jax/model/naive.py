"""Naive Faceptor: the shared FaRL encoder with one task-specific head per task type
— the paper's baseline for Faceptor's shared decoder.

- recognition: `RecognitionHead` on layer 11 (the same head as Faceptor's `feature_v2`);
- age / attributes / expression: `SwinFaceHead` on layers (5, 7, 9, 11): four 3×3 convs
  (D -> out/4, no bias) concatenated, CBAM channel gate, ReLU, global max-pool, BN (eps 2e-5),
  two Linear+ReLU+Dropout(0.5), then one Linear per task (`fcs[task]`);
- parsing / landmarks: feature pyramid + `UPerHead` on layers (3, 5, 7, 11), one classifier
  over all of the type's tasks' outputs, sliced per task, then the output modules.
Heads are keyed by task type (`heads[type]`); the encoder runs once per input-size group.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, Linear, dropout, param
from faceptor_jax.model.heads import HeadSpec, check_inputs, size_groups, specs_from_dicts
from faceptor_jax.model.interpreters import RecognitionHead, output_module
from faceptor_jax.model.uper_head import UPerHead
from faceptor_jax.model.vit import ViTConfig, ViTEncoder

SWIN_TYPES = ("age", "attributes", "expression")
UPER_TYPES = ("parsing", "landmarks")


@dataclasses.dataclass(frozen=True)
class NaiveConfig:
    encoder: ViTConfig = dataclasses.field(default_factory=ViTConfig)
    tasks: tuple[HeadSpec, ...] = ()
    embed_dim: int = 512
    recognition_level: int = 11
    swin_levels: tuple[int, ...] = (5, 7, 9, 11)
    swin_dim: int = 512
    swin_dropout: float = 0.5
    uper_levels: tuple[int, ...] = (3, 5, 7, 11)
    uper_channels: int = 512
    uper_dropout: float = 0.1
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NaiveConfig":
        d = dict(d)
        d["encoder"] = ViTConfig(**d["encoder"])
        d["tasks"] = specs_from_dicts(d["tasks"])
        for k in ("swin_levels", "uper_levels"):
            d[k] = tuple(d[k])
        return cls(**d)


class ChannelGate(nnx.Module):
    """CBAM channel attention: x·σ(MLP(avgpool x) + MLP(maxpool x)), shared MLP C -> C/16 -> C."""

    def __init__(self, dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.mlp_1 = Linear(dim, dim // 16, axes=("embed", "mlp"), dtype=dtype, rngs=rngs)
        self.mlp_2 = Linear(dim // 16, dim, axes=("mlp", "embed"), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C]."""
        mlp = lambda v: self.mlp_2(jax.nn.relu(self.mlp_1(v)))
        gate = mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2)))
        return x * jax.nn.sigmoid(gate)[:, None, None]


class SwinFaceHead(nnx.Module):
    def __init__(
        self,
        width: int,
        dim: int,
        outputs: dict[str, int],
        *,
        levels: int = 4,
        drop: float = 0.5,
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        d = jnp.dtype(dtype)
        self.drop, self.dtype = drop, d
        init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(1, 2, 3)
        )
        # one 3×3 conv (no bias) per level, stacked: [levels, 3, 3, D, dim/levels]
        self.conv = param(
            rngs, init, (levels, 3, 3, width, dim // levels), ("layers", None, None, "embed", "mlp")
        )
        self.channel_attention = ChannelGate(dim, dtype=d, rngs=rngs)
        self.norm = BatchNorm(dim, eps=2e-5, rngs=rngs)
        self.feature_1 = Linear(dim, dim, axes=("embed", "mlp"), dtype=d, rngs=rngs)
        self.feature_2 = Linear(dim, dim, axes=("mlp", "embed"), dtype=d, rngs=rngs)
        self.fcs = nnx.Dict(
            {
                t: Linear(dim, n, axes=("embed", "classes"), dtype=d, rngs=rngs)
                for t, n in outputs.items()
            }
        )

    def __call__(
        self, feats: list[jax.Array], task: str, train: bool = False, rng: jax.Array | None = None
    ) -> jax.Array:
        """feats: the selected encoder maps [B, S, S, D] -> logits [B, n]."""
        convs = [
            jax.lax.conv_general_dilated(
                f.astype(self.dtype),
                self.conv[...][i].astype(self.dtype),
                (1, 1),
                ((1, 1), (1, 1)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32,
            ).astype(self.dtype)
            for i, f in enumerate(feats)
        ]
        x = jax.nn.relu(self.channel_attention(jnp.concatenate(convs, axis=-1)))
        x = self.norm(x.max(axis=(1, 2)), train)
        keys = jax.random.split(rng, 2) if (train and rng is not None) else (None, None)
        x = dropout(jax.nn.relu(self.feature_1(x)), self.drop, keys[0])
        x = dropout(jax.nn.relu(self.feature_2(x)), self.drop, keys[1])
        return self.fcs[task](x).astype(jnp.float32)


class NaiveFaceptor(nnx.Module):
    def __init__(self, cfg: NaiveConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.encoder = ViTEncoder(cfg.encoder, rngs=rngs)
        width, dtype = cfg.encoder.width, cfg.dtype
        heads: dict[str, nnx.Module] = {}
        for s in cfg.tasks:
            if s.type in heads:
                continue
            same = {t.name: t.outputs for t in cfg.tasks if t.type == s.type}
            if s.kind == "feature":
                heads[s.type] = RecognitionHead(width, cfg.embed_dim, dtype=dtype, rngs=rngs)
            elif s.type in SWIN_TYPES:
                heads[s.type] = SwinFaceHead(
                    width, cfg.swin_dim, same, drop=cfg.swin_dropout, dtype=dtype, rngs=rngs
                )
            elif s.type in UPER_TYPES:
                heads[s.type] = UPerHead(
                    width,
                    cfg.uper_channels,
                    sum(same.values()),
                    dropout_rate=cfg.uper_dropout,
                    dtype=dtype,
                    rngs=rngs,
                )
            else:
                raise ValueError(f"task {s.name}: Naive Faceptor has no head for type {s.type!r}")
        self.heads = nnx.Dict(heads)

    def _uper_range(self, spec: HeadSpec) -> tuple[int, int]:
        start = 0
        for t in self.cfg.tasks:
            if t.name == spec.name:
                return start, start + t.outputs
            if t.type == spec.type:
                start += t.outputs
        raise KeyError(spec.name)

    def __call__(
        self,
        images: Mapping[str, jax.Array],
        *,
        train: bool = False,
        rng: jax.Array | None = None,
    ) -> dict[str, dict[str, jax.Array]]:
        """images: {task: [B, H, W, 3]} -> {task: raw outputs}, as `Faceptor.__call__`."""
        check_inputs(self.cfg.tasks, images)
        cfg, outputs = self.cfg, {}
        for g, (size, group) in enumerate(size_groups(cfg.tasks, images)):
            key = jax.random.fold_in(rng, g) if rng is not None else None
            x = jnp.concatenate([images[s.name] for s in group], axis=0)
            tokens = self.encoder(x, train=train, rng=key)
            grid = self.encoder.grid_size(*size)
            maps = tokens[:, :, 1:].reshape(*tokens.shape[:2], *grid, -1)  # [L, B, S, S, D]
            sizes = [images[s.name].shape[0] for s in group]
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            # Heads run per task: in training each task's batch statistics are its own.
            for i, (s, start, n) in enumerate(zip(group, starts, sizes, strict=True)):
                tkey = jax.random.fold_in(key, 1000 + i) if key is not None else None
                sel = maps[:, start : start + n]  # [L, n, S, S, D]
                head = self.heads[s.type]
                if s.kind == "feature":
                    t = tokens[cfg.recognition_level, start : start + n, 1:]
                    outputs[s.name] = {"embedding": head(t, train)}
                elif s.type in SWIN_TYPES:
                    outputs[s.name] = {
                        "logits": head([sel[lv] for lv in cfg.swin_levels], s.name, train, tkey)
                    }
                else:
                    logits = head([sel[lv] for lv in cfg.uper_levels], train, tkey)
                    lo, hi = self._uper_range(s)
                    outputs[s.name] = output_module(s.output, logits[..., lo:hi], size)
        return outputs
