"""The run loop is generic: a second trainer (tests/regression_trainer.py: linear regression, no
model module, no tasks) trains through `loop.train_and_evaluate`, checkpoints, evaluates, and
resumes after SIGTERM exactly like an uninterrupted run; `config.trainer` and
`config.sharding_rules` are checked with errors naming the bad value."""

import json
import os

import ml_collections
import numpy as np
import pytest
import regression_trainer as reg

from faceptor_jax import checkpoint, loop, sharding, trainers


def _metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _metrics(workdir) if "loss" in r}


def _steps(workdir: str) -> list[int]:
    return sorted(int(s) for s in os.listdir(os.path.join(workdir, checkpoint.TRAIN_DIR)))


@pytest.mark.parametrize("grain_data", [True, False], ids=["grain-iterator", "step-indexed"])
def test_second_trainer_trains_checkpoints_and_resumes_exactly(tmp_path, grain_data):
    config = reg.config(total_steps=8)
    straight = reg.RegressionTrainer(grain_data)
    last = loop.train_and_evaluate(config, str(tmp_path / "a"), None, trainer=straight)
    losses = _losses(str(tmp_path / "a"))
    assert sorted(losses) == list(range(1, 9)) and last["loss"] == losses[8]
    assert losses[8] < 0.1 * losses[1]  # it learns
    assert _steps(str(tmp_path / "a")) == [6, 8]  # every 3rd and the last, keep 2
    items = os.listdir(checkpoint.step_dir(str(tmp_path / "a"), 8))
    assert "state" in items and ("data" in items) == grain_data  # the trainer's items
    assert [s for s, _ in straight.evaluated] == [4, 8]  # eval_every=4 and eval_at_end
    assert any("eval/w_error" in r for r in _metrics(str(tmp_path / "a")))
    assert not os.path.exists(str(tmp_path / "a" / checkpoint.MODEL_FILE))  # description None
    assert straight.created_with == [sharding.DEFAULT_RULES]  # config.sharding_rules = None

    workdir = str(tmp_path / "b")
    preempted = reg.RegressionTrainer(grain_data, preempt_at=5)
    loop.train_and_evaluate(config, workdir, None, trainer=preempted)
    assert _steps(workdir) == [3, 5] and max(_losses(workdir)) == 5  # saved at SIGTERM, stopped
    resumed = reg.RegressionTrainer(grain_data)
    loop.train_and_evaluate(config, workdir, None, trainer=resumed)  # resumes at step 5
    assert _losses(workdir)[8] == losses[8]
    (step, want), (got_step, got) = straight.evaluated[-1], resumed.evaluated[-1]
    assert step == got_step == 8
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)

    results = loop.evaluate_only(config, workdir, None, trainer=resumed)  # the newest step
    assert resumed.evaluated[-1][0] == 8
    assert results["w_error"] == float(np.abs(want["w"] - reg.W_TRUE).max())


def test_sharding_rules_come_from_the_config(tmp_path):
    config = reg.config(total_steps=2)
    config.sharding_rules = (("batch", "data"), ("embed", None))
    trainer = reg.RegressionTrainer()
    loop.train_and_evaluate(config, str(tmp_path), None, trainer=trainer)
    want = (("batch", "data"), ("embed", None))
    assert trainer.created_with == [want]
    assert trainer.run.seen_rules == [want]  # the step was traced under them too


def test_nonfinite_loss_stops_with_the_trainers_message(tmp_path):
    config = reg.config(total_steps=6)
    config.lr = 1e6  # diverges to inf within a few steps
    with pytest.raises(loop.NonFiniteLoss, match=r"non-finite regression loss"):
        loop.train_and_evaluate(config, str(tmp_path), None, trainer=reg.RegressionTrainer())


def test_unknown_trainer_lists_the_valid_ones():
    message = r"config.trainer 'byol': unknown trainer; .*multitask, fra"
    with pytest.raises(ValueError, match=message):
        trainers.get(ml_collections.ConfigDict(dict(trainer="byol")))
    assert trainers.get(ml_collections.ConfigDict()) is trainers.TRAINERS["multitask"]


@pytest.mark.parametrize(
    "rules, message",
    [
        ((("bach", "data"),), r"unknown logical axis 'bach'; valid: batch, embed"),
        ((("batch", "dta"),), r"'batch' -> 'dta': 'dta' is not a mesh axis; valid: data, fsdp"),
        ((("batch", ("data", "data")),), r"'batch' -> \('data', 'data'\) names a mesh axis twice"),
        ((("embed", "fsdp"), ("embed", None)), r"logical axis 'embed' is mapped twice"),
        (("batch",), r"'batch' is not a \(logical axis, mesh axes\) pair"),
    ],
)
def test_bad_sharding_rules_are_named(rules, message):
    config = reg.config()
    config.sharding_rules = rules
    with pytest.raises(ValueError, match=r"config.sharding_rules: " + message):
        loop.sharding_rules(config)
