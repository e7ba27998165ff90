"""The tiny SwinFace config learns every task, and its workdir predicts and exports.

One run of `python main.py --config=configs/tiny_swinface.py` in a subprocess on one CPU device
(as a user runs it; ~2 minutes on 2 cores), shared by the tests below. Chance levels come from
the synthetic test sets: the best constant age, mA 50% for a prior guesser of the 40 attributes,
1/7 for expression, 50% for verification.
"""

import numpy as np
import pytest
import skimage
from main_run import run_main

from configs import tiny_swinface
from data import sources as entry
from faceptor_jax import export, predict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = tiny_swinface.get_config()
    workdir = str(tmp_path_factory.mktemp("tiny_swinface"))
    rows, final = run_main("configs/tiny_swinface.py", workdir, config.total_steps)
    return config, workdir, rows, final


def test_every_task_loss_falls(run):
    config, _, rows, _ = run
    train_rows = [r for r in rows if "loss/total" in r]
    assert len(train_rows) >= 20, f"only {len(train_rows)} logged steps"
    k = len(train_rows) // 10  # average windows: single batches are noisy
    for name in config.tasks:
        first = np.mean([r[f"loss/{name}"] for r in train_rows[:k]])
        last = np.mean([r[f"loss/{name}"] for r in train_rows[-k:]])
        assert last < 0.9 * first, f"{name}: loss {first:.4g} -> {last:.4g} did not fall by 10%"


def test_every_metric_beats_chance(run):
    config, _, _, ev = run
    size = config.tasks.age_gender_imdb.image_size
    source = entry.make_sources(config)("clap2015", "test", size)  # the age stream's test set
    ages = np.array([float(source[i]["age"]) for i in range(len(source))])
    constant_mae = np.mean(np.abs(ages - np.median(ages)))  # the best constant prediction
    assert ev["eval/clap2015/mae"] < 0.8 * constant_mae, (ev["eval/clap2015/mae"], constant_mae)
    assert ev["eval/rafdb/accuracy"] > 100 / 7 + 5, ev["eval/rafdb/accuracy"]
    assert ev["eval/celeba/mA"] > 53.0, ev["eval/celeba/mA"]
    accs = [ev[f"eval/{s}/accuracy"] for s in ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")]
    assert np.mean(accs) > 0.55, accs


def test_workdir_predicts_and_exports(run, tmp_path):
    """predict on the training workdir gives every SwinFace output; export writes a model
    directory that predicts the same values."""
    _, workdir, _, _ = run
    photo = skimage.data.astronaut()
    faces, masks = predict.Predictor(workdir)(photo)
    assert len(faces) == 1 and not masks
    f = faces[0]
    assert {"embedding", "age", "expression", "attributes"} <= set(f)
    assert "parsing" not in f and "landmarks" not in f
    out = str(tmp_path / "exported")
    assert export.main([workdir, out]) == 0
    again, _ = predict.Predictor(out)(photo)
    for key in ("age", "embedding"):
        (a,), (b,) = f[key].values(), again[0][key].values()
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
