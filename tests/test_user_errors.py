"""Every user error is one clear message, exit 2, no traceback; bad configs stop before anything
compiles: field types and ranges, unknown keys and task names, missing or empty data folders."""

import os
import re
import subprocess
import sys

import ml_collections
import pytest

from configs import tiny
from data.sources import make_sources
from faceptor_jax import errors, loop, trainers
from faceptor_jax.errors import ConfigError, DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _set(path: str, value):
    def edit(c: dict):
        *parents, leaf = path.split(".")
        for p in parents:
            c = c[p]
        c[leaf] = value

    return edit


def _del_task(c: dict):
    c["tasks"]["agee_morph2"] = c["tasks"].pop("age_morph2")


def _tfds_empty_version(tmp_path):
    def edit(c: dict):
        os.makedirs(tmp_path / "morph2" / "1.0.0")
        c["data"] |= dict(source="tfds", data_dir=str(tmp_path))
        c["tasks"] = {"age_morph2": c["tasks"]["age_morph2"]}

    return edit


INT1 = "expected an integer ≥ 1"
BAD = {  # name: (edit, error type, message)
    "total_steps<0": (_set("total_steps", -5), ConfigError, "config.total_steps = -5: " + INT1),
    "log_every=0": (_set("log_every", 0), ConfigError, "config.log_every = 0: " + INT1),
    "checkpoint_every=0": (_set("checkpoint_every", 0), ConfigError, "checkpoint_every = 0: "),
    "eval_every<0": (_set("eval_every", -1), ConfigError, "config.eval_every = -1: expected an"),
    "string steps": (_set("total_steps", "100"), ConfigError, "total_steps = str '100': " + INT1),
    "string batch": (
        _set("tasks.age_morph2.batch_size", "8"), ConfigError,
        "config.tasks.age_morph2.batch_size = str '8': " + INT1,
    ),
    "batch 0": (_set("tasks.age_morph2.batch_size", 0), ConfigError, "batch_size = 0: " + INT1),
    "unknown key": (_set("totl_steps", 5), ConfigError, "config: unknown key totl_steps; expected"),
    "unknown task key": (
        _set("tasks.age_morph2.batchsize", 5), ConfigError,
        "config.tasks.age_morph2: unknown key batchsize",
    ),
    "unknown task": (_del_task, ConfigError, "unknown task 'agee_morph2'; valid tasks: "),
    "partial_fc 0": (
        _set("tasks.recognition_ms1mv3.partial_fc", 0.0), ConfigError,
        "config.tasks.recognition_ms1mv3.partial_fc = float 0.0: expected a class sample rate in "
        "(0, 1]",
    ),
    "partial_fc 1.5": (
        _set("tasks.recognition_ms1mv3.partial_fc", 1.5), ConfigError, "partial_fc = float 1.5: ",
    ),
    "partial_fc off recognition": (
        _set("tasks.age_morph2.partial_fc", 0.3), ConfigError,
        "config.tasks.age_morph2.partial_fc: only recognition tasks sample classes",
    ),
    "task weight < 0": (
        _set("task_weights.age", -1.0), ConfigError,
        "config.task_weights.age = float -1.0: expected a number ≥ 0.0",
    ),
    "no task weight": (
        lambda c: c["task_weights"].pop("age"), ConfigError,
        "config.task_weights has no weight for task type 'age' (age_morph2)",
    ),
    "unknown source": (
        _set("data.source", "s3"), ConfigError,
        "config.data.source 's3': expected 'synthetic' or 'tfds'",
    ),
    "missing data_dir": (_set("data.data_dir", "/no/such/dir"), None, None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_is_one_message_before_anything_compiles(name, tmp_path, monkeypatch, capsys):
    edit, kind, message = BAD[name]
    config = tiny.get_config().to_dict()
    if name == "missing data_dir":
        config["data"]["source"] = "tfds"
        kind, message = DataError, "config.data.data_dir /no/such/dir: no such folder"
    edit(config)
    config = ml_collections.ConfigDict(config)

    def compile_(*_):
        raise AssertionError("reached the model build")

    monkeypatch.setattr(trainers.TRAINERS["multitask"], "create", compile_)
    with pytest.raises(kind, match=re.escape(message)) as raised:
        sources = make_sources(config)
        loop.train_and_evaluate(config, str(tmp_path / "w"), sources)
    assert errors.report("main.py", raised.value) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("main.py: error: ")


def test_empty_tfds_version_folder_is_named(tmp_path, monkeypatch):
    config = tiny.get_config().to_dict()
    _tfds_empty_version(tmp_path)(config)
    config = ml_collections.ConfigDict(config)
    monkeypatch.setattr(trainers.TRAINERS["multitask"], "create", lambda *_: 1 / 0)
    with pytest.raises(DataError, match=r"morph2/1.0.0: no dataset_info.json"):
        loop.train_and_evaluate(config, str(tmp_path / "w"), make_sources(config))


def _main(tmp_path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "main.py", f"--workdir={tmp_path / 'w'}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.nosuch=1"], "--config.nosuch: the config has no field 'nosuch'"),
        (["--config.total_steps=abc"], "--config.total_steps=abc: invalid literal"),
        (["BAD"], "config.tasks.age_morph2.batch_size = str '8': expected an integer ≥ 1"),
    ],
    ids=["unknown override", "malformed override", "config file"],
)
def test_main_prints_one_line_and_exits_2(tmp_path, args, message):
    args = ["--config=configs/tiny.py", *args]
    if args[-1] == "BAD":  # a config file giving a string batch size
        bad = tmp_path / "bad.py"
        bad.write_text(
            "import ml_collections\n\nfrom configs import recipe, tiny\n\n\ndef get_config():\n"
            "    c = tiny.get_config()\n"
            "    c.tasks = ml_collections.ConfigDict(recipe.tasks({'age_morph2': '8'}))\n"
            "    return c\n"
        )
        args = [f"--config={bad}"]
    done = _main(tmp_path, *args)
    lines = [x for x in done.stderr.splitlines() if "main.py: error:" in x]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1 and message in lines[0], done.stderr
    assert not os.path.exists(tmp_path / "w" / "checkpoints")
