"""Faceptor converter: variant checks, deliberate drops, strictness, messages for people."""

import numpy as np
import pytest

from convert.__main__ import main as convert_main
from convert.faceptor import convert_faceptor
from convert.mapping import ConversionError, flatten_paths
from convert.torch_reader import CheckpointError, read_state_dict

FX = "tests/fixtures/faceptor"


@pytest.fixture(scope="module")
def stage1() -> dict:
    return read_state_dict(f"{FX}/stage1.pth.tar")


@pytest.fixture(scope="module")
def stage2() -> dict:
    return read_state_dict(f"{FX}/stage2.pth.tar")


def convert(state, variant, **kw):
    return convert_faceptor(state, "ckpt.pth.tar", variant, heads=4, decoder_heads=4, **kw)


def test_dims_levels_and_tasks_are_read_from_the_checkpoint(stage1, stage2):
    cfg, params, _ = convert(stage1, "full")
    assert (cfg.encoder.width, cfg.encoder.depth, cfg.encoder.pe_grid) == (64, 12, 32)
    assert (cfg.decoder.hidden, cfg.decoder.ffn, cfg.decoder.layers) == (32, 64, 3)
    assert cfg.embed_dim == 512 and cfg.new_levels == ()
    assert len(cfg.tasks) == 13
    assert params["decoder"]["query_feat"]["attributes_celeba"].shape == (40, 32)
    assert params["decoder"]["layers"]["cross_attn"]["qkv"].shape == (3, 32, 3, 4, 8)
    cfg2, params2, losses2 = convert(stage2, "stage2")
    assert cfg2.new_levels == (1, 3, 5, 7, 9)
    assert params2["layer_attention"]["new_input_proj"]["kernel"].shape == (5, 64, 32)
    assert losses2 == {}


def test_cosface_classifier_stays_out_of_the_model(stage1):
    _, params, losses = convert(stage1, "full")
    assert not any("classifier" in p for p in flatten_paths(params))
    want = stage1["module.losses_module.losses.recog_ms1mv3.classifier"]
    np.testing.assert_array_equal(losses["recognition_ms1mv3"]["classifier"], want)


@pytest.mark.parametrize(
    ("which", "variant", "message"),
    [
        ("stage1", "stage2", r"is stage-1: 1 level\(s\) \+ 0 added.*use --variant base or full"),
        ("stage2", "full", r"checkpoint is stage-2 .*use --variant stage2"),
        ("stage1", "base", r"do not match --variant base: missing none, not in the variant "
                           r"\['affect_ferplus', 'age_utkface', .*it fits --variant full"),
        ("stage1", "naive", r"not a Naive Faceptor checkpoint.*use --variant base, full or stage2"),
    ],
)  # fmt: skip
def test_variant_mismatch_is_one_clear_message(stage1, stage2, which, variant, message):
    state = {"stage1": stage1, "stage2": stage2}[which]
    with pytest.raises((ConversionError, CheckpointError), match=message) as info:
        convert(state, variant)
    assert getattr(info.value, "problems", [None]).__len__() == 1


def test_naive_checkpoint_named_as_faceptor():
    naive = read_state_dict(f"{FX}/naive.pth.tar")
    with pytest.raises(CheckpointError, match=r"not a Faceptor checkpoint.*--variant naive"):
        convert(naive, "base")


def test_unexpected_missing_and_misshapen_keys_are_all_named(stage1):
    bad = dict(stage1)
    dec = "module.heads_module.decoder."
    bad[dec + "extra.weight"] = np.zeros(3, np.float32)
    del bad[dec + "transformer_ffn_layers.1.norm.bias"]
    bad[dec + "adapt_pos2d.0.weight"] = bad[dec + "adapt_pos2d.0.weight"][:, :30]
    with pytest.raises(ConversionError) as info:
        convert(bad, "full")
    msg = str(info.value)
    assert len(info.value.problems) == 3, msg
    assert "unexpected key module.heads_module.decoder.extra.weight (3,)" in msg
    assert "missing parameter decoder.layers.ffn_norm.bias (3, 32)" in msg
    assert "adapt_pos2d.0.weight: found shape (32, 30)" in msg


def test_norm2d_alias_must_equal_what_it_aliases(stage1):
    bad = dict(stage1)
    key = "module.heads_module.interpreters.map_v2.mask_map.1.ln.weight"
    bad[key] = bad[key] + 1.0
    with pytest.raises(ConversionError, match=r"mask_map\.1\.ln\.weight: alias of .*different"):
        convert(bad, "full")


def test_cli_wrong_variant_exits_with_the_message(tmp_path, capsys):
    src = f"{FX}/stage2.pth.tar"
    args = ["faceptor", "--src", src, "--variant", "base", "--dst", str(tmp_path / "x")]
    assert convert_main([*args, "--heads", "4"]) == 2
    assert "use --variant stage2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
