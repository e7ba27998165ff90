"""A training workdir as a model: predict opens it (newest step or a given one) with the trained
weights and BatchNorm statistics, export turns a step into a model directory, and paths that are
neither say what was expected."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
import skimage.data
from flax import nnx
from test_train import micro_config

from data import sources as entry
from faceptor_jax import checkpoint, export, loop, predict, sharding, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir after the training tests' 4-step run (same program: compiled once, cached),
    checkpoints at steps 2 and 4; and the config."""
    config = micro_config()
    workdir = str(tmp_path_factory.mktemp("train") / "w")
    loop.train_and_evaluate(config, workdir, entry.make_sources(config))
    return workdir, config


def _train_state(workdir, config, step):
    """The full train state at `step`, restored the way training resumes."""
    mesh = loop.mesh_from_config(config)
    trainer, abstract = train.make_trainer(config, mesh)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, shardings = train.create_state(trainer, abstract)
        ckpts = checkpoint.TrainCheckpoints(workdir)
        state = ckpts.restore(step, state, shardings)
        ckpts.close()
    return jax.device_get(state)


def _assert_same(got, want):
    flat_got, flat_want = checkpoint.flatten_paths(got), checkpoint.flatten_paths(want)
    assert sorted(flat_got) == sorted(flat_want)
    for k, v in flat_want.items():
        np.testing.assert_array_equal(np.asarray(flat_got[k]), np.asarray(v), err_msg=k)


def _model_values(p: predict.Predictor) -> dict:
    return jax.device_get(nnx.to_pure_dict(p._state))


def test_predictor_on_a_workdir_has_the_trained_weights_and_runs(trained):
    workdir, config = trained
    with open(os.path.join(workdir, checkpoint.MODEL_FILE)) as f:
        meta = json.load(f)
    assert meta["kind"] == "faceptor" and meta["recognition_classes"] == {"recognition_ms1mv3": 64}
    p = predict.Predictor(workdir)
    assert p.step == 4 and p.weights == checkpoint.step_dir(workdir, 4)
    state = _train_state(workdir, config, 4)
    want = checkpoint._merge(state["params"]["model"], state["model_state"])
    _assert_same(_model_values(p), want)
    bn_mean = _model_values(p)["recognition"]["bn_1"]["mean"]
    assert np.any(bn_mean != 0)  # BatchNorm statistics as trained, not their initial zeros
    assert {n: t.input_size for n, t in p.tasks.items()} == {
        "recognition_ms1mv3": 32,
        "age_morph2": 32,
        "parsing_celebamaskhq": 64,
        "landmarks_300w": 64,
    }  # the trained crop sides, not the tasks' own 112/512
    faces, masks = p(skimage.data.astronaut())
    assert len(faces) == 1 and np.asarray(faces[0]["landmarks"]["landmarks_300w"]).shape == (68, 2)
    assert len(faces[0]["embedding"]["recognition_ms1mv3"]) == 16
    assert masks["parsing_celebamaskhq"].shape == (512, 512)
    assert (
        p.threshold_source.startswith("fallback") and f"--workdir={workdir}" in p.threshold_source
    )

    older = predict.Predictor(checkpoint.step_dir(workdir, 2))
    assert older.step == 2
    assert np.any(_model_values(older)["encoder"]["pos_embed"] != want["encoder"]["pos_embed"])
    state2 = _train_state(workdir, config, 2)
    _assert_same(
        _model_values(older), checkpoint._merge(state2["params"]["model"], state2["model_state"])
    )


def test_export_loads_like_a_converted_model(trained, tmp_path):
    workdir, config = trained
    record = {"threshold": 1.2, "dataset": "lfw", "pairs": 16, "step": 4}
    checkpoint.write_verification(workdir, record)
    try:
        p = predict.Predictor(workdir)
        assert p.threshold == 1.2 and p.threshold_source.startswith("protocol:")
        assert "these weights" not in p.threshold_source
        p2 = predict.Predictor(checkpoint.step_dir(workdir, 2))
        assert p2.threshold_source.endswith(
            "step 4) from "
            + os.path.join(workdir, "verification.json")
            + "; these weights are step 2"
        )

        out = str(tmp_path / "model")
        assert export.main([workdir, out]) == 0
        assert checkpoint.read_verification(out) == record
        exported = predict.Predictor(out)
        assert exported.step is None and exported.threshold == 1.2
        _assert_same(_model_values(exported), _model_values(p))
        assert checkpoint.read_meta(out)["step"] == 4

        # `--config.init.checkpoint=OUT`: weights, BN statistics and the CosFace classifier
        init = micro_config()
        init.init.checkpoint = out
        mesh = loop.mesh_from_config(init)
        trainer, abstract = train.make_trainer(init, mesh)
        with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
            fresh, _ = train.create_state(trainer, abstract)
            state = jax.device_get(checkpoint.init_from(init.init, fresh))
        trained_state = _train_state(workdir, config, 4)
        _assert_same(state["params"]["model"], trained_state["params"]["model"])
        _assert_same(state["model_state"], trained_state["model_state"])
        np.testing.assert_array_equal(
            state["params"]["loss"]["recognition_ms1mv3"]["classifier"][:64],
            trained_state["params"]["loss"]["recognition_ms1mv3"]["classifier"][:64],
        )

        # step 2 has no stored threshold: not copied, and said so
        out2 = str(tmp_path / "model2")
        notes = export.export(checkpoint.step_dir(workdir, 2), out2)
        assert checkpoint.read_verification(out2) is None
        assert "no verification threshold for step 2 (the stored one is step 4)" in notes[-1]
    finally:
        os.remove(os.path.join(workdir, checkpoint.VERIFICATION_FILE))


def test_errors_name_the_path_and_what_was_expected(trained, tmp_path, capsys):
    workdir, _ = trained
    with pytest.raises(
        FileNotFoundError, match=r"checkpoints/3: no such training step; .* holds steps 2, 4"
    ):
        predict.Predictor(os.path.join(workdir, "checkpoints", "3"))

    fresh = tmp_path / "fresh"  # training started, nothing saved yet
    (fresh / "checkpoints").mkdir(parents=True)
    shutil.copy(os.path.join(workdir, checkpoint.MODEL_FILE), fresh)
    with pytest.raises(
        FileNotFoundError, match=r"fresh: a training workdir with no finished checkpoint yet"
    ):
        predict.Predictor(fresh)

    old = tmp_path / "old"  # trained before model.json was written
    shutil.copytree(os.path.join(workdir, "checkpoints"), old / "checkpoints")
    with pytest.raises(FileNotFoundError, match=r"old: training checkpoints without model.json"):
        predict.Predictor(old)

    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"")
    expected = (
        r"photos: not a faceptor_jax model; expected a model directory \(model.json \+ params/"
        r".* or a training workdir \(model.json \+ checkpoints/<step>/"
    )
    with pytest.raises(FileNotFoundError, match=expected):
        predict.Predictor(other)
    assert predict.main(["--checkpoint", str(other), "--input", str(other / "a.jpg")]) == 2
    assert "photos: not a faceptor_jax model" in capsys.readouterr().err
    assert predict.main(["--checkpoint", str(tmp_path / "nowhere"), "--input", "x.jpg"]) == 2
    assert "nowhere: no such directory" in capsys.readouterr().err

    assert export.main([str(other), str(tmp_path / "x")]) == 2
    assert "not a faceptor_jax model" in capsys.readouterr().err
    out = tmp_path / "exported"
    assert export.main([workdir, str(out)]) == 0
    assert export.main([workdir, str(out)]) == 2  # never over an existing model
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert export.main([str(out), str(tmp_path / "y")]) == 2
    assert "already a model directory" in capsys.readouterr().err
