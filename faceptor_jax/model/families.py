"""The model families, one line each: what `config.model.kind` and `model.json`'s "kind" name.

A `Family` is everything generic code needs about a model without knowing its classes: its config
dataclass (`from_dict` / `to_dict`, the form stored in `model.json`), how to build it, how to apply
compute choices that change no parameter shape (`with_compute`), whether it has task heads (takes
`{task: images}` and has `cfg.tasks`) and how to load it from a model directory or training
workdir. Training, evaluation, predict, export and the converters all go through `FAMILIES`;
nothing else tells the families apart. A new family is its module file(s), one `Family` line
below and its converter in `convert/`.
"""

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from flax import nnx

from faceptor_jax import checkpoint
from faceptor_jax.model.faceptor import Faceptor, FaceptorConfig
from faceptor_jax.model.fra import FRA, FRAConfig
from faceptor_jax.model.naive import NaiveConfig, NaiveFaceptor
from faceptor_jax.model.resnet import ResNet, ResNetConfig
from faceptor_jax.model.swin import SwinConfig
from faceptor_jax.model.swinface import SwinFace, SwinFaceConfig
from faceptor_jax.model.vit import ViTConfig, ViTEncoder

# Compute choices: they change how a model runs, never its parameters, so a checkpoint trained
# with one choice loads under another. dtype: compute dtype; attention_impl: None (auto), "xla",
# "per_head" or "cudnn"; remat: recompute activations in the backward pass.
COMPUTE = ("dtype", "attention_impl", "remat")

Config = Any  # one of the families' config dataclasses
Compute = Callable[[Config, Mapping[str, Any]], Config]


def _encoder(cfg: ViTConfig, compute: Mapping[str, Any]) -> ViTConfig:
    return dataclasses.replace(cfg, **compute)


def _faceptor(cfg: FaceptorConfig, compute: Mapping[str, Any]) -> FaceptorConfig:
    decoder = {"dtype": compute["dtype"]} if "dtype" in compute else {}
    return dataclasses.replace(
        cfg,
        encoder=_encoder(cfg.encoder, compute),
        decoder=dataclasses.replace(cfg.decoder, **decoder),
    )


def _naive(cfg: NaiveConfig, compute: Mapping[str, Any]) -> NaiveConfig:
    # The encoder only: the heads keep their own `dtype` (a converted model evaluates with
    # model.json's, as it always has).
    return dataclasses.replace(cfg, encoder=_encoder(cfg.encoder, compute))


def _swin(cfg: SwinConfig, compute: Mapping[str, Any]) -> SwinConfig:
    # Windows hold 49 tokens: attention is one small fused block, no implementation choice.
    return dataclasses.replace(cfg, **{k: v for k, v in compute.items() if k != "attention_impl"})


def _swinface(cfg: SwinFaceConfig, compute: Mapping[str, Any]) -> SwinFaceConfig:
    heads = {"dtype": compute["dtype"]} if "dtype" in compute else {}
    return dataclasses.replace(cfg, encoder=_swin(cfg.encoder, compute), **heads)


def _resnet(cfg: ResNetConfig, compute: Mapping[str, Any]) -> ResNetConfig:
    # A CNN: no attention; it has no remat switch either (not needed at FRA/FER sizes).
    return dataclasses.replace(cfg, **({"dtype": compute["dtype"]} if "dtype" in compute else {}))


def _fra(cfg: FRAConfig, compute: Mapping[str, Any]) -> FRAConfig:
    # The backbone and the neck (its query decoder follows `cfg.dtype`); no remat switch.
    dtype = {"dtype": compute["dtype"]} if "dtype" in compute else {}
    return dataclasses.replace(cfg, backbone=_resnet(cfg.backbone, compute), **dtype)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Family:
    """name: for people (errors, logs); config: its config dataclass (with `from_dict`);
    module: the nnx.Module built as `module(cfg, rngs=rngs)`; task_heads: whether it takes
    `{task: images [B, H, W, 3]}` and has `cfg.tasks` (HeadSpecs, `from_dict` reads them);
    compute: `with_compute`'s rule, which sub-configs take which choice (a family ignores a
    choice it has no use for, e.g. attention_impl for a CNN)."""

    name: str
    config: type
    module: type[nnx.Module]
    task_heads: bool
    compute: Compute

    def from_dict(self, d: Mapping[str, Any]) -> Config:
        """The config from its `model.json` / `config.model` form (lists become tuples)."""
        return self.config.from_dict(d)

    def to_dict(self, cfg: Config) -> dict:
        """`from_dict`'s inverse: plain data (JSON-ready but for tuples)."""
        return dataclasses.asdict(cfg)

    def build(self, cfg: Config, rngs: nnx.Rngs) -> nnx.Module:
        return self.module(cfg, rngs=rngs)

    def with_compute(self, cfg: Config, **compute: Any) -> Config:
        """`cfg` with compute choices (`COMPUTE`) replaced; no parameter shape changes."""
        unknown = sorted(set(compute) - set(COMPUTE))
        if unknown:
            raise TypeError(f"{self.name}: {', '.join(unknown)} not among {', '.join(COMPUTE)}")
        return self.compute(cfg, compute)

    def load(self, directory: str | os.PathLike, **compute: Any) -> nnx.Module:
        """This family's model with the weights in `directory` (a model directory, a training
        workdir or one of its steps, see `checkpoint.locate`); ValueError if it holds another."""
        _, family, cfg = architecture(directory, **compute)
        if family is not self:
            raise ValueError(f"{directory}: holds a {family.name} model, expected {self.name}")
        return self.restore(cfg, directory)

    def restore(self, cfg: Config, directory: str | os.PathLike) -> nnx.Module:
        """The model of `cfg` (built abstractly: no random init) with the weights in `directory`."""
        model = nnx.eval_shape(lambda: self.build(cfg, nnx.Rngs(0)))
        return checkpoint.restore_into(model, directory)


# kind -> Family: the one spelling of each kind, shared by configs, model.json and converters.
FAMILIES: dict[str, Family] = {
    "faceptor": Family(
        name="Faceptor", config=FaceptorConfig, module=Faceptor, task_heads=True, compute=_faceptor
    ),
    "naive_faceptor": Family(
        name="Naive Faceptor",
        config=NaiveConfig,
        module=NaiveFaceptor,
        task_heads=True,
        compute=_naive,
    ),
    "farl_vit": Family(
        name="FaRL ViT encoder",
        config=ViTConfig,
        module=ViTEncoder,
        task_heads=False,
        compute=_encoder,
    ),
    "swinface": Family(
        name="SwinFace",
        config=SwinFaceConfig,
        module=SwinFace,
        task_heads=True,  # 42 fixed heads; every task gets every output, its type picks
        compute=_swinface,
    ),
    "fra": Family(
        name="FRA pretraining model",  # online + teacher networks and predictors
        config=FRAConfig,
        module=FRA,
        task_heads=False,
        compute=_fra,
    ),
    "resnet": Family(
        name="ResNet",  # torchvision layout: an FRA backbone, a FER classifier, torchvision's
        config=ResNetConfig,
        module=ResNet,
        task_heads=False,
        compute=_resnet,
    ),
}


def get(kind: str, where: str = "model kind") -> Family:
    """The family of `kind`; ValueError naming `where` and listing the valid kinds."""
    if kind not in FAMILIES:
        raise ValueError(f"{where} {kind!r}: not a model kind; valid kinds: {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def with_heads(kind: str, where: str = "model kind") -> Family:
    """`get`, refusing families without task heads (they cannot train or predict tasks)."""
    family = get(kind, where)
    if not family.task_heads:
        valid = ", ".join(k for k, f in FAMILIES.items() if f.task_heads)
        raise ValueError(f"{where} {kind!r}: a {family.name} has no task heads; expected {valid}")
    return family


def architecture(
    directory: str | os.PathLike, *, task_heads: bool = False, **compute: Any
) -> tuple[str, Family, Config]:
    """(kind, family, config) of the model a checkpoint's `model.json` describes, with `compute`
    applied (the architecture of a converted or trained model, for eval and predict); with
    `task_heads`, a family without them is refused."""
    meta = checkpoint.read_meta(directory)
    where = f"{directory}: {checkpoint.MODEL_FILE} kind"
    family = (with_heads if task_heads else get)(meta.get("kind"), where)
    return meta["kind"], family, family.with_compute(family.from_dict(meta["config"]), **compute)


def load(directory: str | os.PathLike, *, task_heads: bool = False, **compute: Any) -> nnx.Module:
    """The model in `directory`, of whichever family its `model.json` names (with `task_heads`:
    only a family with task heads, ValueError otherwise)."""
    _, family, cfg = architecture(directory, task_heads=task_heads, **compute)
    return family.restore(cfg, directory)
