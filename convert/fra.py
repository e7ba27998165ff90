"""FRA / FER / torchvision ResNet-50 checkpoints -> `FRA` or `ResNet` parameters (strict).

Sources:
- FRA pretraining container `{'epoch', 'arch': 'FRAB', 'state_dict', 'optimizer', ...}`, every key
  under `module.` (DistributedDataParallel): `online_net.{backbone,neck}`, `target_net.*`,
  `predictor`, `predictor_obj`. Deliberately dropped: `encoder_q.*` (an alias of the online
  backbone saved twice; checked equal), `center` (a buffer the original never updates: zeros),
  BN `num_batches_tracked`. `part="online_backbone"` keeps only `online_net.backbone.*` (what
  FER fine-tuning loads) and drops the rest deliberately.
- FER fine-tuning container `{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}`: a
  torchvision ResNet-50 + `fc` under `module.`.
- A plain torchvision ResNet-50 state dict (no prefix), `fc` kept or dropped; also what the
  original's `utils/extract_backbone.py` writes (torchvision names, no `fc`).
`convert_checkpoint` tells the three apart by their keys (`python -m convert fra`).

Layouts: conv [O, I, kh, kw] -> [kh, kw, I, O]; Conv1d [O, I, 1] and Linear [O, I] -> [I, O];
MHA packed `in_proj_weight` [3D, D] -> [D, 3, H, K] (H is not stored: 8 in FRA). Model dims
(width, blocks, projection dims, prototypes, decoder depth) are read from the tensor shapes.
"""

import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

from convert.mapping import (
    ConversionError,
    Rule,
    apply_rules,
    bn_rules,
    conv_hwio,
    flatten_paths,
    linear_rules,
    mha_rules,
    norm_rules,
    proj_1x1,
    t,
    unflatten_paths,
)
from convert.torch_reader import CheckpointError
from faceptor_jax.model.fra import MLP1D, FRAConfig, FRANetwork
from faceptor_jax.model.resnet import STAGES, ResNet, ResNetConfig

NUM_BATCHES = r".*num_batches_tracked"


def _conv1d(w: np.ndarray) -> np.ndarray:  # Conv1d 1-wide [O, I, 1] -> [I, O]
    if w.ndim != 3 or w.shape[-1] != 1:
        raise ValueError(f"expected a [O, I, 1] Conv1d kernel, got {w.shape}")
    return w[:, :, 0].T


def resnet_rules(src: str, dst: str, cfg: ResNetConfig) -> list[Rule]:
    """torchvision ResNet keys under the regex prefix `src` -> `ResNet` paths under `dst`."""
    rules = [Rule(src + r"conv1\.weight", dst + "conv1.kernel", conv_hwio)]
    rules += bn_rules(src + r"bn1\.", dst + "bn1")
    for stage, n in zip(STAGES, cfg.blocks, strict=True):
        for i in range(n):
            s, d = rf"{src}{stage}\.{i}\.", f"{dst}{stage}.{i}."
            for j in (1, 2, 3):
                rules.append(Rule(rf"{s}conv{j}\.weight", f"{d}conv{j}.kernel", conv_hwio))
                rules += bn_rules(rf"{s}bn{j}\.", f"{d}bn{j}")
            down = Rule(rf"{s}downsample\.0\.weight", f"{d}downsample.conv.kernel", conv_hwio)
            rules.append(down)
            rules += bn_rules(rf"{s}downsample\.1\.", f"{d}downsample.bn")
    if cfg.num_classes:
        rules += [Rule(src + r"fc\.weight", dst + "fc", t)]
        rules += [Rule(src + r"fc\.bias", dst + "fc_bias")]
    return rules


def mlp1d_rules(src: str, dst: str) -> list[Rule]:
    """`MLP1D` (`mlp.0` Conv1d, `mlp.1` BN, `mlp.3` Conv1d) -> fc1 / norm / fc2."""
    return [
        Rule(src + r"mlp\.0\.weight", dst + "fc1", _conv1d),
        *bn_rules(src + r"mlp\.1\.", dst + "norm"),
        Rule(src + r"mlp\.3\.weight", dst + "fc2", _conv1d),
    ]


def neck_rules(src: str, dst: str, cfg: FRAConfig) -> list[Rule]:
    """`ObjectNeck` (proj, proj_pixel, proj_obj, proto, proj_attn) -> ours."""
    rules = [Rule(src + r"proto", dst + "proto")]
    for name in ("proj", "proj_pixel", "proj_obj"):
        rules += mlp1d_rules(rf"{src}{name}\.", f"{dst}{name}.")
    a, b = src + r"proj_attn\.", dst + "proj_attn."
    if cfg.backbone.out_channels != cfg.dim:
        rules += [
            Rule(a + r"input_proj\.weight", b + "input_proj.kernel", proj_1x1),
            Rule(a + r"input_proj\.bias", b + "input_proj.bias"),
        ]
    rules.append(Rule(a + r"query_embed\.weight", b + "query_embed"))
    for i in range(cfg.dec_layers):
        s, d = rf"{a}transformer\.decoder\.layers\.{i}\.", f"{b}layers.{i}."
        rules += mha_rules(s + r"self_attn\.", d + "self_attn", cfg.heads)
        rules += mha_rules(s + r"multihead_attn\.", d + "cross_attn", cfg.heads)
        rules += linear_rules(s + r"linear1\.", d + "linear1")
        rules += linear_rules(s + r"linear2\.", d + "linear2")
        for j in (1, 2, 3):
            rules += norm_rules(rf"{s}norm{j}\.", f"{d}norm{j}")
    rules += norm_rules(a + r"transformer\.decoder\.norm\.", b + "decoder_norm")
    for i in range(3):
        rules += linear_rules(rf"{a}mask_embed\.layers\.{i}\.", f"{b}mask_embed.{i}")
    return rules


def _count(state: dict, pattern: str) -> int:
    found = {m.group(1) for k in state if (m := re.fullmatch(pattern, k))}
    return len(found)


def infer_resnet(state: dict, prefix: str, source: str, fc: bool) -> ResNetConfig:
    """Width and blocks per stage of the ResNet under the plain-string `prefix`."""
    key = prefix + "conv1.weight"
    if key not in state:
        sample = ", ".join(sorted(state)[:5])
        raise CheckpointError(f"{source}: no {key}: not a ResNet checkpoint (keys like {sample})")
    width = int(state[key].shape[0])
    p = re.escape(prefix)
    blocks = tuple(_count(state, rf"{p}{s}\.(\d+)\.conv1\.weight") for s in STAGES)
    head = state.get(prefix + "fc.weight") if fc else None
    classes = int(head.shape[0]) if head is not None else 0
    return ResNetConfig(width=width, blocks=blocks, num_classes=classes)


def infer_fra(state: dict, source: str, heads: int = 8) -> FRAConfig:
    """FRAConfig from the shapes of a pretraining state dict (keys with `module.`)."""
    neck = "module.online_net.neck."
    needed = ["module.online_net.backbone.conv1.weight", neck + "proj.mlp.0.weight", neck + "proto"]
    absent = [k for k in needed if k not in state]
    if absent:
        sample = ", ".join(sorted(state)[:3])
        raise CheckpointError(
            f"{source}: not an FRA pretraining checkpoint: missing {', '.join(absent)} "
            f"(keys like {sample})"
        )
    backbone = infer_resnet(state, "module.online_net.backbone.", source, fc=False)
    hidden, _, _ = state[neck + "proj.mlp.0.weight"].shape
    num_proto, dim = state[neck + "proto"].shape
    layers = _count(state, re.escape(neck) + r"proj_attn\.transformer\.decoder\.layers\.(\d+)\..*")
    return FRAConfig(
        backbone=backbone,
        dim=int(dim),
        hidden=int(hidden),
        num_proto=int(num_proto),
        heads=heads,
        dec_layers=layers,
    )


def _skeleton(ctor) -> dict[str, object]:
    return flatten_paths(nnx.to_pure_dict(nnx.state(nnx.eval_shape(ctor))))


def fra_skeleton(cfg: FRAConfig) -> dict[str, object]:
    """`FRA`'s flat parameter skeleton, traced part by part: online and teacher have the same
    shapes, and one trace of the whole model takes ~8× longer (each RNG-count update under
    tracing walks the trace so far: quadratic in its length)."""
    net = _skeleton(lambda: FRANetwork(cfg, rngs=nnx.Rngs(0)))
    dtype = jnp.dtype(cfg.dtype)
    mlp = _skeleton(lambda: MLP1D(cfg.dim, cfg.hidden, cfg.dim, dtype, rngs=nnx.Rngs(0)))
    parts = {"online": net, "teacher": net, "predictor": mlp, "predictor_obj": mlp}
    return {f"{part}.{k}": v for part, flat in parts.items() for k, v in flat.items()}


def _finish(flat: dict[str, np.ndarray], skeleton: dict[str, object]) -> dict:
    return unflatten_paths({p: np.asarray(v, dtype=skeleton[p].dtype) for p, v in flat.items()})


def _alias_problems(state: dict) -> list[str]:
    """`encoder_q.*` must be the online backbone saved a second time (it is dropped)."""
    problems = []
    for k, v in state.items():
        if k.startswith("module.encoder_q."):
            twin = "module.online_net.backbone." + k[len("module.encoder_q.") :]
            if twin not in state or not np.array_equal(state[twin], v):
                problems.append(f"{k}: dropped as an alias of {twin}, which differs or is absent")
    return problems


def fra_rules(cfg) -> list[Rule]:
    """The whole pretraining model's keys (`module.`-prefixed) onto `FRA`: online and teacher
    backbone + neck, both predictors."""
    rules = []
    for src, dst in (("online_net", "online"), ("target_net", "teacher")):
        rules += resnet_rules(rf"module\.{src}\.backbone\.", f"{dst}.backbone.", cfg.backbone)
        rules += neck_rules(rf"module\.{src}\.neck\.", f"{dst}.neck.", cfg)
    rules += mlp1d_rules(r"module\.predictor\.", "predictor.")
    rules += mlp1d_rules(r"module\.predictor_obj\.", "predictor_obj.")
    return rules


def convert_fra(
    state: dict[str, np.ndarray], source: str, *, heads: int = 8, part: str = "all"
) -> tuple[FRAConfig | ResNetConfig, dict]:
    """FRA pretraining state dict -> (config, pure dict of `FRA`), or with
    part="online_backbone" -> (ResNetConfig, pure dict of the online `ResNet` encoder)."""
    cfg = infer_fra(state, source, heads)
    if part == "online_backbone":
        rules = resnet_rules(r"module\.online_net\.backbone\.", "", cfg.backbone)
        skeleton = _skeleton(lambda: ResNet(cfg.backbone, rngs=nnx.Rngs(0)))
        dropped = (NUM_BATCHES, r"module\.(?!online_net\.backbone\.).*")
        flat = apply_rules(state, rules, dropped, skeleton, source)
        return cfg.backbone, _finish(flat, skeleton)
    if part != "all":
        raise ValueError(f"part must be 'all' or 'online_backbone', got {part!r}")
    rules = fra_rules(cfg)
    skeleton = fra_skeleton(cfg)
    dropped = (NUM_BATCHES, r"module\.encoder_q\..*", r"module\.center")
    problems = _alias_problems(state)
    try:
        flat = apply_rules(state, rules, dropped, skeleton, source)
    except ConversionError as e:  # one message with the alias check's problems too
        raise ConversionError(source, e.problems + problems) from None
    if problems:
        raise ConversionError(source, problems)
    return cfg, _finish(flat, skeleton)


def convert_resnet(
    state: dict[str, np.ndarray], source: str, *, prefix: str = "", keep_fc: bool = True
) -> tuple[ResNetConfig, dict]:
    """torchvision-layout ResNet state dict -> (config, pure dict of `ResNet`).

    prefix "module." for the FER fine-tuning container, "" for a plain torchvision file.
    keep_fc=False drops `fc.*` deliberately (an encoder, e.g. to initialise FRA's backbone).
    """
    cfg = infer_resnet(state, prefix, source, fc=keep_fc)
    if keep_fc and not cfg.num_classes:
        raise CheckpointError(
            f"{source}: no {prefix}fc.weight (for the encoder alone: keep_fc=False, "
            "`--part backbone` in `python -m convert fra`)"
        )
    rules = resnet_rules(re.escape(prefix), "", cfg)
    dropped = [NUM_BATCHES] + ([] if keep_fc else [re.escape(prefix) + r"fc\.(weight|bias)"])
    skeleton = _skeleton(lambda: ResNet(cfg, rngs=nnx.Rngs(0)))
    flat = apply_rules(state, rules, dropped, skeleton, source)
    return cfg, _finish(flat, skeleton)


# ----------------------------------------------------------------------------- one entry point
FORMATS = {  # --format -> what it is (the converter's output line names it)
    "pretrain": "FRA pretraining container (main.py's, module.* keys)",
    "fer": "main_fer container (ResNet-50 + fc, module.* keys)",
    "torchvision": "plain torchvision ResNet-50 state dict",
}
PARTS = ("full", "backbone")


def detect_format(state: dict, source: str) -> str:
    """Which of `FORMATS` a state dict is, from its keys; CheckpointError if none."""
    if any(k.startswith("module.online_net.") for k in state):
        return "pretrain"
    if "module.conv1.weight" in state:
        return "fer"
    if "conv1.weight" in state:
        return "torchvision"
    sample = ", ".join(sorted(state)[:5])
    hint = ""
    if any(k.startswith("online_net.") for k in state):
        hint = " (online_net.* without DDP's module. prefix: pass --format pretrain to see why)"
    raise CheckpointError(
        f"{source}: not an FRA pretraining, main_fer or torchvision ResNet checkpoint: no "
        f"module.online_net.*, module.conv1.weight or conv1.weight key{hint} (keys like {sample})"
    )


def convert_checkpoint(
    state: dict[str, np.ndarray], source: str, fmt: str = "auto", part: str = "full"
) -> tuple[str, FRAConfig | ResNetConfig, dict, str]:
    """Any of `FORMATS` -> (model kind, config, pure dict, what was kept, for people).

    part "full": everything the file holds (FRA: online + teacher + predictors -> kind "fra";
    FER: the ResNet with its fc; torchvision: with fc if it has one). "backbone": the ResNet
    encoder alone (FRA's online backbone, which FER fine-tuning loads; `fc` dropped) -> "resnet".
    """
    if part not in PARTS:
        raise ValueError(f"part {part!r}: expected one of {', '.join(PARTS)}")
    if fmt == "auto":
        fmt = detect_format(state, source)
    elif fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected auto or one of {', '.join(FORMATS)}")
    if fmt == "pretrain":
        if part == "full":
            cfg, params = convert_fra(state, source)
            kept = (
                "online + teacher networks and both predictors (encoder_q.* alias, center dropped)"
            )
            return "fra", cfg, params, kept
        cfg, params = convert_fra(state, source, part="online_backbone")
        return "resnet", cfg, params, "the online backbone (teacher, necks, predictors dropped)"
    prefix = "module." if fmt == "fer" else ""
    # extract_backbone.py's files are torchvision names without fc: nothing to keep there.
    keep_fc = part == "full" and (fmt == "fer" or any(k.startswith("fc.") for k in state))
    cfg, params = convert_resnet(state, source, prefix=prefix, keep_fc=keep_fc)
    if keep_fc:
        return "resnet", cfg, params, f"the ResNet and its fc ({cfg.num_classes} classes)"
    dropped = " (fc dropped)" if any(k.startswith(prefix + "fc.") for k in state) else ""
    return "resnet", cfg, params, f"the ResNet encoder{dropped}"
