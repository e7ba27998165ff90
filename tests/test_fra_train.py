"""FRA pretraining through the generic run loop: the tiny config (at reduced depth) learns,
resumes after SIGTERM exactly (teacher and buffers included), gives the same loss on the
(1,1,1) and (8,1,1) meshes; the two-view augmentations are deterministic per (seed,
step, slot) and differ between views; a bad FRA config value fails with a one-line error."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from data.sources import make_sources
from faceptor_jax import checkpoint, loop, sharding, trainers
from faceptor_jax import two_view_pipeline as tv
from faceptor_jax.trainers import fra

TOTAL = 8


def tiny_config(mesh=(-1, 1, 1)):
    from configs import tiny_fra

    c = tiny_fra.get_config()
    c.model.backbone.blocks = (1, 1, 1, 1)  # CI: the tiny width at a quarter of the depth
    c.model.dec_layers = 1
    c.fra.epochs, c.fra.steps_per_epoch, c.fra.warmup_epochs = 4, 2, 1
    c.total_steps = TOTAL
    c.data.synthetic_length = 128
    c.data.synthetic_test_length = 16
    c.data.threads = 1
    c.log_every, c.checkpoint_every, c.keep_checkpoints = 1, 3, 2
    c.eval_every, c.eval_at_end = 0, False  # the evaluation's compile: not in CI time
    c.mesh = mesh
    return c


def _losses(workdir: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _state(trainer, config, workdir: str, step: int) -> dict:
    """The checkpointed state at `step`, on the host."""
    mesh = loop.mesh_from_config(config)
    _, state, shardings = trainer.create(config, mesh, loop.sharding_rules(config))
    ckpts = checkpoint.TrainCheckpoints(workdir, config.keep_checkpoints)
    try:
        return jax.device_get(ckpts.restore(step, state, shardings))
    finally:
        ckpts.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted tiny run and one stopped by SIGTERM at step 5, then resumed."""
    config = tiny_config()
    sources = make_sources(config)
    trainer = fra.FRATrainer()
    root = tmp_path_factory.mktemp("fra")
    straight = str(root / "straight")
    loop.train_and_evaluate(config, straight, sources, trainer=trainer)

    preempted = str(root / "preempted")
    fetched = {"n": 0}
    to_global = tv.to_global

    def preempting(host, mesh):
        fetched["n"] += 1
        if fetched["n"] == 5:
            signal.raise_signal(signal.SIGTERM)
        return to_global(host, mesh)

    tv.to_global = preempting
    try:
        loop.train_and_evaluate(config, preempted, sources, trainer=trainer)
    finally:
        tv.to_global = to_global
    stopped_at = max(_losses(preempted))
    loop.train_and_evaluate(config, preempted, sources, trainer=trainer)  # resumes
    return config, trainer, straight, preempted, stopped_at


def test_tiny_fra_trains_and_its_loss_falls(runs):
    _, _, straight, _, _ = runs
    losses = _losses(straight)
    assert sorted(losses) == list(range(1, TOTAL + 1))
    first, last = np.mean([losses[1], losses[2]]), np.mean([losses[7], losses[8]])
    assert last < first - 0.2, (first, last)
    with open(os.path.join(straight, checkpoint.MODEL_FILE)) as f:
        meta = json.load(f)
    assert meta["kind"] == "fra" and meta["config"]["backbone"]["width"] == 8


def test_resume_after_sigterm_equals_the_uninterrupted_run(runs):
    config, trainer, straight, preempted, stopped_at = runs
    assert stopped_at == 5
    a, b = _losses(straight), _losses(preempted)
    assert [a[s] for s in range(1, TOTAL + 1)] == [b[s] for s in range(1, TOTAL + 1)]
    want, got = _state(trainer, config, straight, TOTAL), _state(trainer, config, preempted, TOTAL)
    for part in ("params", "teacher", "buffers", "opt", "rng", "step"):
        for (path, x), y in zip(
            jax.tree_util.tree_leaves_with_path(want[part]), jax.tree.leaves(got[part]),
            strict=True,
        ):  # fmt: skip
            np.testing.assert_array_equal(y, x, err_msg=f"{part}{jax.tree_util.keystr(path)}")


# (2, 2, 2) is not here yet: its first loss differs by 9e-5 (params sharded over fsdp/model).
@pytest.mark.parametrize("mesh", [(1, 1, 1)])
def test_the_loss_is_the_same_on_every_mesh(runs, mesh):
    """Two steps on `mesh` against the (8,1,1) run's first two losses."""
    config, trainer, straight, _, _ = runs
    config = tiny_config(mesh)
    m = sharding.make_mesh(mesh, jax.devices()[: int(np.prod(mesh))])
    rules = loop.sharding_rules(config)
    run, state, shardings = trainer.create(config, m, rules)
    data = trainer.data(run, trainer.open_sources(config, make_sources(config)), m, 0)
    step = jax.jit(run.train_step, donate_argnums=0, out_shardings=(shardings, None))
    losses = []
    with jax.set_mesh(m):
        for _ in range(2):
            state, metrics = step(state, data.to_device(next(data.iterator)))
            losses.append(float(metrics["loss"]))
    want = _losses(straight)
    np.testing.assert_allclose(losses, [want[1], want[2]], rtol=0, atol=1e-5)


def test_two_views_are_deterministic_per_seed_step_slot_and_differ():
    image = np.random.default_rng(0).integers(0, 256, (80, 80, 3), np.uint8)
    a = tv.two_views(3, 5, 7, image, 64)
    b = tv.two_views(3, 5, 7, image, 64)
    for k in ("view1", "view2"):
        assert a[k].shape == (64, 64, 3) and a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])
    assert np.abs(a["view1"] - a["view2"]).mean() > 1e-2  # independent parameters per view
    for other in (tv.two_views(4, 5, 7, image, 64), tv.two_views(3, 6, 7, image, 64),
                  tv.two_views(3, 5, 8, image, 64)):  # fmt: skip
        assert np.abs(other["view1"] - a["view1"]).mean() > 1e-2


def test_two_view_batches_do_not_depend_on_the_process_split():
    source = [{"image": np.full((40, 40, 3), 10 * i, np.uint8)} for i in range(12)]
    whole = tv.two_view_dataset(source, 4, 32, 3, seed=1, process_index=0, process_count=1)[2]
    halves = [
        tv.two_view_dataset(source, 4, 32, 3, seed=1, process_index=p, process_count=2)[2]
        for p in (0, 1)
    ]
    for k in ("view1", "view2", "index"):
        np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), whole[k])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("fra.lr", 0.0, r"config.fra.lr 0.0: expected > 0"),
        ("fra.warmup_epochs", 9, r"config.fra.warmup_epochs 9: expected 0 <= it < epochs \(4\)"),
        ("total_steps", 7, r"config.total_steps 7: expected fra.epochs × fra.steps_per_epoch = 8"),
        ("fra.batch_size", 12, r"config.fra.batch_size 12: not divisible by the mesh's data axes"),
        ("init.checkpoint", "/x", r"config.init.checkpoint '/x': FRA pretraining starts from"),
    ],
)
def test_a_bad_fra_config_value_is_named(field, value, message):
    config = tiny_config()
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ValueError, match=message):
        trainers.get(config).validate(config, loop.mesh_from_config(config))
