"""Faceptor: shared FaRL encoder + Layer-Attention memory + task-query decoder + interpreters.

`Faceptor(cfg)({task: images [B, H, W, 3]}) -> {task: raw outputs}`:
- the encoder runs once per input-size group (112-px tasks together, 512-px tasks together);
- recognition reads the last layer's tokens directly (no decoder);
- every other task runs the decoder with its own queries; tasks with the same interpreter and
  query count are decoded in one call, stacked along the batch (exactly equivalent: queries only
  attend among those of the same image);
- the map interpreter's pixel decoder runs once per size group on all map tasks' images.

Raw outputs per kind: feature {"embedding" [B, E]}; value {"logits" [B, Q]}; map with the parsing
output {"maps" [B, 4S, 4S, Q], "logits" [B, H, W, Q]}; map with the landmark output {"heatmap"
[B, 4S, 4S, K], "heatmap_acted", "landmarks" [B, K, 2] in [0, 1]}. Maps are channels-last.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.model.head_spec import (
    HeadSpec,
    buckets,
    check_inputs,
    shared_inputs,
    size_groups,
    specs_from_dicts,
)
from faceptor_jax.model.interpreters import (
    MapInterpreter,
    RecognitionHead,
    ValueInterpreter,
    output_module,
)
from faceptor_jax.model.layer_attention import LayerAttention
from faceptor_jax.model.transformer_decoder import DecoderConfig, TaskQueryDecoder
from faceptor_jax.model.vit import ViTConfig, ViTEncoder


@dataclasses.dataclass(frozen=True)
class FaceptorConfig:
    """Stage 1: levels (11,), no new_levels. Stage 2 (Layer-Attention): new_levels (1,3,5,7,9)."""

    encoder: ViTConfig = dataclasses.field(default_factory=ViTConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    tasks: tuple[HeadSpec, ...] = ()
    levels: tuple[int, ...] = (11,)
    new_levels: tuple[int, ...] = ()
    embed_dim: int = 512  # recognition embedding

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FaceptorConfig":
        return cls(
            encoder=ViTConfig(**d["encoder"]),
            decoder=DecoderConfig(**d["decoder"]),
            tasks=specs_from_dicts(d["tasks"]),
            levels=tuple(d["levels"]),
            new_levels=tuple(d["new_levels"]),
            embed_dim=int(d["embed_dim"]),
        )


def split_batch(x: jax.Array, sizes: list[int]) -> list[jax.Array]:
    out, start = [], 0
    for n in sizes:
        out.append(x[start : start + n])
        start += n
    return out


class Faceptor(nnx.Module):
    def __init__(self, cfg: FaceptorConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        kinds = {s.kind for s in cfg.tasks}
        hid, dtype = cfg.decoder.hidden, cfg.decoder.dtype
        self.encoder = ViTEncoder(cfg.encoder, rngs=rngs)
        self.recognition = (
            RecognitionHead(cfg.encoder.width, cfg.embed_dim, dtype=cfg.encoder.dtype, rngs=rngs)
            if "feature" in kinds
            else None
        )
        queries = {s.name: s.queries for s in cfg.tasks if s.kind != "feature"}
        if queries:
            self.layer_attention = LayerAttention(
                cfg.encoder.width, hid, cfg.levels, cfg.new_levels, dtype=dtype, rngs=rngs
            )
            self.decoder = TaskQueryDecoder(cfg.decoder, queries, rngs=rngs)
        else:
            self.layer_attention = self.decoder = None
        self.value = ValueInterpreter(hid, dtype=dtype, rngs=rngs) if "value" in kinds else None
        self.map = MapInterpreter(hid, dtype=dtype, rngs=rngs) if "map" in kinds else None

    def __call__(
        self,
        images: Mapping[str, jax.Array],
        *,
        train: bool = False,
        rng: jax.Array | None = None,
    ) -> dict[str, dict[str, jax.Array]]:
        """images: {task: [B, H, W, 3] normalised} -> {task: raw outputs} (see module doc)."""
        check_inputs(self.cfg.tasks, images)
        outputs: dict[str, dict[str, jax.Array]] = {}
        for g, (size, group) in enumerate(size_groups(self.cfg.tasks, images)):
            key = jax.random.fold_in(rng, g) if rng is not None else None
            x = jnp.concatenate([images[s.name] for s in group], axis=0)
            tokens = self.encoder(x, train=train, rng=key)  # [L, B, 1 + N, D]
            sizes = [images[s.name].shape[0] for s in group]
            outputs.update(self._heads(group, sizes, tokens, size, train))
        return outputs

    def shared(
        self, inputs: Mapping[str, jax.Array], reads: Mapping[str, Sequence[str]]
    ) -> dict[str, dict[str, jax.Array]]:
        """Inference with every input image encoded once: `inputs` {input: [B, H, W, 3]},
        `reads` {task: the inputs whose images, concatenated, are the task's} -> as
        `__call__({task: concatenated images})` (eval mode: the encoder is per image)."""
        stand_ins = shared_inputs(self.cfg.tasks, inputs, reads)
        tokens = {k: self.encoder(x) for k, x in inputs.items()}  # [L, B, 1 + N, D] each
        outputs: dict[str, dict[str, jax.Array]] = {}
        for size, group in size_groups(self.cfg.tasks, stand_ins):
            t = jnp.concatenate([tokens[k] for s in group for k in reads[s.name]], axis=1)
            sizes = [stand_ins[s.name].shape[0] for s in group]
            outputs.update(self._heads(group, sizes, t, size, False))
        return outputs

    def _heads(
        self,
        group: list[HeadSpec],
        sizes: list[int],
        tokens: jax.Array,
        size: tuple[int, int],
        train: bool,
    ) -> dict[str, dict[str, jax.Array]]:
        """One size group's outputs from its images' tokens [L, B, 1 + N, D] (group order)."""
        outputs: dict[str, dict[str, jax.Array]] = {}
        grid = self.encoder.grid_size(*size)
        patches = tokens[:, :, 1:]  # [L, B, N, D]
        n_feat = sum(n for s, n in zip(group, sizes, strict=True) if s.kind == "feature")
        if n_feat:
            emb = self.recognition(patches[-1, :n_feat], train)
            feats = [s for s in group if s.kind == "feature"]
            for s, e in zip(feats, split_batch(emb, sizes[: len(feats)]), strict=True):
                outputs[s.name] = {"embedding": e}
        if n_feat < tokens.shape[1]:
            count = dict(zip([s.name for s in group], sizes, strict=True))
            outputs.update(self._decode(group, count, patches[:, n_feat:], grid, size))
        return outputs

    def _decode(
        self,
        group: list[HeadSpec],
        count: dict[str, int],
        patches: jax.Array,
        grid: tuple[int, int],
        size: tuple[int, int],
    ) -> dict[str, dict[str, jax.Array]]:
        """Decoder tasks of one size group; `patches` holds their images in group order."""
        anchor = self.decoder.anchor_pos(grid)
        memory, pos, source = self.layer_attention(patches, anchor)
        tasks = [s for s in group if s.kind != "feature"]
        n_value = sum(count[s.name] for s in tasks if s.kind == "value")
        mask_feats = self.map.features(source[n_value:], grid) if n_value < len(source) else None
        outputs: dict[str, dict[str, jax.Array]] = {}
        start = 0
        for bucket in buckets(group):
            sizes = [count[s.name] for s in bucket]
            end = start + sum(sizes)
            qs = [self.decoder.task_queries(s.name, count[s.name]) for s in bucket]
            q = jnp.concatenate([a for a, _ in qs], axis=0)
            qpos = jnp.concatenate([b for _, b in qs], axis=0)
            out = self.decoder(q, qpos, memory[start:end], pos)  # [Bb, Q, C]
            if bucket[0].kind == "value":
                parts = split_batch(self.value(out), sizes)
                outputs.update({s.name: {"logits": p} for s, p in zip(bucket, parts, strict=True)})
            else:
                maps = self.map(out, mask_feats[start - n_value : end - n_value])
                for s, m in zip(bucket, split_batch(maps, sizes), strict=True):
                    outputs[s.name] = output_module(s.output, m, size)
            start = end
        return outputs
