"""Naive Faceptor: the shared FaRL encoder with one task-specific head per task type — the
original's baseline for Faceptor's shared decoder. A task's head follows its interpreter kind
(`HeadSpec.kind`, set by its task type):

- feature (recognition): `RecognitionHead` on layer 11 (the same head as Faceptor's `feature_v2`);
- value (age / attributes / expression): `SwinFaceHead` (`channel_attention.py`) on layers
  (5, 7, 9, 11), one Linear per task;
- map (parsing / landmarks): feature pyramid + `UPerHead` on layers (3, 5, 7, 11), one classifier
  over all of the type's tasks' outputs, sliced per task, then the output modules.
Heads are keyed by task type (`heads[type]`); the encoder runs once per input-size group.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.model.channel_attention import SwinFaceHead
from faceptor_jax.model.head_spec import (
    HeadSpec,
    check_inputs,
    shared_inputs,
    size_groups,
    specs_from_dicts,
)
from faceptor_jax.model.interpreters import RecognitionHead, output_module
from faceptor_jax.model.uper_head import UPerHead
from faceptor_jax.model.vit import ViTConfig, ViTEncoder


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
            elif s.kind == "value":
                heads[s.type] = SwinFaceHead(
                    width, cfg.swin_dim, same, drop=cfg.swin_dropout, dtype=dtype, rngs=rngs
                )
            else:  # "map" (HeadSpec checks the kind)
                heads[s.type] = UPerHead(
                    width,
                    cfg.uper_channels,
                    sum(same.values()),
                    dropout_rate=cfg.uper_dropout,
                    dtype=dtype,
                    rngs=rngs,
                )
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
        outputs = {}
        for g, (size, group) in enumerate(size_groups(self.cfg.tasks, images)):
            key = jax.random.fold_in(rng, g) if rng is not None else None
            x = jnp.concatenate([images[s.name] for s in group], axis=0)
            tokens = self.encoder(x, train=train, rng=key)
            sizes = [images[s.name].shape[0] for s in group]
            outputs.update(self._heads(group, sizes, tokens, size, train, key))
        return outputs

    def shared(
        self, inputs: Mapping[str, jax.Array], reads: Mapping[str, Sequence[str]]
    ) -> dict[str, dict[str, jax.Array]]:
        """Inference with every input encoded once, as `Faceptor.shared`."""
        stand_ins = shared_inputs(self.cfg.tasks, inputs, reads)
        tokens = {k: self.encoder(x) for k, x in inputs.items()}
        outputs = {}
        for size, group in size_groups(self.cfg.tasks, stand_ins):
            t = jnp.concatenate([tokens[k] for s in group for k in reads[s.name]], axis=1)
            sizes = [stand_ins[s.name].shape[0] for s in group]
            outputs.update(self._heads(group, sizes, t, size, False, None))
        return outputs

    def _heads(self, group, sizes, tokens, size, train, key) -> dict[str, dict[str, jax.Array]]:
        """One size group's outputs from its images' tokens [L, B, 1 + N, D] (group order)."""
        cfg, outputs = self.cfg, {}
        grid = self.encoder.grid_size(*size)
        maps = tokens[:, :, 1:].reshape(*tokens.shape[:2], *grid, -1)  # [L, B, S, S, D]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        # Heads run per task: in training each task's batch statistics are its own.
        for i, (s, start, n) in enumerate(zip(group, starts, sizes, strict=True)):
            tkey = jax.random.fold_in(key, 1000 + i) if key is not None else None
            sel = maps[:, start : start + n]  # [L, n, S, S, D]
            head = self.heads[s.type]
            if s.kind == "feature":
                t = tokens[cfg.recognition_level, start : start + n, 1:]
                outputs[s.name] = {"embedding": head(t, train)}
            elif s.kind == "value":
                outputs[s.name] = {
                    "logits": head([sel[lv] for lv in cfg.swin_levels], s.name, train, tkey)
                }
            else:
                logits = head([sel[lv] for lv in cfg.uper_levels], train, tkey)
                lo, hi = self._uper_range(s)
                outputs[s.name] = output_module(s.output, logits[..., lo:hi], size)
        return outputs
