"""Faceptor / Naive Faceptor training checkpoints (`*.pth.tar`) -> `Faceptor` / `NaiveFaceptor`.

Source: `{'step', 'state_dict', 'optimizer'}` with a DDP state dict (every key `module.`-prefixed):
`module.backbone_module.visual.*` (FaRL encoder with the trained 32×32 positional grid),
`module.heads_module.*` (decoder + interpreters, or Naive's per-type heads) and
`module.losses_module.losses.recog_ms1mv3.classifier` (the CosFace weight: kept out of the model
params and returned separately; it belongs to the loss). Deliberately dropped: CLIP's unused
`proj`/`ln_post`, BatchNorm `num_batches_tracked`, and Norm2d's `.ln.` aliases (checked equal
to the tensors they alias). The optimizer state is ignored.

Dims are read from the tensors, the task set and level count are checked against the variant.
Head counts cannot be read (PyTorch packs q/k/v of all heads): encoder width // 64 and decoder
hidden // 32 by default (FaRL / Faceptor), overridable.
"""

import dataclasses
import re
from collections.abc import Callable

import numpy as np
from flax import nnx

from convert import farl
from convert.mapping import (
    ConversionError,
    Rule,
    apply_rules,
    bn_rules,
    conv_hwio,
    convt_hwio,
    flatten_paths,
    linear_rules,
    mha_rules,
    mlp_rules,
    norm_rules,
    proj_1x1,
    unflatten_paths,
)
from convert.torch_reader import CheckpointError
from faceptor_jax import tasks as task_table
from faceptor_jax.model import families
from faceptor_jax.model.faceptor import FaceptorConfig
from faceptor_jax.model.naive import NaiveConfig
from faceptor_jax.model.transformer_decoder import DecoderConfig

M = r"module\."
BACKBONE = M + r"backbone_module\.visual\."
HEADS = M + r"heads_module\."
DEC = HEADS + r"decoder\."
INTERP = HEADS + r"interpreters\."
CLASSIFIER = re.compile(M + r"losses_module\.losses\.(\w+)\.classifier")

DROPPED = (
    BACKBONE + r"proj",  # CLIP image projection: unused
    BACKBONE + r"ln_post\.(weight|bias)",  # CLIP's final LN: unused
    r".*\.num_batches_tracked",  # BN step counters: no effect in eval or on momentum updates
    r".*mask_map\.1\.ln\.(weight|bias)",  # Norm2d aliases of mask_map.1.{weight,bias}
    CLASSIFIER.pattern,  # CosFace weight: returned separately (see `split_losses`)
)


# --------------------------------------------------------------------------- shared heads
def recognition_rules(src: str, dst: str) -> list[Rule]:
    return [
        *norm_rules(src + r"norm\.", dst + ".norm"),
        *linear_rules(src + r"head\.0\.", dst + ".fc_1", bias=False),
        *bn_rules(src + r"head\.1\.", dst + ".bn_1"),
        *linear_rules(src + r"head\.2\.", dst + ".fc_2", bias=False),
        *bn_rules(src + r"head\.3\.", dst + ".bn_2"),
    ]


def encoder_rules(cfg) -> list[Rule]:
    return [
        Rule(r.source, "encoder." + r.target, r.transform)
        for r in farl.rules(cfg, prefix=BACKBONE, resize_pe=False)
    ]


# --------------------------------------------------------------------------- Faceptor
def faceptor_rules(cfg: FaceptorConfig) -> list[Rule]:
    h = cfg.decoder.heads
    layer = r"\.(?P<layer>\d+)\."
    rules = encoder_rules(cfg.encoder)
    for s in cfg.tasks:
        if s.kind == "feature":
            continue
        orig = task_table.get(s.name).original
        rules.append(Rule(DEC + rf"query_feat\.{orig}\.weight", f"decoder.query_feat.{s.name}"))
        rules.append(Rule(DEC + rf"query_embed\.{orig}\.weight", f"decoder.query_embed.{s.name}"))
    for src, dst in (("", "input_proj"), ("new_", "new_input_proj")):
        la = f"layer_attention.{dst}"
        rules += [
            Rule(DEC + src + r"level_embed\.weight", la + ".embed"),
            Rule(DEC + src + r"input_proj\.(?P<layer>\d+)\.weight", la + ".kernel", proj_1x1),
            Rule(DEC + src + r"input_proj\.(?P<layer>\d+)\.bias", la + ".bias"),
        ]
    cross, self_, ffn = (
        DEC + "transformer_cross_attention_layers" + layer,
        DEC + "transformer_self_attention_layers" + layer,
        DEC + "transformer_ffn_layers" + layer,
    )
    rules += mha_rules(cross + r"multihead_attn\.", "decoder.layers.cross_attn", h)
    rules += norm_rules(cross + r"norm\.", "decoder.layers.cross_norm")
    rules += mha_rules(self_ + r"self_attn\.", "decoder.layers.self_attn", h)
    rules += norm_rules(self_ + r"norm\.", "decoder.layers.self_norm")
    rules += [
        *mlp_rules(ffn + r"linear1\.", ffn + r"linear2\.", "decoder.layers.ffn"),
        *norm_rules(ffn + r"norm\.", "decoder.layers.ffn_norm"),
        *linear_rules(DEC + r"adapt_pos2d\.0\.", "decoder.adapt_1"),
        *linear_rules(DEC + r"adapt_pos2d\.2\.", "decoder.adapt_2"),
        *recognition_rules(INTERP + r"feature_v2\.", "recognition"),
        *linear_rules(INTERP + r"value\.fc\.", "value.fc"),
    ]
    mm, pd = INTERP + r"map_v2\.mask_map\.", "map.pixel_decoder"
    rules += [
        Rule(mm + r"0\.weight", pd + ".up_1.kernel", convt_hwio),
        Rule(mm + r"0\.bias", pd + ".up_1.bias"),
        *norm_rules(mm + r"1\.", pd + ".norm"),
        Rule(mm + r"3\.weight", pd + ".up_2.kernel", convt_hwio),
        Rule(mm + r"3\.bias", pd + ".up_2.bias"),
    ]
    for i in range(3):
        rules += linear_rules(
            INTERP + rf"map_v2\.mask_embed\.layers\.{i}\.", f"map.mask_embed_{i + 1}"
        )
    return rules


def _count(state: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def _check_tasks(found: set[str], variant_name: str, variant: "Variant", source: str) -> None:
    want = {task_table.get(n).original for n in variant.tasks}
    if found == want:
        return
    fits = [n for n, v in VARIANTS.items() if v.kind == variant.kind and v.tasks and
            {task_table.get(x).original for x in v.tasks} == found]  # fmt: skip
    hint = f"; it fits --variant {fits[0]}" if fits else ""
    raise ConversionError(
        source,
        [
            f"the checkpoint's tasks do not match --variant {variant_name}: "
            f"missing {sorted(want - found) or 'none'}, not in the variant "
            f"{sorted(found - want) or 'none'}{hint}"
        ],
    )


def infer_faceptor(
    state: dict, source: str, variant_name: str, heads: int | None, decoder_heads: int | None = None
) -> FaceptorConfig:
    variant = VARIANTS[variant_name]
    enc = farl.infer_config(state, source, heads, prefix="module.backbone_module.visual.")
    if "module.heads_module.decoder.level_embed.weight" not in state:
        raise CheckpointError(
            f"{source}: not a Faceptor checkpoint (no module.heads_module.decoder.level_embed"
            f".weight){'; Naive Faceptor? use --variant naive' if _is_naive(state) else ''}"
        )
    n_levels, hidden = state["module.heads_module.decoder.level_embed.weight"].shape
    new = state.get("module.heads_module.decoder.new_level_embed.weight")
    n_new = 0 if new is None else new.shape[0]
    if (n_levels, n_new) != (len(variant.levels), len(variant.new_levels)):
        kind = "stage-2 (Layer-Attention)" if n_new else "stage-1"
        raise ConversionError(
            source,
            [
                f"the checkpoint is {kind}: {n_levels} level(s) + {n_new} added level(s), but "
                f"--variant {variant_name} has levels {variant.levels} + {variant.new_levels}"
                + ("; use --variant stage2" if n_new else "; use --variant base or full")
            ],
        )
    found = {m.group(1) for k in state if (m := re.match(DEC + r"query_feat\.(\w+)\.weight", k))}
    if any(k.startswith("module.heads_module.interpreters.feature_v2.") for k in state):
        found.add(task_table.get("recognition_ms1mv3").original)
    _check_tasks(found, variant_name, variant, source)
    layers = _count(state, DEC + r"transformer_ffn_layers\.(\d+)\.")
    ffn = state["module.heads_module.decoder.transformer_ffn_layers.0.linear1.weight"].shape[0]
    fc2 = state.get("module.heads_module.interpreters.feature_v2.head.2.weight")
    decoder_heads = decoder_heads or max(hidden // 32, 1)
    if hidden % decoder_heads:
        raise CheckpointError(f"{source}: decoder width {hidden} is not divisible by "
                              f"{decoder_heads} heads (pass --decoder_heads)")  # fmt: skip
    return FaceptorConfig(
        encoder=enc,
        decoder=DecoderConfig(hidden=int(hidden), heads=decoder_heads, ffn=int(ffn), layers=layers),
        tasks=task_table.head_specs(variant.tasks),
        levels=variant.levels,
        new_levels=variant.new_levels,
        embed_dim=512 if fc2 is None else int(fc2.shape[0]),
    )


# --------------------------------------------------------------------------- Naive
def _is_naive(state: dict) -> bool:
    return any(k.startswith("module.heads_module.heads.") for k in state)


def naive_rules(cfg: NaiveConfig) -> list[Rule]:
    rules = encoder_rules(cfg.encoder)
    types = {s.type: s for s in cfg.tasks}
    for typ, spec in types.items():
        orig = task_table.get(spec.name).type.original
        src, dst = HEADS + rf"heads\.{orig}\.", f"heads.{typ}"
        if spec.kind == "feature":
            rules += recognition_rules(src, dst)
        elif spec.kind == "value":  # SwinFaceHead, as NaiveFaceptor picks it
            rules += [
                Rule(src + r"conv\.(?P<layer>\d+)\.weight", dst + ".conv", conv_hwio),
                *linear_rules(
                    src + r"channel_attention\.mlp\.1\.", dst + ".channel_attention.mlp_1"
                ),
                *linear_rules(
                    src + r"channel_attention\.mlp\.3\.", dst + ".channel_attention.mlp_2"
                ),
                *bn_rules(src + r"norm\.", dst + ".norm"),
                *linear_rules(src + r"feature\.0\.", dst + ".feature_1"),
                *linear_rules(src + r"feature\.3\.", dst + ".feature_2"),
            ]
            for s in cfg.tasks:
                if s.type == typ:
                    o = task_table.get(s.name).original
                    rules += linear_rules(src + rf"fcs\.{o}\.", f"{dst}.fcs.{s.name}")
        else:
            rules += uper_rules(src, dst)
    return rules


def uper_rules(src: str, dst: str) -> list[Rule]:
    def conv_module(s: str, d: str) -> list[Rule]:
        return [
            Rule(s + r"conv\.weight", d + ".conv.kernel", conv_hwio),
            *bn_rules(s + r"bn\.", d + ".bn"),
        ]

    f, hd = src + r"fpns\.", src + r"head\."
    rules = [
        Rule(f + r"0\.0\.weight", dst + ".fpns.up4_1.kernel", convt_hwio),
        Rule(f + r"0\.0\.bias", dst + ".fpns.up4_1.bias"),
        *bn_rules(f + r"0\.1\.", dst + ".fpns.up4_bn"),
        Rule(f + r"0\.3\.weight", dst + ".fpns.up4_2.kernel", convt_hwio),
        Rule(f + r"0\.3\.bias", dst + ".fpns.up4_2.bias"),
        Rule(f + r"1\.weight", dst + ".fpns.up2.kernel", convt_hwio),
        Rule(f + r"1\.bias", dst + ".fpns.up2.bias"),
        *conv_module(hd + r"bottleneck\.", dst + ".bottleneck"),
        *conv_module(hd + r"fpn_bottleneck\.", dst + ".fpn_bottleneck"),
        Rule(hd + r"conv_seg\.weight", dst + ".conv_seg.kernel", conv_hwio),
        Rule(hd + r"conv_seg\.bias", dst + ".conv_seg.bias"),
    ]
    for i in range(4):
        rules += conv_module(hd + rf"psp_modules\.{i}\.1\.", f"{dst}.psp.{i}")
    for i in range(3):
        rules += conv_module(hd + rf"lateral_convs\.{i}\.", f"{dst}.lateral.{i}")
        rules += conv_module(hd + rf"fpn_convs\.{i}\.", f"{dst}.fpn_convs.{i}")
    return rules


def infer_naive(
    state: dict, source: str, variant_name: str, heads: int | None, decoder_heads: int | None = None
) -> NaiveConfig:
    variant = VARIANTS[variant_name]
    if not _is_naive(state):
        raise CheckpointError(
            f"{source}: not a Naive Faceptor checkpoint (no module.heads_module.heads.* keys); "
            "a Faceptor checkpoint? use --variant base, full or stage2"
        )
    enc = farl.infer_config(state, source, heads, prefix="module.backbone_module.visual.")
    by_orig_type = {tt.original: tt.name for tt in task_table.TASK_TYPES}
    found = set()
    for typ in {m.group(1) for k in state if (m := re.match(HEADS + r"heads\.(\w+?)\.", k))}:
        if typ not in by_orig_type:
            raise CheckpointError(f"{source}: unknown Naive head type {typ!r}")
        if typ == "recog":
            found.add("recog_ms1mv3")
        fcs = {
            m.group(1)
            for k in state
            if (m := re.match(HEADS + rf"heads\.{typ}\.fcs\.(\w+)\.weight", k))
        }
        found |= fcs
        if by_orig_type[typ] in ("parsing", "landmarks"):  # UPerHead does not name its tasks
            found |= {task_table.get(n).original for n in variant.tasks
                      if task_table.get(n).type.original == typ}  # fmt: skip
    _check_tasks(found, variant_name, variant, source)
    swin = next((k for k in state if re.match(HEADS + r"heads\.\w+\.conv\.0\.weight", k)), None)
    seg = next((k for k in state if k.endswith("head.conv_seg.weight")), None)
    fc2 = state.get("module.heads_module.heads.recog.head.2.weight")
    return NaiveConfig(
        encoder=enc,
        tasks=task_table.head_specs(variant.tasks),
        embed_dim=512 if fc2 is None else int(fc2.shape[0]),
        swin_dim=512 if swin is None else 4 * int(state[swin].shape[0]),
        uper_channels=512 if seg is None else int(state[seg].shape[1]),
    )


@dataclasses.dataclass(frozen=True)
class Variant:
    """A released checkpoint: its model kind (`families.FAMILIES`), config reader, key rules."""

    kind: str
    infer: Callable[..., FaceptorConfig | NaiveConfig]
    rules: Callable[..., list[Rule]]
    tasks: tuple[str, ...]
    levels: tuple[int, ...] = (11,)
    new_levels: tuple[int, ...] = ()


FACEPTOR = ("faceptor", infer_faceptor, faceptor_rules)
STAGE2 = Variant(*FACEPTOR, task_table.FULL, new_levels=(1, 3, 5, 7, 9))
VARIANTS: dict[str, Variant] = {
    "base": Variant(*FACEPTOR, task_table.BASE),
    "full": Variant(*FACEPTOR, task_table.FULL),
    "stage2": STAGE2,  # the three released stage-2 configs share this structure
    "stage2-affect_rafdb": STAGE2,
    "stage2-age_morph2": STAGE2,
    "stage2-biattr_celeba": STAGE2,
    "naive": Variant("naive_faceptor", infer_naive, naive_rules, task_table.BASE),
}


# --------------------------------------------------------------------------- entry point
def split_losses(state: dict) -> tuple[dict, dict]:
    """(CosFace classifiers {our task: {"classifier": [classes, E]}}, the other tensors)."""
    losses = {}
    for k, v in state.items():
        if m := CLASSIFIER.fullmatch(k):
            losses[task_table.by_original(m.group(1)).name] = {"classifier": v}
    return losses, state


def check_aliases(state: dict, source: str) -> None:
    """Norm2d registers its affine twice; the dropped `.ln.` copy must equal the kept one."""
    problems = []
    for k, v in state.items():
        if ".mask_map.1.ln." in k:
            kept = k.replace(".ln.", ".")
            if kept not in state or not np.array_equal(state[kept], v):
                problems.append(f"{k}: alias of {kept}, but that is missing or different")
    if problems:
        raise ConversionError(source, problems)


def convert_faceptor(
    state: dict,
    source: str,
    variant: str,
    heads: int | None = None,
    decoder_heads: int | None = None,
) -> tuple[FaceptorConfig | NaiveConfig, dict, dict]:
    """Faceptor / Naive state dict -> (config, pure dict of the model's state, losses)."""
    if variant not in VARIANTS:
        raise CheckpointError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    check_aliases(state, source)
    v = VARIANTS[variant]
    cfg = v.infer(state, source, variant, heads=heads, decoder_heads=decoder_heads)
    model = nnx.eval_shape(lambda: families.get(v.kind).build(cfg, nnx.Rngs(0)))
    skeleton = flatten_paths(nnx.to_pure_dict(nnx.state(model)))
    flat = apply_rules(state, v.rules(cfg), DROPPED, skeleton, source)
    params = {p: np.asarray(v, dtype=skeleton[p].dtype) for p, v in flat.items()}
    losses, _ = split_losses(state)
    return cfg, unflatten_paths(params), losses
