"""Test setup: 8 fake CPU devices before JAX is imported, absl flags parsed for grain workers."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest
from absl import flags

# grain's multiprocessing reads absl flags; under pytest nobody parses them.
flags.FLAGS.mark_as_parsed()


def _numpy_init(ctor, seed: int = 0):
    """Build `ctor()`'s module with random numpy weights instead of running its initializers.

    On small CPUs each distinct initializer shape costs an XLA compile (~0.2 s); a 13-task model
    has ~100 of them. Weights: N(0, 1/fan_in) matrices, norm scales U(0.5, 1.5), biases N(0, 0.1²),
    BatchNorm running means N(0, 0.1²) and variances U(0.5, 1.5).
    """
    import numpy as np
    from flax import nnx

    model = nnx.eval_shape(ctor)
    state = nnx.state(model)
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name, shape = str(path[-1].key), x.shape
        if name in ("scale", "var"):
            v = rng.uniform(0.5, 1.5, shape)
        elif len(shape) <= 1 or name in ("mean", "bias", "qkv_bias", "out_bias"):
            v = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = max(int(np.prod(shape[:-1])) // (shape[0] if len(shape) > 2 else 1), 1)
            v = rng.normal(0.0, fan_in**-0.5, shape)
        return jax.numpy.asarray(v, x.dtype)  # jax arrays: numpy ones would be updated in place

    values = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, values)
    nnx.update(model, state)
    return model


@pytest.fixture(scope="session")
def numpy_init():
    """`numpy_init(ctor, seed=0)`: a module with random weights and no initializer compiles."""
    return _numpy_init


# Identical programs (the same train step in several tests) compile once per session.
jax.config.update("jax_compilation_cache_dir", os.path.join(os.getcwd(), ".pytest_cache", "xla"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
