"""Two JAX processes on localhost (4 CPU devices each) train together exactly like one process
with 8 devices: the same per-step losses, one metrics file, one set of checkpoints."""

import os
import subprocess
import sys

import portpicker
import pytest
from test_train import _step_losses, micro_config

from data import sources as entry
from faceptor_jax import loop

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_processes_match_one(tmp_path):
    one = str(tmp_path / "one")
    config = micro_config()
    loop.train_and_evaluate(config, one, entry.make_sources(config))

    two = str(tmp_path / "two")
    port = str(portpicker.pick_unused_port())
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(HERE, "two_process_train.py"), port, str(i), two],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    want, got = _step_losses(one), _step_losses(two)
    assert sorted(got) == [1, 2, 3, 4]
    for step in want:
        assert got[step] == pytest.approx(want[step], abs=1e-5), step
    assert sorted(os.listdir(os.path.join(two, "checkpoints"))) == ["2", "4"]
