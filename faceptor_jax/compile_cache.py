"""The persistent XLA compilation cache that `main.py` and predict share (`--compile_cache`): a
restart (resume, eval, another predict call) reuses compiled programs instead of compiling again."""

import os

DEFAULT = os.path.join("~", ".cache", "faceptor_jax", "xla")
HELP = (
    "Persistent XLA compilation cache: a restart (resume, eval, predict) reuses compiled "
    "programs instead of compiling for minutes. Empty to disable."
)


def enable(path: str) -> None:
    """Use `path` (`~` expanded) as JAX's persistent compilation cache; '' leaves it off. A
    cache this process already has (JAX_COMPILATION_CACHE_DIR, or a program calling predict's
    `main`, e.g. the tests) is kept."""
    import jax

    if not path or jax.config.jax_compilation_cache_dir:
        return

    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
