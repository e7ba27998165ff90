"""Test setup: 8 fake CPU devices before JAX is imported, absl flags parsed for grain workers."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags

# grain's multiprocessing reads absl flags; under pytest nobody parses them.
flags.FLAGS.mark_as_parsed()
