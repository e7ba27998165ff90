"""SwinFace's Swin-T trunk and recognition head (PyTorch `backbones/swin.py` keys) -> our params.

Trunk keys (`SwinTransformer` with `layers.{stage}.blocks.{block}`) map onto
`faceptor_jax.model.swin.SwinTransformer`; the final `norm` + `feature` MLP (Linear-BN-Linear-BN)
map onto `interpreters.RecognitionHead` (its `norm` is Swin's final LayerNorm). The original's
constant buffers (relative position index, shift masks, BN step counters) and its never-called
`head` Linear are dropped deliberately.
"""

import dataclasses
import re

import numpy as np
from flax import nnx

from convert.mapping import (
    Rule,
    apply_rules,
    bn_rules,
    conv_hwio,
    flatten_paths,
    linear_rules,
    mlp_rules,
    norm_rules,
    unflatten_paths,
)
from convert.torch_reader import CheckpointError, load_torch_file, state_dict_from
from faceptor_jax import tasks as task_table
from faceptor_jax.model.swin import SwinConfig
from faceptor_jax.model.swinface import HEADS, SwinFace, SwinFaceConfig

DROPPED = (
    r".*\.relative_position_index",  # constant, recomputed from the window size
    r".*\.attn_mask",  # constant, recomputed from the grid, window and shift
    r".*\.num_batches_tracked",  # BN step counter (momentum is fixed)
    r"(backbone\.)?head\.(weight|bias)",  # the original builds it and never calls it
)


def trunk_rules(cfg: SwinConfig, src: str = "", dst: str = "") -> list[Rule]:
    """Rules for every trunk key under the regex prefix `src`, onto paths under `dst`."""
    out = [
        Rule(src + r"patch_embed\.proj\.weight", dst + "patch_embed", conv_hwio),
        Rule(src + r"patch_embed\.proj\.bias", dst + "patch_embed_bias"),
        *norm_rules(src + r"patch_embed\.norm\.", dst + "patch_norm"),
    ]
    for s, (depth, heads, dim) in enumerate(zip(cfg.depths, cfg.heads, cfg.widths(), strict=True)):
        k = dim // heads

        def qkv_w(w, h=heads, k=k):  # [3C, C] rows q | k | v, heads inside -> [C, 3, H, K]
            return w.reshape(3, h, k, w.shape[-1]).transpose(3, 0, 1, 2)

        def qkv_b(b, h=heads, k=k):
            return b.reshape(3, h, k)

        def proj_w(w, h=heads, k=k):  # [C_out, C_in] -> [H, K, C_out]
            return w.T.reshape(h, k, w.shape[0])

        for b in range(depth):
            a, o = src + rf"layers\.{s}\.blocks\.{b}\.", f"{dst}stages.{s}.blocks.{b}."
            out += [
                *norm_rules(a + r"norm1\.", o + "norm1"),
                Rule(a + r"attn\.qkv\.weight", o + "attn.qkv", qkv_w),
                Rule(a + r"attn\.qkv\.bias", o + "attn.qkv_bias", qkv_b),
                Rule(a + r"attn\.proj\.weight", o + "attn.proj", proj_w),
                Rule(a + r"attn\.proj\.bias", o + "attn.proj_bias"),
                Rule(a + r"attn\.relative_position_bias_table", o + "attn.relative_position_bias"),
                *norm_rules(a + r"norm2\.", o + "norm2"),
                *mlp_rules(a + r"mlp\.fc1\.", a + r"mlp\.fc2\.", o + "mlp"),
            ]
        if s + 1 < len(cfg.depths):
            a, o = src + rf"layers\.{s}\.downsample\.", f"{dst}stages.{s}.downsample."
            out += norm_rules(a + r"norm\.", o + "norm")
            out += linear_rules(a + r"reduction\.", o + "reduction", bias=False)
    return out


def recognition_rules(src: str = "", dst: str = "") -> list[Rule]:
    """Swin's final `norm` + `feature` (Linear, BN1d, Linear, BN1d) -> a RecognitionHead."""
    return [
        *norm_rules(src + r"norm\.", dst + "norm"),
        *linear_rules(src + r"feature\.0\.", dst + "fc_1", bias=False),
        *bn_rules(src + r"feature\.1\.", dst + "bn_1"),
        *linear_rules(src + r"feature\.2\.", dst + "fc_2", bias=False),
        *bn_rules(src + r"feature\.3\.", dst + "bn_2"),
    ]


def swinface_rules(cfg: SwinFaceConfig) -> list[Rule]:
    """Every key of the four SwinFace state dicts, prefixed `backbone.`, `fam.`, `tss.`, `om.`
    (the released container's `state_dict_<part>`), onto a `SwinFace` model; `fam.nets.<i>` and
    `tss.nets.<i>` fill slice i of the stacked branches."""
    out = trunk_rules(cfg.encoder, r"backbone\.", "trunk.")
    out += recognition_rules(r"backbone\.", "recognition.")
    fam, tss = r"fam\.nets\.(?P<layer>\d+)\.", r"tss\.nets\.(?P<layer>\d+)\.feature\."
    for j in range(len(cfg.level_out)):
        out.append(
            Rule(fam + rf"conv\.convs\.{j}\.weight", f"branches.convs.{j}.kernel", conv_hwio)
        )
    out += linear_rules(fam + r"channel_attention\.mlp\.1\.", "branches.channel_attention.mlp_1")
    out += linear_rules(fam + r"channel_attention\.mlp\.3\.", "branches.channel_attention.mlp_2")
    out += bn_rules(fam + r"norm\.", "branches.norm")
    out += linear_rules(tss + r"0\.", "branches.subnet_1")
    out += linear_rules(tss + r"3\.", "branches.subnet_2")
    for k in range(len(HEADS)):
        out += linear_rules(rf"om\.output_fcs\.{k}\.", f"heads.{k}")
    return out


PARTS = ("backbone", "fam", "tss", "om")  # the released container's `state_dict_<part>`s


def read_swinface(path: str) -> dict[str, np.ndarray]:
    """A SwinFace training/release checkpoint -> one state dict with keys `<part>.<key>`.

    The optimizer, LR-scheduler and PartialFC (`state_dict_softmax_fc`) states are not read: the
    class-centre shard is one rank's sample buffer, not a classifier for this model."""
    container = load_torch_file(path)
    missing = [
        p for p in PARTS if not isinstance(container, dict) or f"state_dict_{p}" not in container
    ]
    if missing:
        found = (
            ", ".join(sorted(container))
            if isinstance(container, dict)
            else type(container).__name__
        )
        raise CheckpointError(
            f"{path}: not a SwinFace checkpoint: no "
            + ", ".join(f"state_dict_{p}" for p in missing)
            + f" (found: {found})"
        )
    state = {}
    for part in PARTS:
        for k, v in state_dict_from(container[f"state_dict_{part}"], path, None).items():
            state[f"{part}.{k}"] = v
    return state


def infer_swinface_config(state: dict[str, np.ndarray], source: str) -> SwinFaceConfig:
    """Every dimension from tensor shapes (heads from the bias tables, the input size from the
    first shifted block's mask)."""

    def need(key):
        if key not in state:
            raise CheckpointError(f"{source}: not a SwinFace checkpoint: missing {key}")
        return state[key]

    w = need("backbone.patch_embed.proj.weight")  # [D, 3, p, p]
    embed, patch = int(w.shape[0]), int(w.shape[-1])
    stages = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"backbone\.layers\.(\d+)\.", k))}
    )
    depths, heads = [], []
    for s in stages:
        blocks = {
            int(m.group(1))
            for k in state
            if (m := re.match(rf"backbone\.layers\.{s}\.blocks\.(\d+)\.", k))
        }
        depths.append(max(blocks) + 1)
        heads.append(
            int(need(f"backbone.layers.{s}.blocks.0.attn.relative_position_bias_table").shape[1])
        )
    rows = need("backbone.layers.0.blocks.0.attn.relative_position_bias_table").shape[0]
    window = (round(rows**0.5) + 1) // 2
    mask = state.get("backbone.layers.0.blocks.1.attn_mask")
    grid = window * round(mask.shape[0] ** 0.5) if mask is not None else 112 // patch
    convs = sorted(k for k in state if re.fullmatch(r"fam\.nets\.0\.conv\.convs\.\d+\.weight", k))
    level_out = tuple(int(state[k].shape[0]) for k in convs)
    return SwinFaceConfig(
        encoder=SwinConfig(image_size=grid * patch, patch=patch, embed_dim=embed,
                           depths=tuple(depths), heads=tuple(heads), window=window),
        embed_dim=int(need("backbone.feature.2.weight").shape[0]),
        feature_dim=int(need("fam.nets.0.norm.weight").shape[0]),
        level_out=level_out,
    )  # fmt: skip


def with_tasks(cfg: SwinFaceConfig) -> SwinFaceConfig:
    """`cfg` serving `tasks.SWINFACE` (what its outputs are) at its input size: the model
    directory's tasks for predict and eval."""
    size = cfg.encoder.image_size
    specs = task_table.head_specs(task_table.SWINFACE)
    return dataclasses.replace(
        cfg, tasks=tuple(dataclasses.replace(s, input_size=size) for s in specs)
    )


def convert_swinface(state: dict[str, np.ndarray], source: str) -> tuple[SwinFaceConfig, dict]:
    """SwinFace state (`read_swinface`) -> (config, pure param dict of `SwinFace`)."""
    cfg = infer_swinface_config(state, source)
    abstract = nnx.eval_shape(lambda: SwinFace(cfg, rngs=nnx.Rngs(0)))
    skeleton = flatten_paths(nnx.to_pure_dict(nnx.state(abstract)))
    flat = apply_rules(state, swinface_rules(cfg), DROPPED, skeleton, source)
    dtypes = {p: s.dtype for p, s in skeleton.items()}
    return cfg, unflatten_paths({p: np.asarray(v, dtype=dtypes[p]) for p, v in flat.items()})
