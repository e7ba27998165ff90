"""`--mode=eval` on a converted checkpoint: the architecture comes from the checkpoint and the
reported numbers equal the ones computed directly from the model's outputs."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from convert.__main__ import main as convert_main
from data import sources as entry
from faceptor_jax import input_pipeline, landmark_metrics, loop, losses, preprocess
from faceptor_jax.model import families

FX = os.path.join(os.path.dirname(__file__), "fixtures", "faceptor")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> str:
    dst = str(tmp_path_factory.mktemp("ckpt") / "stage1")
    args = ["faceptor", "--src", f"{FX}/stage1.pth.tar", "--variant", "full", "--dst", dst]
    assert convert_main([*args, "--heads", "4", "--decoder_heads", "4"]) == 0
    return dst


def eval_config(checkpoint_dir: str):
    c = tiny.get_config()
    for name in list(c.tasks):
        if name not in ("age_morph2", "landmarks_300w"):
            del c.tasks[name]
    c.tasks.age_morph2.image_size, c.tasks.landmarks_300w.image_size = 64, 128
    c.init.checkpoint = checkpoint_dir
    c.recognition_classes = 50
    c.eval_max_batches = 1
    return c


def test_eval_reproduces_direct_computation(converted, tmp_path):
    config = eval_config(converted)
    sources = entry.make_sources(config)
    workdir = str(tmp_path / "eval")
    results = {r.dataset: r.metrics for r in loop.evaluate_only(config, workdir, sources)}
    with open(os.path.join(workdir, "eval_0.json")) as f:
        assert {r["dataset"] for r in json.load(f)["results"]} == {"morph2", "300w"}

    model = families.load(converted, task_heads=True)
    age_stream = input_pipeline.Stream(sources("morph2", "test", 64), 8, 64, "age_morph2")
    age_batch = input_pipeline.eval_dataset(age_stream)[0][0]
    logits = model({"age_morph2": jnp.asarray(age_batch["image"])})["age_morph2"]["logits"]
    mae = np.mean(np.abs(np.asarray(losses.expected_age(logits)) - age_batch["age"]))
    assert results["morph2"]["mae"] == pytest.approx(float(mae), rel=1e-4)

    src = sources("ibug300w", "test", 128)
    lm = input_pipeline.eval_dataset(input_pipeline.Stream(src, 8, 128, "landmarks_300w"))[0][0]
    pts = model({"landmarks_300w": jnp.asarray(lm["image"])})["landmarks_300w"]["landmarks"]
    px = np.asarray(pts, np.float64) * 128 - 0.5
    pred = np.stack(
        [
            preprocess.warped_to_source(p, m, 0.0, 128)
            for p, m in zip(px, lm["crop_matrix"], strict=True)
        ]
    )
    gt = lm["landmarks_orig"]
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    nme = np.mean(np.linalg.norm(pred - gt, axis=-1).mean(-1) / d)
    assert results["300w"]["full"]["inter_ocular"] == pytest.approx(float(nme), rel=1e-4)
    assert landmark_metrics.get_protocol("300w").num_points == 68


def test_eval_without_any_weights_is_refused(tmp_path):
    config = eval_config("")
    with pytest.raises(FileNotFoundError, match="nothing to evaluate"):
        loop.evaluate_only(config, str(tmp_path), entry.make_sources(config))
