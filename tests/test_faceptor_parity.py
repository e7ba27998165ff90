"""Faceptor stage 1, stage 2 and Naive Faceptor against golden outputs of the ORIGINAL code.

Fixtures (tests/fixtures/faceptor/README.md): reduced-width models with trained-like random
weights in the original checkpoint container, converted here through the CLI, then every task's
outputs compared in fp32. Inputs are NCHW in the fixtures; the model takes NHWC.
"""

import numpy as np
import pytest
from flax import nnx

from convert.__main__ import main as convert_main
from faceptor_jax import tasks
from faceptor_jax.checkpoint import load_losses, read_meta
from faceptor_jax.model import families

FX = "tests/fixtures/faceptor"
# (fixture file, --variant, task set)
VARIANTS = {
    "stage1": ("stage1", "full", tasks.FULL),
    "stage2": ("stage2", "stage2", tasks.FULL),
    "naive": ("naive", "naive", tasks.BASE),
}
ATOL = 1e-4
RTOL = 1e-5  # the original's own fp32-vs-fp64 gap reaches 1.0e-4 at |x| ≈ 16 (naive affectnet)


def images_for(names) -> dict[str, np.ndarray]:
    inp = np.load(f"{FX}/inputs.npz")
    out = {}
    for n in names:
        t = tasks.get(n)
        x = inp["in_512"] if t.input_size == 512 else inp[f"in_{t.original}"]
        out[n] = x.transpose(0, 2, 3, 1)
    return out


def expected_pairs(name: str, raw: dict) -> list[tuple[str, np.ndarray]]:
    """(fixture key suffix, our value in the fixture's layout) for one task."""
    t = tasks.get(name)
    typ = t.type.name
    if typ == "recognition":
        return [("embedding", np.asarray(raw["embedding"]))]
    if typ in ("age", "attributes", "expression"):
        return [("logits", np.asarray(raw["logits"]))]
    if typ == "parsing":
        m = np.asarray(raw["maps"]).transpose(0, 3, 1, 2)
        pairs = [
            ("map_s8", m[:, :, ::8, ::8]),
            ("map_win", m[:, :, 56:72, 56:72]),
            ("parsing_s7", np.asarray(raw["logits"])[:, ::7, ::7, :]),
        ]
        return pairs + ([("map_c4", m[:, :4])] if t.original == "parsing_celebam" else [])
    hm = np.asarray(raw["heatmap"]).transpose(0, 3, 1, 2)
    acted = np.asarray(raw["heatmap_acted"]).transpose(0, 3, 1, 2)
    pairs = [
        ("landmark", np.asarray(raw["landmarks"])),
        ("heatmap_s8", hm[:, :, ::8, ::8]),
        ("heatmap_acted_s8", acted[:, :, ::8, ::8]),
        ("heatmap_win", hm[:, :, 56:72, 56:72]),
    ]
    return pairs + ([("heatmap_c4", hm[:, :4])] if t.original == "align_300w" else [])


@pytest.fixture(scope="module", params=list(VARIANTS))
def converted(request, tmp_path_factory):
    fname, variant, names = VARIANTS[request.param]
    dst = str(tmp_path_factory.mktemp(fname) / "ckpt")
    args = ["faceptor", "--src", f"{FX}/{fname}.pth.tar", "--variant", variant, "--dst", dst]
    args += ["--heads", "4"] + ([] if variant == "naive" else ["--decoder_heads", "4"])
    assert convert_main(args) == 0
    return request.param, dst, names


def test_every_task_output_matches_the_original(converted):
    key, dst, names = converted
    model = families.load(dst, task_heads=True)
    out = nnx.jit(lambda m, x: m(x))(model, images_for(names))
    assert set(out) == set(names)
    expected = np.load(f"{FX}/{VARIANTS[key][0]}_expected.npz")
    used, errors = set(), {}
    for n in names:
        for suffix, got in expected_pairs(n, out[n]):
            k = f"out_{tasks.get(n).original}_{suffix}"
            want = expected[k]
            used.add(k)
            assert got.shape == want.shape, (k, got.shape, want.shape)
            errors[k] = float(np.abs(got - want).max())
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=k)
    assert used == {k for k in expected.files if k.startswith("out_")}  # nothing left unchecked
    print(key, "max abs error", max(errors.values()))


def test_checkpoint_metadata_and_losses(converted):
    key, dst, _ = converted
    meta = read_meta(dst)
    assert meta["kind"] == ("naive_faceptor" if key == "naive" else "faceptor")
    assert meta["step"] == (20000 if key == "stage2" else 50000)
    losses = load_losses(dst)
    if key == "stage2":  # stage-2 checkpoints carry no CosFace classifier
        assert losses == {}
    else:
        assert losses["recognition_ms1mv3"]["classifier"].shape == (50, 512)
