"""SwinFace's Swin-T trunk and recognition head (PyTorch `backbones/swin.py` keys) -> our params.

Trunk keys (`SwinTransformer` with `layers.{stage}.blocks.{block}`) map onto
`faceptor_jax.model.swin.SwinTransformer`; the final `norm` + `feature` MLP (Linear-BN-Linear-BN)
map onto `interpreters.RecognitionHead` (its `norm` is Swin's final LayerNorm). The original's
constant buffers (relative position index, shift masks, BN step counters) and its never-called
`head` Linear are dropped deliberately.
"""

import re

import numpy as np
from flax import nnx

from convert.mapping import Rule, apply_rules, flatten_paths, unflatten_paths
from convert.torch_reader import CheckpointError, load_torch_file, state_dict_from
from faceptor_jax.model.swin import SwinConfig
from faceptor_jax.model.swinface import HEADS, SwinFace, SwinFaceConfig

DROPPED = (
    r".*\.relative_position_index",  # constant, recomputed from the window size
    r".*\.attn_mask",  # constant, recomputed from the grid, window and shift
    r".*\.num_batches_tracked",  # BN step counter (momentum is fixed)
    r"(backbone\.)?head\.(weight|bias)",  # the original builds it and never calls it
)


def _linear_t(w: np.ndarray) -> np.ndarray:  # PyTorch Linear [out, in] -> [in, out]
    return w.T


def _conv_hwio(w: np.ndarray) -> np.ndarray:  # PyTorch Conv2d [O, I, kh, kw] -> [kh, kw, I, O]
    return w.transpose(2, 3, 1, 0)


def trunk_rules(cfg: SwinConfig, src: str = "", dst: str = "") -> list[Rule]:
    """Rules for every trunk key under the regex prefix `src`, onto paths under `dst`."""
    out = [
        Rule(src + r"patch_embed\.proj\.weight", dst + "patch_embed", _conv_hwio),
        Rule(src + r"patch_embed\.proj\.bias", dst + "patch_embed_bias"),
        Rule(src + r"patch_embed\.norm\.weight", dst + "patch_norm.scale"),
        Rule(src + r"patch_embed\.norm\.bias", dst + "patch_norm.bias"),
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
            a, t = src + rf"layers\.{s}\.blocks\.{b}\.", f"{dst}stages.{s}.blocks.{b}."
            out += [
                Rule(a + r"norm1\.weight", t + "norm1.scale"),
                Rule(a + r"norm1\.bias", t + "norm1.bias"),
                Rule(a + r"attn\.qkv\.weight", t + "attn.qkv", qkv_w),
                Rule(a + r"attn\.qkv\.bias", t + "attn.qkv_bias", qkv_b),
                Rule(a + r"attn\.proj\.weight", t + "attn.proj", proj_w),
                Rule(a + r"attn\.proj\.bias", t + "attn.proj_bias"),
                Rule(a + r"attn\.relative_position_bias_table", t + "attn.relative_position_bias"),
                Rule(a + r"norm2\.weight", t + "norm2.scale"),
                Rule(a + r"norm2\.bias", t + "norm2.bias"),
                Rule(a + r"mlp\.fc1\.weight", t + "mlp.fc1", _linear_t),
                Rule(a + r"mlp\.fc1\.bias", t + "mlp.fc1_bias"),
                Rule(a + r"mlp\.fc2\.weight", t + "mlp.fc2", _linear_t),
                Rule(a + r"mlp\.fc2\.bias", t + "mlp.fc2_bias"),
            ]
        if s + 1 < len(cfg.depths):
            a, t = src + rf"layers\.{s}\.downsample\.", f"{dst}stages.{s}.downsample."
            out += [
                Rule(a + r"norm\.weight", t + "norm.scale"),
                Rule(a + r"norm\.bias", t + "norm.bias"),
                Rule(a + r"reduction\.weight", t + "reduction.kernel", _linear_t),
            ]
    return out


def recognition_rules(src: str = "", dst: str = "") -> list[Rule]:
    """Swin's final `norm` + `feature` (Linear, BN1d, Linear, BN1d) -> a RecognitionHead."""
    out = [
        Rule(src + r"norm\.weight", dst + "norm.scale"),
        Rule(src + r"norm\.bias", dst + "norm.bias"),
        Rule(src + r"feature\.0\.weight", dst + "fc_1.kernel", _linear_t),
        Rule(src + r"feature\.2\.weight", dst + "fc_2.kernel", _linear_t),
    ]
    for i, bn in (("1", "bn_1"), ("3", "bn_2")):
        for theirs, ours in (("weight", "scale"), ("bias", "bias")):
            out.append(Rule(src + rf"feature\.{i}\.{theirs}", f"{dst}{bn}.{ours}"))
        for theirs, ours in (("running_mean", "mean"), ("running_var", "var")):
            out.append(Rule(src + rf"feature\.{i}\.{theirs}", f"{dst}{bn}.{ours}"))
    return out


def swinface_rules(cfg: SwinFaceConfig) -> list[Rule]:
    """Every key of the four SwinFace state dicts, prefixed `backbone.`, `fam.`, `tss.`, `om.`
    (the released container's `state_dict_<part>`), onto a `SwinFace` model."""
    out = trunk_rules(cfg.encoder, r"backbone\.", "trunk.") + recognition_rules(
        r"backbone\.", "recognition."
    )
    fam, tss = r"fam\.nets\.(?P<layer>\d+)\.", r"tss\.nets\.(?P<layer>\d+)\.feature\."
    for j in range(len(cfg.level_out)):
        out.append(
            Rule(fam + rf"conv\.convs\.{j}\.weight", f"branches.convs.{j}.kernel", _conv_hwio)
        )
    for theirs, ours in (("1", "mlp_1"), ("3", "mlp_2")):
        gate = fam + rf"channel_attention\.mlp\.{theirs}\."
        out.append(Rule(gate + "weight", f"branches.channel_attention.{ours}.kernel", _linear_t))
        out.append(Rule(gate + "bias", f"branches.channel_attention.{ours}.bias"))
    for theirs, ours in (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
                         ("running_var", "var")):  # fmt: skip
        out.append(Rule(fam + rf"norm\.{theirs}", f"branches.norm.{ours}"))
    for theirs, ours in (("0", "subnet_1"), ("3", "subnet_2")):
        out.append(Rule(tss + rf"{theirs}\.weight", f"branches.{ours}.kernel", _linear_t))
        out.append(Rule(tss + rf"{theirs}\.bias", f"branches.{ours}.bias"))
    for k in range(len(HEADS)):
        out.append(Rule(rf"om\.output_fcs\.{k}\.weight", f"heads.{k}.kernel", _linear_t))
        out.append(Rule(rf"om\.output_fcs\.{k}\.bias", f"heads.{k}.bias"))
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


def convert_swinface(state: dict[str, np.ndarray], source: str) -> tuple[SwinFaceConfig, dict]:
    """SwinFace state (`read_swinface`) -> (config, pure param dict of `SwinFace`)."""
    cfg = infer_swinface_config(state, source)
    abstract = nnx.eval_shape(lambda: SwinFace(cfg, rngs=nnx.Rngs(0)))
    skeleton = flatten_paths(nnx.to_pure_dict(nnx.state(abstract)))
    flat = apply_rules(state, swinface_rules(cfg), DROPPED, skeleton, source)
    dtypes = {p: s.dtype for p, s in skeleton.items()}
    return cfg, unflatten_paths({p: np.asarray(v, dtype=dtypes[p]) for p, v in flat.items()})
