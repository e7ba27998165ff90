"""SwinFace's Swin-T trunk and recognition head (PyTorch `backbones/swin.py` keys) -> our params.

Trunk keys (`SwinTransformer` with `layers.{stage}.blocks.{block}`) map onto
`faceptor_jax.model.swin.SwinTransformer`; the final `norm` + `feature` MLP (Linear-BN-Linear-BN)
map onto `interpreters.RecognitionHead` (its `norm` is Swin's final LayerNorm). The original's
constant buffers (relative position index, shift masks, BN step counters) and its never-called
`head` Linear are dropped deliberately.
"""

import numpy as np

from convert.mapping import Rule
from faceptor_jax.model.swin import SwinConfig
from faceptor_jax.model.swinface import HEADS, SwinFaceConfig

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
