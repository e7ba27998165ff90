"""SwinFace's tasks: the age blend loss against its formula, the attribute and expression orders
by name, and one shared tiny SwinFace run (`configs/tiny_swinface.py`, shortened) in which every
task's loss falls and its metric beats chance, then predict and export on its workdir."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
import skimage

from faceptor_jax import datasets, predict, tasks
from faceptor_jax.model.swinface import ATTRIBUTES
from faceptor_jax.tasks import age_regression, attribute_pairs, expression_ordered

STEPS = 150


def test_age_blend_loss_is_the_formula():
    pred, target = np.array([20.0, 35.0, 50.0]), np.array([22.0, 30.0, 58.0])
    for step, total in ((0, 80000), (20000, 80000), (80000, 80000)):
        lam = step / total
        d2 = (pred - target) ** 2
        want = np.mean((1 - lam) / 2 * d2 + lam * (1 - np.exp(-d2 / (2 * 3.0**2))))
        got = age_regression.blend_loss(
            jnp.asarray(pred), jnp.asarray(target), age_regression.blend_weight(step, total)
        )
        np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_attribute_pairs_map_to_celeba_by_name():
    celeba = datasets.CELEBA_ATTRIBUTES
    # pair a of the model's output carries a's index: after the mapping, CelebA's j-th
    # attribute must be the model's pair of the same name
    pairs = np.stack([np.zeros(40), np.arange(40.0)], -1)[None]  # [1, 40, 2]
    mapped = attribute_pairs.in_dataset_order(pairs, celeba)[0, :, 1].astype(int)
    assert ATTRIBUTES[mapped[celeba.index("Male")]] == "Gender"
    assert ATTRIBUTES[mapped[celeba.index("5_o_Clock_Shadow")]] == "Five O'Clock Shadow"
    for j, name in enumerate(celeba):
        if name not in ("Male", "5_o_Clock_Shadow"):
            assert ATTRIBUTES[mapped[j]].replace(" ", "_") == name
    # the loss sees labels in CelebA order: a "Male" label must train the Gender pair
    labels = np.zeros((1, 40), np.int32)
    labels[0, celeba.index("Male")] = 1
    x = np.zeros((1, 40, 2), np.float32)
    x[0, ATTRIBUTES.index("Gender")] = (0.0, 9.0)  # sure of "yes" on Gender only
    ce = float(attribute_pairs.pair_loss(attribute_pairs.in_dataset_order(x, celeba), labels))
    assert ce == pytest.approx(39 * np.log(2) + np.log1p(np.exp(-9.0)), rel=1e-5)


def test_expression_outputs_are_rafdb_order():
    logits = np.eye(7)[None, datasets.RAFDB_ORDER.index("happy")]  # the model says happy
    mapped = expression_ordered.in_dataset_order(logits, datasets.EXPRESSIONS)
    assert datasets.EXPRESSIONS[int(np.argmax(mapped))] == "happy"


def test_predict_on_a_converted_swinface_model(tmp_path):
    """The released container converted (`python -m convert swinface`) predicts every SwinFace
    task on a photo and nothing else; outputs carry the dataset's label names."""
    from convert.__main__ import main as convert_main

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "swin", "swinface.pt")
    out = tmp_path / "model"
    assert convert_main(["swinface", "--src", fixture, "--dst", str(out)]) == 0
    p = predict.Predictor(out)
    assert sorted(p.tasks) == sorted(tasks.SWINFACE)
    faces, masks = p(skimage.data.astronaut())
    assert len(faces) == 1 and not masks
    f = faces[0]
    assert set(f) >= {"embedding", "age", "expression", "attributes"}
    assert "parsing" not in f and "landmarks" not in f
    (e,) = f["embedding"].values()
    assert len(e) == 24 and abs(np.linalg.norm(e) - 1) < 1e-3  # the fixture's embedding width
    (age,) = f["age"].values()
    assert isinstance(age, float)
    (attrs,) = f["attributes"].values()
    assert list(attrs) == list(datasets.CELEBA_ATTRIBUTES)
    ((name, expr),) = f["expression"].items()
    assert list(expr["probabilities"]) == list(tasks.get(name).labels)


def test_recipe_config_evaluates_a_converted_release(tmp_path):
    """`main.py --mode=eval --config=configs/swinface.py --config.init.checkpoint=<converted>`:
    the recipe's 8 streams are cut to the release's 4 tasks, the weights land in the heads
    they came from (an `nnx.List` of 42 heads: "10" must not sort before "2"), and every
    task's table is printed from the release's own outputs."""
    from configs import swinface
    from convert.__main__ import main as convert_main
    from faceptor_jax import checkpoint, loop
    from faceptor_jax.model import families
    from faceptor_jax.trainers import multitask

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "swin", "swinface.pt")
    model_dir = str(tmp_path / "model")
    assert convert_main(["swinface", "--src", fixture, "--dst", model_dir]) == 0
    config = swinface.get_config()
    config.init.checkpoint = model_dir
    config.data.source = "synthetic"
    config.data.synthetic_test_length = 16
    fitted = multitask.checkpoint_architecture(config, model_dir)
    assert sorted(fitted.tasks) == sorted(tasks.SWINFACE)

    trainer = multitask.MultiTask()
    mesh, rules = loop.mesh_from_config(fitted), loop.sharding_rules(fitted)
    run, state, _ = trainer.create(fitted, mesh, rules)
    state = checkpoint.init_from(fitted.init, state)
    images = np.random.default_rng(0).normal(size=(2, 112, 112, 3)).astype(np.float32)
    x = {"attribute_pairs_celeba": images}
    got = run.merge(state["params"]["model"], state["model_state"])(x)["attribute_pairs_celeba"]
    want = families.load(model_dir, task_heads=True)(x)["attribute_pairs_celeba"]
    for key in ("embedding", "age", "expression", "attributes"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), atol=1e-5)

    from data.sources import make_sources

    results = loop.evaluate_only(config, str(tmp_path / "eval"), make_sources(config))
    by_task = {}
    for r in results:
        by_task.setdefault(r.task, set()).add(r.dataset)
    assert set(by_task) == {"verification", "age", "expression", "attributes"}, by_task
    assert {"lfw", "cfp_fp", "agedb_30"} <= by_task["verification"]
    assert os.path.exists(os.path.join(model_dir, checkpoint.VERIFICATION_FILE))
