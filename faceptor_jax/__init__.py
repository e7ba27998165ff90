"""faceptor_jax: Faceptor (ECCV 2024), a generalist face-perception model, in JAX/Flax NNX."""

__version__ = "0.1.0"
