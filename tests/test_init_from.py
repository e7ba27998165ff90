"""Initialising training from converted weights: FaRL encoder only, or a whole Faceptor model."""

import os

import jax
import numpy as np
import pytest
from flax import nnx
from test_train import micro_config

from convert.__main__ import main as convert_main
from faceptor_jax import checkpoint, sharding, train

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _state(config):
    mesh = sharding.make_mesh((2, 1, 4))
    trainer, abstract = train.make_trainer(config, mesh)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, _ = train.create_state(trainer, abstract)
    return state


def test_farl_init_fills_the_encoder_only(tmp_path):
    dst = str(tmp_path / "farl")
    src = os.path.join(FIXTURES, "farl_vit", "farl_tiny.pth")
    assert convert_main(["farl", "--src", src, "--dst", dst, "--heads", "4"]) == 0
    config = micro_config()
    config.model.encoder.update(width=64, heads=4, mlp_dim=256, pe_grid=32)
    config.init.farl = dst
    fresh = _state(config)
    state = checkpoint.init_from(config.init, fresh)
    want = checkpoint.load_params(dst)
    got = state["params"]["model"]["encoder"]
    np.testing.assert_array_equal(np.asarray(got["pos_embed"]), want["pos_embed"])
    np.testing.assert_array_equal(
        np.asarray(got["blocks"]["attn"]["qkv"]), want["blocks"]["attn"]["qkv"]
    )
    assert (
        got["blocks"]["attn"]["qkv"].sharding
        == fresh["params"]["model"]["encoder"]["blocks"]["attn"]["qkv"].sharding
    )  # placed like the fresh state
    head = state["params"]["model"]["decoder"]
    jax.tree.map(np.testing.assert_array_equal, head, fresh["params"]["model"]["decoder"])


def test_shape_mismatch_names_the_parameter(tmp_path):
    dst = str(tmp_path / "farl")
    src = os.path.join(FIXTURES, "farl_vit", "farl_tiny.pth")
    assert convert_main(["farl", "--src", src, "--dst", dst, "--heads", "4"]) == 0
    config = micro_config()  # width 32: the width-64 FaRL weights do not fit
    config.init.farl = dst
    with pytest.raises(ValueError, match=r"encoder\.pos_embed: checkpoint \(1025, 64\), model"):
        checkpoint.init_from(config.init, _state(config))
