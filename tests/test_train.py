"""Training: the same loss on every mesh, exact resume after SIGTERM, clear config errors."""

import dataclasses
import json
import os
import signal

import jax
import numpy as np
import pytest
from flax import nnx

from configs import tiny
from data import sources as entry
from faceptor_jax import input_pipeline, loop, sharding, train
from faceptor_jax.checkpoint import flatten_paths
from faceptor_jax.trainers import multitask


def micro_config(steps: int = 4):
    """The tiny recipe, smaller still: 4 tasks, 32-/64-px images, a 1-layer decoder."""
    c = tiny.get_config()
    c.model.encoder.update(width=32, heads=2, mlp_dim=64, pe_grid=4)
    c.model.decoder.update(hidden=16, heads=2, ffn=32, layers=1)
    c.model.embed_dim = 16
    keep = ("recognition_ms1mv3", "age_morph2", "parsing_celebamaskhq", "landmarks_300w")
    for name in list(c.tasks):
        if name not in keep:
            del c.tasks[name]
    c.tasks.recognition_ms1mv3.batch_size = 8
    c.tasks.age_morph2.batch_size = 8
    for name, t in c.tasks.items():
        t.image_size = 64 if name.startswith(("parsing", "landmarks")) else 32
        t.eval_batch_size = 8
    c.total_steps = steps
    c.optim.total_steps, c.optim.warmup_steps = steps, 1
    c.log_every, c.checkpoint_every, c.eval_every, c.eval_at_end = 1, 2, 0, False
    c.data.threads = 1
    c.data.synthetic_test_length = 64
    return c


def _batch(config, mesh_dp: int = 1):
    streams = multitask.check_sources(config, entry.make_sources(config))
    ds, layouts = input_pipeline.mixed_dataset(streams, config.total_steps)
    return ds, layouts


@pytest.fixture(scope="module")
def reference_losses():
    return _losses_on_mesh((1, 1, 1))


def _losses_on_mesh(shape):
    config = micro_config()
    mesh = sharding.make_mesh(shape, jax.devices()[: int(np.prod(shape))])
    ds, layouts = _batch(config)
    trainer, abstract = train.make_trainer(config, mesh)
    out = []
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, shardings = train.create_state(trainer, abstract)
        step = jax.jit(trainer.train_step, donate_argnums=0, out_shardings=(shardings, None))
        for i in range(2):
            batch = input_pipeline.to_global(ds[i], mesh, layouts)
            state, metrics = step(state, batch)
            out.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return out


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 4, 1), (2, 2, 2)])
def test_same_loss_on_every_mesh(reference_losses, shape):
    got = _losses_on_mesh(shape)
    for step, (want, have) in enumerate(zip(reference_losses, got, strict=True)):
        for k in want:
            if k.startswith("loss/"):
                assert have[k] == pytest.approx(want[k], abs=1e-5, rel=1e-5), (step, k)
    assert np.isfinite(got[-1]["loss/total"])


def _step_losses(workdir: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["loss/total"] for r in rows if "loss/total" in r}


def test_sigterm_saves_and_resume_equals_uninterrupted(tmp_path, monkeypatch):
    config = micro_config()  # every training test uses this program: one compile (cache)
    sources = entry.make_sources(config)
    straight = _step_losses_after(loop.train_and_evaluate, config, str(tmp_path / "a"), sources)

    calls = {"n": 0}
    real = input_pipeline.to_global

    def preempt_at_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGTERM)  # what a scheduler's preemption sends
        return real(*args, **kwargs)

    workdir = str(tmp_path / "b")
    monkeypatch.setattr(input_pipeline, "to_global", preempt_at_third_step)
    loop.train_and_evaluate(config, workdir, sources)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
    assert max(_step_losses(workdir)) == 3
    monkeypatch.setattr(input_pipeline, "to_global", real)
    loop.train_and_evaluate(config, workdir, sources)  # resumes at step 3
    resumed = _step_losses(workdir)
    assert resumed[4] == pytest.approx(straight[4], abs=1e-6)


def _step_losses_after(fn, config, workdir, sources):
    fn(config, workdir, sources)
    return _step_losses(workdir)


def test_unknown_task_is_named_before_any_compute():
    config = micro_config()
    config.tasks["age_imdb"] = dict(config.tasks.age_morph2)
    with pytest.raises(ValueError, match=r"unknown task 'age_imdb'; valid tasks: .*age_morph2"):
        multitask.validate(config, sharding.make_mesh((8, 1, 1)))


def test_batch_not_divisible_by_the_data_axes():
    config = micro_config()
    config.tasks.age_morph2.batch_size = 12
    with pytest.raises(
        ValueError, match=r"age_morph2: batch 12 is not divisible .* \(data×fsdp = 8\)"
    ):
        multitask.validate(config, sharding.make_mesh((8, 1, 1)))


def test_missing_dataset_is_named(tmp_path):
    config = micro_config()
    config.data.source, config.data.data_dir = "tfds", str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"morph2: no built dataset"):
        multitask.check_sources(config, entry.make_sources(config))


def test_nonfinite_loss_names_step_and_task(tmp_path):
    config = micro_config()
    make = entry.make_sources(config)

    class NaNAges:  # a corrupt label file: every age is NaN
        def __init__(self, source):
            self.source = source

        def __len__(self):
            return len(self.source)

        def __getitem__(self, i):
            return self.source[i] | {"age": float("nan")}

    def sources(dataset, split, size):
        src = make(dataset, split, size)
        return NaNAges(src) if dataset == "morph2" else src

    with pytest.raises(loop.NonFiniteLoss, match=r"non-finite loss at step 1 in task age_morph2"):
        loop.train_and_evaluate(config, str(tmp_path), sources)


def _dot_count(jaxpr) -> int:
    return str(jaxpr).count("dot_general")


def test_stage2_backward_skips_frozen_parameters():
    """Only `trainable` params get gradients (same values as the full backward), the frozen
    encoder's backward is not computed at all, and one step changes only the trainable leaves."""
    config = micro_config()
    del config.tasks["parsing_celebamaskhq"], config.tasks["landmarks_300w"]
    config.model.new_levels = (1, 3)
    config.trainable = r"model\.layer_attention\.new_input_proj\..*"
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    ds, layouts = _batch(config)
    trainer, abstract = train.make_trainer(config, mesh)
    full_config = config.copy_and_resolve_references()
    full_config.trainable = ""
    full = dataclasses.replace(trainer, config=full_config)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, _ = train.create_state(trainer, abstract)
        batch = input_pipeline.to_global(ds[0], mesh, layouts)
        args = (state["params"], state["model_state"], batch, state["rng"])

        def grads(t):
            return jax.grad(lambda p, *a: t.task_losses(p, *a)[0])(*args)

        stage2, everything = grads(trainer), grads(full)
        dots2 = _dot_count(jax.make_jaxpr(lambda: grads(trainer))())
        dots_all = _dot_count(jax.make_jaxpr(lambda: grads(full))())
        new_state, _ = jax.jit(trainer.train_step)(state, batch)

    flat2 = flatten_paths(jax.device_get(stage2))
    flat_all = flatten_paths(jax.device_get(everything))
    trainable = [k for k in flat2 if ".new_input_proj." in f".{k}."]
    assert len(trainable) == 3, trainable  # kernel, bias, embed
    for k, g in flat2.items():
        if k in trainable:
            assert np.abs(g).max() > 0, k
            np.testing.assert_allclose(g, flat_all[k], rtol=1e-5, atol=1e-7, err_msg=k)
        else:
            assert not np.any(g), f"frozen {k} got a gradient"
    assert dots2 < 0.75 * dots_all, (dots2, dots_all)  # the encoder's backward is gone
    before = flatten_paths(jax.device_get(state["params"]))
    after = flatten_paths(jax.device_get(new_state["params"]))
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == set(trainable), changed
