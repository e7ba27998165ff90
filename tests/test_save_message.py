"""A save says it is written in the background and from where a kill before it is final resumes."""

import jax.numpy as jnp

from faceptor_jax import train_checkpoints
from faceptor_jax.train_checkpoints import TrainCheckpoints, save_message


def test_each_save_names_the_step_a_kill_would_resume_from(tmp_path, monkeypatch):
    lines = []
    info = train_checkpoints.logging.info  # absl's, which orbax logs through too

    def record(msg, *args, **kwargs):
        if msg == "%s" and args:
            lines.append(str(args[0]))
        info(msg, *args, **kwargs)

    monkeypatch.setattr(train_checkpoints.logging, "info", record)
    ckpts = TrainCheckpoints(str(tmp_path / "w"), 3)
    state = {"w": jnp.arange(4.0)}
    ckpts.save(10, state)
    ckpts.manager.wait_until_finished()
    ckpts.save(20, state)
    ckpts.close()
    saves = [line for line in lines if line.startswith("checkpoint: saving")]
    assert saves == [save_message(10, None), save_message(20, 10)]
    assert "resumes from the start" in saves[0] and "resumes from step 10" in saves[1]
    assert "in the background" in saves[1]
