"""`python -m convert fra`: the three source formats -> model directories `families.load` opens."""

import contextlib
import io
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from convert.__main__ import main as convert_main
from convert.mapping import flatten_paths
from convert.torch_reader import read_state_dict
from faceptor_jax import checkpoint
from faceptor_jax.model import families
from faceptor_jax.model.fra import FRA
from faceptor_jax.model.resnet import STAGES, ResNet

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "fra")
PRETRAIN = os.path.join(FIXTURES, "fra_tiny.pth.tar")
FER = os.path.join(FIXTURES, "fer_tiny.pth.tar")
MEAN = np.array([0.5231, 0.4044, 0.3489], np.float32)
STD = np.array([0.2536, 0.2194, 0.2070], np.float32)


def normalise(u: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(((u.astype(np.float32) / np.float32(255)) - MEAN) / STD)


@nnx.jit
def train_maps(resnet: ResNet, images: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """Train-mode (batch-statistics) stage maps, as the fixture's step records them."""
    return resnet(images, train=True)


@nnx.jit
def logits(resnet: ResNet, images: jnp.ndarray) -> jnp.ndarray:
    return resnet(images)["logits"]


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return dict(np.load(os.path.join(FIXTURES, "expected.npz")))


@pytest.fixture(scope="module")
def fer_expected() -> dict[str, np.ndarray]:
    return dict(np.load(os.path.join(FIXTURES, "fer_expected.npz")))


def convert(capsys, src, dst, *flags: str) -> str:
    """Run the CLI; returns what it printed."""
    assert convert_main(["fra", "--src", str(src), "--dst", str(dst), *flags]) == 0
    out = capsys.readouterr().out
    assert f"wrote {dst}" in out
    return out


def config_of(directory) -> dict:
    return json.loads((directory / "model.json").read_text())["config"]


def flat(model: nnx.Module) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flatten_paths(nnx.to_pure_dict(nnx.state(model))).items()}


@pytest.fixture(scope="module")
def pretrain_dirs(tmp_path_factory) -> dict[str, tuple]:
    """The fixture container converted whole and as its online backbone: {part: (dir, output)}."""
    root, dirs = tmp_path_factory.mktemp("fra"), {}
    for part in ("full", "backbone"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = convert_main(
                ["fra", "--src", PRETRAIN, "--dst", str(root / part), "--part", part]
            )
        assert code == 0
        dirs[part] = (root / part, out.getvalue())
    return dirs


def test_pretraining_container_whole_model(pretrain_dirs, expected):
    dst, out = pretrain_dirs["full"]
    assert "FRA pretraining container" in out and "epoch 3 (detected) -> kind fra" in out
    meta = json.loads((dst / "model.json").read_text())
    assert (meta["kind"], meta["format"], meta["part"], meta["epoch"]) == (
        "fra",
        "pretrain",
        "full",
        3,
    )
    model = families.load(dst)
    assert isinstance(model, FRA)
    sd = read_state_dict(PRETRAIN)
    got = flat(model)
    for ours, theirs in (
        ("teacher.neck.proto", "target_net.neck.proto"),
        ("online.backbone.layer4.2.bn3.var", "online_net.backbone.layer4.2.bn3.running_var"),
        ("predictor_obj.norm.mean", "predictor_obj.mlp.1.running_mean"),
    ):
        np.testing.assert_array_equal(got[ours], sd["module." + theirs])
    # The online backbone's features are the original's: to 1e-5 through layer1, deeper within
    # the fp32 spread of 16 train-mode BN blocks at batch 4 (fixtures/fra/README.md).
    maps = train_maps(model.online.backbone, normalise(expected["view1_uint8"]))
    for stage in ("stem", "layer1"):
        np.testing.assert_allclose(maps[stage][:2], expected[f"bb_{stage}"], atol=1e-5, rtol=1e-5)
    for stage, key in (("layer2", "bb_layer2"), ("layer3", "bb_layer3"), ("layer4", "o1_layer4")):
        got, want = np.asarray(maps[stage][: len(expected[key])]), expected[key]
        allowed = np.maximum(1e-4 + 1e-4 * np.abs(want), 3 * expected[f"gap64/{key}"])
        assert np.all(np.abs(got - want) <= allowed), stage


def test_pretraining_container_online_backbone(pretrain_dirs):
    dst, out = pretrain_dirs["backbone"]
    assert "-> kind resnet: the online backbone" in out
    model = families.load(dst)
    assert isinstance(model, ResNet) and model.cfg.num_classes == 0
    assert (model.cfg.width, model.cfg.blocks) == (8, (3, 4, 6, 3))
    # Exactly the whole model's online backbone, BN statistics included.
    whole = flatten_paths(checkpoint.load_params(pretrain_dirs["full"][0]))
    prefix = "online.backbone."
    want = {k[len(prefix) :]: v for k, v in whole.items() if k.startswith(prefix)}
    got = flat(model)
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k], got[k]) for k in want)


def test_main_fer_container_and_its_plain_state_dict(tmp_path, capsys, fer_expected):
    images = normalise(fer_expected["images_uint8"])
    out = convert(capsys, FER, tmp_path / "fer")
    assert "main_fer container" in out and "epoch 100 (detected) -> kind resnet" in out
    assert "fc (7 classes)" in out
    model = families.load(tmp_path / "fer")
    np.testing.assert_allclose(logits(model, images), fer_expected["logits"], atol=1e-4, rtol=1e-4)
    # The same weights as a plain torchvision state dict (no container, no `module.`).
    sd = torch.load(FER, weights_only=True)["state_dict"]
    torch.save({k.removeprefix("module."): v for k, v in sd.items()}, tmp_path / "tv.pth")
    out = convert(capsys, tmp_path / "tv.pth", tmp_path / "tv")
    assert "plain torchvision ResNet-50 state dict (detected) -> kind resnet" in out
    want, got = flat(model), flat(families.load(tmp_path / "tv"))
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k], got[k]) for k in want)
    out = convert(capsys, tmp_path / "tv.pth", tmp_path / "enc", "--part", "backbone")
    assert "the ResNet encoder (fc dropped)" in out
    assert config_of(tmp_path / "enc")["num_classes"] == 0


def torchvision_keys(width: int, blocks=(3, 4, 6, 3), classes: int = 0) -> dict[str, tuple]:
    """torchvision `resnet50()`'s state-dict names and shapes, written out independently of the
    converter's table (BN buffers and `num_batches_tracked` included)."""
    keys = {"conv1.weight": (width, 3, 7, 7)}

    def bn(name: str, c: int) -> None:
        for s in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{name}.{s}"] = (c,)
        keys[f"{name}.num_batches_tracked"] = ()

    bn("bn1", width)
    din = width
    for k, (stage, n) in enumerate(zip(STAGES, blocks, strict=True)):
        planes = width * 2**k
        for i in range(n):
            p = f"{stage}.{i}."
            keys[p + "conv1.weight"] = (planes, din, 1, 1)
            keys[p + "conv2.weight"] = (planes, planes, 3, 3)
            keys[p + "conv3.weight"] = (4 * planes, planes, 1, 1)
            for j, c in ((1, planes), (2, planes), (3, 4 * planes)):
                bn(f"{p}bn{j}", c)
            if i == 0:
                keys[p + "downsample.0.weight"] = (4 * planes, din, 1, 1)
                bn(p + "downsample.1", 4 * planes)
            din = 4 * planes
    if classes:
        keys["fc.weight"], keys["fc.bias"] = (classes, din), (classes,)
    return keys


def random_state(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randint(0, 9, s) if k.endswith("tracked") else torch.randn(s, generator=g)
        for k, s in shapes.items()
    }


def test_torchvision_names_from_their_own_list(tmp_path, capsys):
    sd = random_state(torchvision_keys(2, classes=5))
    torch.save(sd, tmp_path / "r50.pth")
    out = convert(capsys, tmp_path / "r50.pth", tmp_path / "r50", "--format", "torchvision")
    assert "(--format) -> kind resnet: the ResNet and its fc (5 classes)" in out
    model = families.load(tmp_path / "r50")
    assert (model.cfg.width, model.cfg.blocks, model.cfg.num_classes) == (2, (3, 4, 6, 3), 5)
    p = nnx.to_pure_dict(nnx.state(model))
    np.testing.assert_array_equal(
        p["conv1"]["kernel"], sd["conv1.weight"].numpy().transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(p["fc"], sd["fc.weight"].numpy().T)
    down = p["layer3"]["0"]["downsample"]["bn"]
    np.testing.assert_array_equal(down["var"], sd["layer3.0.downsample.1.running_var"].numpy())
    # What the original's extract_backbone.py writes: the same names without fc -> an encoder.
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, tmp_path / "enc.pth")
    out = convert(capsys, tmp_path / "enc.pth", tmp_path / "enc")
    assert "(detected) -> kind resnet: the ResNet encoder" in out and "dropped" not in out
    assert config_of(tmp_path / "enc")["num_classes"] == 0


def test_every_problem_in_one_error(tmp_path, capsys):
    container = torch.load(PRETRAIN, weights_only=True)
    sd = container["state_dict"]
    shape = "module.target_net.neck.proj_obj.mlp.3.weight"
    sd[shape] = sd[shape][:, :-1]
    del sd["module.target_net.backbone.layer2.1.bn2.running_var"]
    sd["module.online_net.neck.gate.weight"] = torch.zeros(3)
    torch.save(container, tmp_path / "bad.pth.tar")
    dst = tmp_path / "bad"
    assert convert_main(["fra", "--src", str(tmp_path / "bad.pth.tar"), "--dst", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err, err
    assert f"{shape}: found shape (32, 63, 1)" in err
    assert "missing parameter teacher.backbone.layer2.1.bn2.var (16,)" in err
    assert "unexpected key module.online_net.neck.gate.weight (3,)" in err
    assert not (dst / "model.json").exists()
    # A state dict of something else: the three formats named.
    torch.save({"head.weight": torch.zeros(2)}, tmp_path / "other.pth")
    assert convert_main(["fra", "--src", str(tmp_path / "other.pth"), "--dst", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "not an FRA pretraining, main_fer or torchvision ResNet checkpoint" in err
    assert "keys like head.weight" in err


def test_code_in_the_file_is_never_run(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {"a": Evil()}}, tmp_path / "evil.pth")
    dst = tmp_path / "out"
    assert convert_main(["fra", "--src", str(tmp_path / "evil.pth"), "--dst", str(dst)]) == 2
    out, err = capsys.readouterr()
    assert "weights_only=True" in err and "pwned" not in out
