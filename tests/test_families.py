"""The model family table: one spelling per kind, config <-> model.json, compute choices."""

import dataclasses
import importlib

import jax
import numpy as np
import pytest
from flax import nnx

from convert.faceptor import VARIANTS
from faceptor_jax import checkpoint, tasks, train
from faceptor_jax.model import families
from faceptor_jax.model.faceptor import FaceptorConfig
from faceptor_jax.model.fra import FRAConfig
from faceptor_jax.model.naive import NaiveConfig
from faceptor_jax.model.resnet import ResNetConfig
from faceptor_jax.model.swin import SwinConfig
from faceptor_jax.model.swinface import SwinFaceConfig
from faceptor_jax.model.transformer_decoder import DecoderConfig
from faceptor_jax.model.vit import ViTConfig

ENC = ViTConfig(width=32, depth=2, heads=2, mlp_dim=64, pe_grid=4)
NAMES = ("recognition_ms1mv3", "age_morph2", "parsing_lapa")
TINY = {
    "faceptor": FaceptorConfig(
        encoder=ENC,
        decoder=DecoderConfig(hidden=16, heads=2, ffn=32, layers=2),
        tasks=tasks.head_specs(NAMES),
        levels=(1,),
        new_levels=(0,),
        embed_dim=24,
    ),
    "naive_faceptor": NaiveConfig(
        encoder=ENC,
        tasks=tasks.head_specs(NAMES),
        embed_dim=24,
        recognition_level=1,
        swin_levels=(0, 1),
        swin_dim=16,
        uper_levels=(0, 1, 1, 1),
        uper_channels=16,
    ),
    "farl_vit": ENC,
    "swinface": SwinFaceConfig(
        encoder=SwinConfig(image_size=28, embed_dim=8, depths=(2, 2), heads=(1, 2)),
        embed_dim=12,
        feature_dim=16,
        level_out=(8, 8),
    ),
    "fra": FRAConfig(
        backbone=ResNetConfig(width=2, blocks=(1, 1, 1, 1)),
        dim=8,
        hidden=8,
        num_proto=2,
        heads=2,
        dec_layers=1,
    ),
    "resnet": ResNetConfig(width=2, blocks=(1, 2, 1, 1), num_classes=3),
}


def test_every_kind_has_a_tiny_config():
    assert set(TINY) == set(families.FAMILIES)


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'naive'.*faceptor, naive_faceptor, farl_vit"):
        families.get("naive")
    with pytest.raises(ValueError, match=r"config.model.kind 'farl_vit'.*no task heads.*faceptor"):
        families.with_heads("farl_vit", "config.model.kind")


@pytest.mark.parametrize("kind", list(TINY))
def test_config_round_trips_through_model_json(kind, tmp_path, numpy_init):
    family, cfg = families.get(kind), TINY[kind]
    model = numpy_init(lambda: family.build(cfg, nnx.Rngs(0)))
    params = nnx.to_pure_dict(nnx.state(model))
    checkpoint.save_params(tmp_path, kind, cfg, params)
    got_kind, got_family, got = families.architecture(tmp_path)
    assert (got_kind, got_family, got) == (kind, family, cfg)
    loaded = family.load(tmp_path)
    assert jax.tree.all(jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(loaded)), params))
    if family.task_heads:
        assert families.load(tmp_path, task_heads=True).cfg == cfg
    else:
        with pytest.raises(ValueError, match=rf"model.json kind '{kind}'.*no task heads"):
            families.load(tmp_path, task_heads=True)
    other = next(f for k, f in families.FAMILIES.items() if k != kind)
    with pytest.raises(ValueError, match=rf"holds a {family.name} model, expected {other.name}"):
        other.load(tmp_path)


@pytest.mark.parametrize("kind", list(TINY))
def test_with_compute_changes_no_parameter_shape(kind):
    family, cfg = families.get(kind), TINY[kind]
    fast = family.with_compute(cfg, dtype="bfloat16", attention_impl="xla", remat=True)
    encoder = getattr(fast, "encoder", fast)  # the encoder family's config is the encoder's
    attention = getattr(encoder, "attention_impl", "xla")  # Swin's 49-token windows: no choice
    remat = getattr(encoder, "remat", True)  # the ResNets (FRA's too) have no remat switch
    assert (encoder.dtype, attention, remat) == ("bfloat16", "xla", True)
    if kind == "fra":
        assert fast.backbone.dtype == "bfloat16"
    shapes = lambda c: jax.tree.map(
        lambda x: (x.shape, x.dtype),
        nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: family.build(c, nnx.Rngs(0))))),
    )
    assert shapes(fast) == shapes(cfg)
    with pytest.raises(TypeError, match="width not among dtype, attention_impl, remat"):
        family.with_compute(cfg, width=64)


def test_faceptor_decoder_takes_the_compute_dtype_naive_heads_keep_theirs():
    f = families.get("faceptor").with_compute(TINY["faceptor"], dtype="bfloat16")
    assert f.decoder.dtype == "bfloat16"
    n = families.get("naive_faceptor").with_compute(TINY["naive_faceptor"], dtype="bfloat16")
    assert n.dtype == TINY["naive_faceptor"].dtype == "float32"


def test_configs_and_converters_use_the_table_spelling():
    assert {v.kind for v in VARIANTS.values()} <= set(families.FAMILIES)
    for name in ("faceptor_base", "naive_faceptor", "tiny"):
        config = importlib.import_module(f"configs.{name}").get_config()
        cfg = train.model_config(config)
        family = families.get(config.model.kind)
        assert family.from_dict(family.to_dict(cfg)) == cfg
        assert dataclasses.is_dataclass(cfg) and isinstance(cfg, family.config)
