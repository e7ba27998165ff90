"""The tiny demo config learns every task: losses fall and every test metric beats chance.

One end-to-end run of the README's command, `python main.py --config=configs/tiny.py`, in a
subprocess on one CPU device as a user runs it (the 8 fake devices of the other tests would
make it several times slower); about 6 minutes on 2 cores. Chance levels come from
the synthetic test sets themselves: the best constant age, a class-prior guesser for attributes
(mA 50%) and parsing (F1 = the class's pixel share), all landmarks at the crop centre (what an
untrained soft-argmax predicts), 1/7 for expression, 50% for verification.
"""

import numpy as np
import pytest
from main_run import run_main

from configs import tiny
from data import sources as entry
from faceptor_jax import tasks


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = tiny.get_config()
    workdir = str(tmp_path_factory.mktemp("tiny"))
    rows, final = run_main("configs/tiny.py", workdir, config.total_steps)
    return config, rows, final


def _test_examples(config, task: str, limit: int | None = None) -> list[dict]:
    t = config.tasks[task]
    source = entry.make_sources(config)(tasks.get(task).dataset, "test", t.image_size)
    rng = np.random.default_rng(0)
    n = len(source) if limit is None else min(limit, len(source))
    return [tasks.transform(task, source[i], rng, False, t.image_size) for i in range(n)]


def test_every_task_loss_falls(run):
    config, rows, _ = run
    train_rows = [r for r in rows if "loss/total" in r]
    assert len(train_rows) >= 50, f"only {len(train_rows)} logged steps"
    k = len(train_rows) // 10  # average windows: single batches are noisy
    for name in config.tasks:
        first = np.mean([r[f"loss/{name}"] for r in train_rows[:k]])
        last = np.mean([r[f"loss/{name}"] for r in train_rows[-k:]])
        assert last < 0.9 * first, f"{name}: loss {first:.4g} -> {last:.4g} did not fall by 10%"


def test_expression_beats_chance(run):
    _, _, ev = run
    accs = [ev[f"eval/{ds}/accuracy"] for ds in ("affectnet", "rafdb")]
    assert np.mean(accs) > 100 / 7 + 5, accs  # 256 test faces each: chance ± ~2.2%


def test_age_beats_best_constant(run):
    config, _, ev = run
    ages = np.array([e["age"] for e in _test_examples(config, "age_morph2")])
    constant_mae = np.mean(np.abs(ages - np.median(ages)))  # the best constant prediction
    assert ev["eval/morph2/mae"] < 0.8 * constant_mae, (ev["eval/morph2/mae"], constant_mae)


def test_attributes_beat_the_prior(run):
    _, _, ev = run
    assert ev["eval/celeba/mA"] > 52.0, ev["eval/celeba/mA"]  # a prior guesser scores 50


def test_verification_beats_chance(run):
    _, _, ev = run
    accs = [ev[f"eval/{s}/accuracy"] for s in ("lfw", "cfp_fp", "agedb_30", "calfw")]
    assert np.mean(accs) > 0.55, accs


def test_parsing_segments_face_and_hair(run):
    config, _, ev = run
    masks = np.stack([e["mask"] for e in _test_examples(config, "parsing_celebamaskhq", 64)])
    for name, label in (("face", 2), ("hair", 14)):
        share = np.mean(masks == label)  # F1 of a guesser drawing labels from the prior
        f1 = ev[f"eval/celebamask_hq/per_class/{name}"]
        assert f1 > share + 0.15, (name, f1, share)


def test_landmarks_beat_the_untrained_centre(run):
    config, _, ev = run
    examples = _test_examples(config, "landmarks_300w")
    batch = {
        k: np.stack([e[k] for e in examples]) for k in ("crop_matrix", "landmarks_orig", "box")
    }
    centre = {"landmarks": np.full((len(examples), 68, 2), 0.5)}
    size = config.tasks.landmarks_300w.image_size
    acc = tasks.get("landmarks_300w").type.evaluate(centre, batch, "ibug300w", size)
    untrained = acc.compute("300w")["full"]["inter_ocular"]
    nme = ev["eval/300w/full/inter_ocular"]
    assert nme < 0.6 * untrained, (nme, untrained)
