"""Inference encodes each face crop once (`model.shared`): the same outputs as the per-task
path (`model({task: images})`, which encodes every task's copy), with a fraction of the
encoder's work. Tiny random models of every family with task heads."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_families import TINY

from faceptor_jax import tasks
from faceptor_jax.model import families, swin, vit

FACEPTOR_TASKS = ("recognition_ms1mv3", "age_morph2", "attributes_celeba", "expression_rafdb",
                  "expression_affectnet", "parsing_lapa", "landmarks_300w")  # fmt: skip
SWINFACE_TASKS = ("recognition_ms1mv2", "age_gender_imdb", "attribute_pairs_celeba",
                  "expression_ordered_rafdb")  # fmt: skip


def _case(kind: str):
    """(model config, inputs {input: images}, reads {task: inputs}) as predict builds them:
    the small crop and its mirror, the large crop."""
    rng = np.random.default_rng(0)
    if kind == "swinface":
        cfg = dataclasses.replace(TINY[kind], tasks=tasks.head_specs(SWINFACE_TASKS))
        small, large, names = 28, None, SWINFACE_TASKS
    else:
        cfg = dataclasses.replace(TINY[kind], tasks=tasks.head_specs(FACEPTOR_TASKS))
        if kind == "naive_faceptor":  # its SwinFace heads read four levels
            cfg = dataclasses.replace(cfg, swin_levels=(0, 1, 1, 1))
        small, large, names = 32, 64, FACEPTOR_TASKS
    crop = jnp.asarray(rng.normal(size=(3, small, small, 3)), jnp.float32)
    inputs = {"small": crop, "small/hflip": crop[:, :, ::-1]}
    if large:
        inputs["large"] = jnp.asarray(rng.normal(size=(3, large, large, 3)), jnp.float32)
    reads = {}
    for n in names:
        big = tasks.get(n).input_size > 112
        reads[n] = ("large",) if big else ("small", "small/hflip") if "recog" in n else ("small",)
    return cfg, inputs, reads


@pytest.mark.parametrize("kind", ["faceptor", "naive_faceptor", "swinface"])
def test_shared_equals_the_per_task_path_encoding_each_input_once(kind, numpy_init, monkeypatch):
    cfg, inputs, reads = _case(kind)
    model = numpy_init(lambda: families.get(kind).build(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    images = {t: jnp.concatenate([inputs[k] for k in ks]) for t, ks in reads.items()}
    per_task = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, images)
    # the same path on another batch composition: float32 matmuls round by their blocking
    alone = {t: x for t, x in images.items() if t != "parsing_lapa"}
    noise = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, alone)

    encoded = []
    trunk = swin.SwinTransformer if kind == "swinface" else vit.ViTEncoder
    original = trunk.__call__

    def counting(self, x, *args, **kwargs):
        encoded.append(x.shape[0])
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(trunk, "__call__", counting)
    shared = jax.jit(lambda s, x: nnx.merge(graphdef, s).shared(x, reads))(state, inputs)
    assert sum(encoded) == sum(x.shape[0] for x in inputs.values()), encoded  # each once
    assert sum(len(ks) for ks in reads.values()) * 3 > 2 * sum(encoded)  # the per-task copies

    assert set(shared) == set(per_task)
    for t in per_task:
        for key, want in per_task[t].items():
            got, want = np.asarray(shared[t][key]), np.asarray(want)
            assert got.shape == want.shape, (t, key)
            scale = max(1.0, float(np.abs(want).max()))
            err = float(np.abs(got - want).max()) / scale
            # ≤ 1e-6 but for float32 rounding of another batch blocking: the per-task path
            # itself moves as much (2e-6 on a heatmap) when one task is left out
            own = noise[t][key] if t in noise else want
            tol = max(1e-6, 1.5 * float(np.abs(np.asarray(own) - want).max()) / scale)
            assert err <= tol, f"{t}/{key}: {err:.3g} > {tol:.3g}"


def test_reads_must_name_inputs_of_one_size(numpy_init):
    cfg, inputs, reads = _case("faceptor")
    model = numpy_init(lambda: families.get("faceptor").build(cfg, nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"reads name input.*missing"):
        model.shared(inputs, {**reads, "age_morph2": ("missing",)})
    with pytest.raises(ValueError, match=r"age_morph2: reads .*one image size"):
        model.shared(inputs, {**reads, "age_morph2": ("small", "large")})
