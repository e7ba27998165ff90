"""SwinFace's tasks: the age blend loss against its formula, age_gender's loss (blend + the
Gender pair's CE over known genders, pooled with CelebA's) and its gender field through the
pipeline, the attribute and expression orders by name, and predict (its JSON and faces.csv) on
a converted release."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import skimage
import test_predict_tables as table
from flax import nnx
from PIL import Image

from faceptor_jax import datasets, input_pipeline, predict, tasks
from faceptor_jax.model.swinface import ATTRIBUTES
from faceptor_jax.tasks import age_gender, age_regression, attribute_pairs, expression_ordered


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


def _ce(pair, label):  # softmax CE of one 2-logit pair
    return float(np.logaddexp(pair[0], pair[1]) - pair[label])


def test_age_gender_loss_is_blend_plus_gender_ce_of_known_rows():
    rng = np.random.default_rng(0)
    b = 4
    raw = {
        "age": jnp.asarray([20.0, 35.0, 50.0, 8.0]),
        "attributes": jnp.asarray(rng.normal(size=(b, 40, 2)), jnp.float32),
        "expression": jnp.asarray(rng.normal(size=(b, 7)), jnp.float32),
        "embedding": jnp.asarray(rng.normal(size=(b, 8)), jnp.float32),
    }
    batch = {"age": jnp.asarray([22.0, 30.0, 58.0, 8.0]), "gender": jnp.asarray([1, 0, -1, 1])}
    # 96 age_gender rows + 32 CelebA rows train Gender: the age side carries 3/4 of its mean
    config = ml_collections.ConfigDict({"total_steps": 100, "tasks": {
        "age_gender_imdb": {"batch_size": 64}, "age_gender_morph2": {"batch_size": 32},
        "attribute_pairs_celeba": {"batch_size": 32}, "recognition_ms1mv2": {"batch_size": 8},
    }})  # fmt: skip
    ctx = tasks.LossContext(task="age_gender_morph2", image_size=112, config=config, step=25)
    lam = 0.25
    d2 = (np.asarray(raw["age"]) - np.asarray(batch["age"])) ** 2
    blend = np.mean((1 - lam) / 2 * d2 + lam * (1 - np.exp(-d2 / (2 * 3.0**2))))
    g = ATTRIBUTES.index("Gender")
    x = np.asarray(raw["attributes"])
    ce = np.mean([_ce(x[i, g], label) for i, label in ((0, 1), (1, 0), (3, 1))])
    loss = jax.jit(lambda r: age_gender.loss(r, batch, ctx))  # jitted: one compile, not 100
    got = loss(raw)
    assert float(got) == pytest.approx(blend + 0.75 * ce, rel=1e-5)
    # the unknown row's Gender logits do not matter
    other = dict(raw, attributes=raw["attributes"].at[2, g].set(9.0))
    assert float(loss(other)) == pytest.approx(float(got), rel=1e-6)

    grads = jax.jit(jax.grad(lambda r: age_gender.loss(r, batch, ctx)))(raw)
    touched = np.abs(np.asarray(grads["attributes"])).sum(axis=(0, 2)) > 0
    assert touched.tolist() == [i == g for i in range(40)]  # only the Gender pair
    assert np.all(np.asarray(grads["attributes"])[2] == 0)  # not from the unknown row
    assert np.abs(np.asarray(grads["age"])[:3]).min() > 0  # the age head (row 3: d = 0)
    assert not np.any(np.asarray(grads["expression"])) and not np.any(grads["embedding"])

    # CelebA's side of the same mean: its Gender term carries the other 1/4
    labels = np.asarray(rng.integers(0, 2, (b, 40)), np.int32)
    celeba = tasks.LossContext(task="attribute_pairs_celeba", image_size=112, config=config)
    full = tasks.LossContext(task="attribute_pairs_celeba", image_size=112)  # no age_gender
    pair_batch = {"attributes": jnp.asarray(labels)}
    male = datasets.CELEBA_ATTRIBUTES.index("Male")
    gender_ce = np.mean([_ce(x[i, g], labels[i, male]) for i in range(b)])
    shared, alone = jax.jit(
        lambda r: [attribute_pairs.loss(r, pair_batch, c) for c in (celeba, full)]
    )(raw)
    assert float(alone - shared) == pytest.approx(0.75 * gender_ce, rel=1e-4)


def test_age_gender_stream_delivers_the_records_gender():
    """A MORPH II record as its build stores it (gender 1/0/−1) -> the batch's `gender`, the age
    beside it; the age test sets (no gender field) transform with −1."""
    image = np.full((112, 112, 3), 128, np.uint8)
    genders = {20: 1, 30: 0, 40: -1, 50: 1}
    source = [{"image": image, "age": a, "gender": g} for a, g in genders.items()]
    stream = input_pipeline.Stream(source, 4, 32, "age_gender_morph2")
    ds, _ = input_pipeline.mixed_dataset({"age_gender_morph2": stream}, 1, data_parallel=1)
    batch = ds[0]["age_gender_morph2"]
    assert batch["gender"].dtype == np.int32 and batch["gender"].shape == (4,)
    assert [genders[int(a)] for a in batch["age"]] == batch["gender"].tolist()
    test = tasks.transform("age_gender_imdb", {"image": image, "age": 33.0}, None, False, 32)
    assert test["gender"] == -1 and test["age"] == 33.0
    with pytest.raises(FileNotFoundError, match="MORPH II records have no 'gender'"):
        tasks.transform("age_gender_morph2", {"image": image, "age": 33}, None, True, 32)


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
    # the run's table: age, expression, gender (CelebA's Male) and the 40 attributes
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.png")
    predict.run(p, [str(tmp_path / "astronaut.png")], str(tmp_path / "out"))
    header = [*table.BASE, "age", *table.EXPRESSION, *table.ATTRIBUTES]
    (row,) = table.check_tables(tmp_path / "out", header)
    assert float(row["gender"]) == attrs["Male"] and row["expression"] == expr["label"]


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
    forward = jax.jit(
        lambda g, s, x: nnx.merge(g, s)(x)["attribute_pairs_celeba"], static_argnums=0
    )
    got = forward(*nnx.split(run.merge(state["params"]["model"], state["model_state"])), x)
    want = forward(*nnx.split(families.load(model_dir, task_heads=True)), x)
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
