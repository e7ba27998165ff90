"""FaRL converter: strictness and error messages for people."""

import os
import pickle

import pytest
import torch

from convert.__main__ import main as convert_main
from convert.farl import convert_farl
from convert.mapping import ConversionError
from convert.torch_reader import CheckpointError, read_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "farl_vit", "farl_tiny.pth")


@pytest.fixture(scope="module")
def state() -> dict:
    return read_state_dict(FIXTURE)


def test_dims_are_read_from_the_checkpoint(state):
    cfg, params = convert_farl(state, "farl_tiny.pth", heads=4)
    assert (cfg.width, cfg.depth, cfg.heads, cfg.patch, cfg.mlp_dim) == (64, 12, 4, 16, 256)
    assert params["blocks"]["attn"]["qkv"].shape == (12, 64, 3, 4, 16)
    assert params["pos_embed"].shape == (1 + 32 * 32, 64)
    # Default heads follow FaRL/CLIP (width // 64).
    assert convert_farl(state, "x")[0].heads == 1


def test_unexpected_missing_and_misshapen_keys_are_all_named(state):
    bad = dict(state)
    bad["visual.extra_thing"] = bad["visual.class_embedding"]
    del bad["visual.transformer.resblocks.5.ln_2.bias"]
    bad["visual.transformer.resblocks.3.mlp.c_fc.weight"] = bad[
        "visual.transformer.resblocks.3.mlp.c_fc.weight"
    ][:, :60]
    with pytest.raises(ConversionError) as info:
        convert_farl(bad, "bad.pth", heads=4)
    msg = str(info.value)
    assert len(info.value.problems) == 3, msg
    assert "unexpected key visual.extra_thing (64,)" in msg
    assert "missing parameter blocks.ln_2.bias (12, 64)" in msg and "layers present" in msg
    assert "visual.transformer.resblocks.3.mlp.c_fc.weight: found shape (256, 60)" in msg
    assert "expected (64, 256)" in msg


def test_dropped_keys_are_deliberate(state):
    # Text tower, CLIP projection/ln_post and MIM keys are in the fixture and convert silently.
    assert any(k.startswith("transformer.") for k in state)
    assert "visual.mask_token" in state and "visual.proj" in state
    convert_farl(state, "farl_tiny.pth", heads=4)


def test_cli_missing_file(tmp_path, capsys):
    assert convert_main(["farl", "--src", str(tmp_path / "nope.pth"), "--dst", str(tmp_path)]) == 2
    assert "nope.pth: no such file" in capsys.readouterr().err


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(
        CheckpointError, match=r"garbage.pth: cannot be read as a PyTorch checkpoint"
    ):
        read_state_dict(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match=r"list.pth: expected a state dict"):
        read_state_dict(path)
    path = tmp_path / "mixed.pth"
    torch.save({"state_dict": {"a": torch.zeros(2), "note": "hello"}}, path)
    with pytest.raises(CheckpointError, match=r"entries that are not tensors: note \(str\)"):
        read_state_dict(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/faceptor_pwned",))


def test_code_in_a_checkpoint_is_never_run(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    with pytest.raises(CheckpointError, match=r"evil.pth: cannot be read"):
        read_state_dict(path)
    assert not os.path.exists("/tmp/faceptor_pwned")


def test_checkpoint_of_another_model(tmp_path, capsys):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    assert convert_main(["farl", "--src", str(path), "--dst", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a FaRL/CLIP image-tower checkpoint" in err and "visual.class_embedding" in err


def test_destination_holding_a_checkpoint_is_not_overwritten(tmp_path, capsys):
    dst = str(tmp_path / "out")
    assert convert_main(["farl", "--src", FIXTURE, "--dst", dst, "--heads", "4"]) == 0
    assert convert_main(["farl", "--src", FIXTURE, "--dst", dst, "--heads", "4"]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
