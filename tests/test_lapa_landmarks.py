"""LaPa's 106 landmarks as a second task on the LaPa dataset: one source feeds parsing and
landmarks, a tiny run trains both, and evaluation reports the 106-point NME."""

import json
import os

import ml_collections
import numpy as np

from configs import recipe, tiny
from data import sources as entry
from faceptor_jax import input_pipeline, loop, tasks
from faceptor_jax.trainers import multitask


def lapa_config(steps: int = 2) -> ml_collections.ConfigDict:
    """The tiny recipe on LaPa's two tasks only (64-px crops, a 1-layer decoder)."""
    c = tiny.get_config()
    c.model.encoder.update(width=32, heads=2, mlp_dim=64, pe_grid=4)
    c.model.decoder.update(hidden=16, heads=2, ffn=32, layers=1)
    c.model.embed_dim = 16
    c.tasks = ml_collections.ConfigDict(recipe.tasks({"parsing_lapa": 2, "landmarks_lapa": 2}))
    for t in c.tasks.values():
        t.image_size, t.eval_batch_size = 64, 1  # LaPa parsing is scored per original image
    c.total_steps = steps
    c.optim.total_steps, c.optim.warmup_steps = steps, 1
    c.log_every, c.checkpoint_every, c.eval_every = 1, steps, 0
    c.eval_max_batches = 2
    c.data.threads = 1
    c.data.synthetic_length, c.data.synthetic_test_length = 16, 4
    return c


def test_one_lapa_source_feeds_parsing_and_106_landmarks(tmp_path):
    config = lapa_config()
    sources = entry.make_sources(config)
    streams = multitask.check_sources(config, sources)
    assert streams["parsing_lapa"].source is streams["landmarks_lapa"].source  # opened once
    assert input_pipeline.stream_keys(streams) == {
        "parsing_lapa": "lapa",  # the dataset's key: a one-task config's batches unchanged
        "landmarks_lapa": "landmarks_lapa",
    }
    ds, _ = input_pipeline.mixed_dataset(streams, 2, process_index=0, process_count=1)
    batch = ds[0]
    assert batch["parsing_lapa"]["mask"].shape == (2, 64, 64)
    assert batch["landmarks_lapa"]["landmarks"].shape == (2, 106, 2)
    assert tasks.get("landmarks_lapa").head_spec().outputs == 106

    workdir = str(tmp_path / "run")
    last = loop.train_and_evaluate(config, workdir, sources)
    assert np.isfinite(last["loss/landmarks_lapa"]) and np.isfinite(last["loss/parsing_lapa"])
    with open(os.path.join(workdir, f"eval_{config.total_steps}.json")) as f:
        results = {(r["task"], r["dataset"]): r["metrics"] for r in json.load(f)["results"]}
    nme = results["landmarks", "lapa"]["full"]["inter_pupil"]
    assert np.isfinite(nme) and nme > 0
    assert "per_class" in results["parsing", "lapa"]
    with open(os.path.join(workdir, f"eval_{config.total_steps}.txt")) as f:
        assert "Face alignment — LaPa" in f.read()
