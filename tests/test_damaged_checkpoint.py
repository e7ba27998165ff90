"""A damaged newest checkpoint never blocks a run: resume names the step and the reason, moves it
aside (`<step>.damaged-<time>`, never deleted) and continues from the newest intact step with the
same losses as an uninterrupted run from there; eval and export name the bad step and the intact
ones; a step that reads but does not fit the config is refused, not moved. A save that fails (a
full disk) is reported once, at its step, with no traceback; metrics rows are not doubled."""

import errno
import glob
import json
import os
import shutil

import numpy as np
import pytest
import regression_trainer as reg

from faceptor_jax import checkpoint, loop
from faceptor_jax.errors import CheckpointError
from faceptor_jax.metric_writer import MetricWriter
from faceptor_jax.train_checkpoints import SaveFailed


def _rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _rows(workdir) if "loss" in r}


def _truncate(step: str) -> None:
    for f in glob.glob(f"{step}/state/d/*"):
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)


def _garbage(step: str) -> None:
    rng = np.random.default_rng(0)
    for f in glob.glob(f"{step}/**/*", recursive=True):
        if os.path.isfile(f):
            with open(f, "wb") as fh:
                fh.write(rng.bytes(64))


def _empty(step: str) -> None:
    shutil.rmtree(step)
    os.makedirs(step)


DAMAGE = {
    "truncated": _truncate,
    "no_METADATA": lambda s: os.remove(f"{s}/state/_METADATA"),
    "no_manifest": lambda s: os.remove(f"{s}/state/manifest.ocdbt"),
    "no_data_item": lambda s: shutil.rmtree(f"{s}/data"),
    "emptied": _empty,
    "garbage": _garbage,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 8-step run, and a 6-step run (checkpoints 3 and 6) to damage."""
    root = tmp_path_factory.mktemp("runs")
    loop.train_and_evaluate(reg.config(8), str(root / "straight"), None, reg.RegressionTrainer())
    loop.train_and_evaluate(reg.config(6), str(root / "six"), None, reg.RegressionTrainer())
    return root


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_newest_step_is_moved_aside_and_the_run_resumes_from_the_previous(
    runs, tmp_path, kind, caplog
):
    workdir = str(tmp_path / "w")
    shutil.copytree(runs / "six", workdir)
    DAMAGE[kind](checkpoint.step_dir(workdir, 6))
    with caplog.at_level("WARNING"):
        loop.train_and_evaluate(reg.config(8), workdir, None, reg.RegressionTrainer())
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 1 and "training step 6 is unreadable (" in lines[0]
    assert "moved aside to 6.damaged-" in lines[0] and "intact step (3)" in lines[0]
    names = os.listdir(os.path.join(workdir, checkpoint.TRAIN_DIR))
    assert any(n.startswith("6.damaged-") for n in names)  # kept, not deleted
    assert sorted(int(n) for n in names if n.isdigit()) == [6, 8]  # resumed from 3, re-saved
    want, got = _losses(str(runs / "straight")), _losses(workdir)
    for step in (4, 5, 6, 7, 8):  # steps 4..6 run again from step 3, as uninterrupted
        assert got[step] == want[step], step
    rows = [r["step"] for r in _rows(workdir) if "loss" in r]
    assert rows == list(range(1, 9))  # the rows of the re-run steps 4..6 are not doubled


def test_eval_and_export_name_the_bad_step_and_the_intact_ones(runs, tmp_path):
    workdir = str(tmp_path / "w")
    shutil.copytree(runs / "six", workdir)
    os.remove(os.path.join(checkpoint.step_dir(workdir, 6), "state", "_METADATA"))
    with pytest.raises(CheckpointError, match=r"training step 6 is unreadable .*intact steps: 3"):
        loop.evaluate_only(reg.config(8), workdir, None, trainer=reg.RegressionTrainer())
    assert sorted(os.listdir(os.path.join(workdir, checkpoint.TRAIN_DIR))) == ["3", "6"]
    with pytest.raises(CheckpointError, match=r"checkpoints/6: training step 6 is unreadable"):
        checkpoint._restore_trained(workdir, 6, ("params",))


def test_a_step_of_another_config_is_refused_not_moved(runs, tmp_path, monkeypatch):
    workdir = str(tmp_path / "w")
    shutil.copytree(runs / "six", workdir)
    monkeypatch.setattr(reg, "DIM", reg.DIM + 1)
    with pytest.raises(CheckpointError, match=r"do not fit this config's training state"):
        loop.train_and_evaluate(reg.config(8), workdir, None, reg.RegressionTrainer())
    assert sorted(os.listdir(os.path.join(workdir, checkpoint.TRAIN_DIR))) == ["3", "6"]


def test_resumed_metrics_drop_the_rows_after_the_step_and_a_half_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1}\n{"step": 2, "loss": 2}\n{"step": 3, "lo')
    writer = MetricWriter(str(tmp_path), resume_step=1)
    writer.write_scalars(2, {"loss": 5.0})
    writer.close()
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"step": 1, "loss": 1}, {"step": 2, "loss": 5.0}
    ]  # fmt: skip


def _disk_full_at(monkeypatch, prefix: str):
    """grain's data-item writer hits ENOSPC for the step directories starting with `prefix`."""
    import grain

    real = grain.checkpoint.CheckpointHandler.save

    def full(self, directory, item=None, args=None):
        if os.path.basename(os.path.dirname(str(directory))).startswith(prefix):
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))
        return real(self, directory, item, args)

    monkeypatch.setattr(grain.checkpoint.CheckpointHandler, "save", full)
    return lambda: monkeypatch.setattr(grain.checkpoint.CheckpointHandler, "save", real)


def test_a_full_disk_during_a_save_is_reported_once_and_the_rerun_resumes(
    runs, tmp_path, monkeypatch, capfd
):
    freed = _disk_full_at(monkeypatch, "6.")
    workdir = str(tmp_path / "w")
    with pytest.raises(SaveFailed) as failed:
        loop.train_and_evaluate(reg.config(8), workdir, None, reg.RegressionTrainer())
    message = str(failed.value)
    assert "saving training step 6 failed (OSError: [Errno 28] No space left" in message
    assert message.endswith("rerun the same command: it resumes from step 3")
    assert "Traceback" not in capfd.readouterr().err
    freed()
    loop.train_and_evaluate(reg.config(8), workdir, None, reg.RegressionTrainer())
    assert _losses(workdir)[8] == _losses(str(runs / "straight"))[8]


def test_on_save_error_continue_logs_once_and_keeps_training(runs, tmp_path, monkeypatch, caplog):
    _disk_full_at(monkeypatch, "3.")
    config = reg.config(8)
    config.on_save_error = "continue"
    workdir = str(tmp_path / "w")
    with caplog.at_level("WARNING"):
        loop.train_and_evaluate(config, workdir, None, reg.RegressionTrainer())
    said = [r.getMessage() for r in caplog.records if "failed (OSError" in r.getMessage()]
    assert len(said) == 1 and "saving training step 3 failed" in said[0]
    assert said[0].endswith(
        "going on (config.on_save_error='continue'); the newest checkpoint: none yet"
    )
    assert sorted(int(n) for n in os.listdir(f"{workdir}/checkpoints") if n.isdigit()) == [6, 8]
    assert _losses(workdir)[8] == _losses(str(runs / "straight"))[8]


def test_multitask_resume_skips_a_damaged_step(tmp_path):
    from test_train import _step_losses, micro_config

    from data import sources as entry

    config = micro_config()  # the program test_train compiles: one compile (cache)
    sources = entry.make_sources(config)
    straight = str(tmp_path / "a")
    loop.train_and_evaluate(config, straight, sources)  # checkpoints 2 and 4
    workdir = str(tmp_path / "b")
    shutil.copytree(straight, workdir)
    shutil.rmtree(os.path.join(checkpoint.step_dir(workdir, 4), "data"))  # the iterator's state
    os.remove(os.path.join(workdir, "metrics.jsonl"))
    loop.train_and_evaluate(config, workdir, sources)  # resumes at step 2
    want, got = _step_losses(straight), _step_losses(workdir)
    assert sorted(got) == [3, 4]
    for step in (3, 4):
        assert got[step] == pytest.approx(want[step], abs=1e-6), step
