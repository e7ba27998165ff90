"""One of two JAX processes training the micro config together (run by test_multihost.py).

python tests/two_process_train.py PORT PROCESS_ID WORKDIR
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax
from absl import flags

flags.FLAGS.mark_as_parsed()


def main() -> None:
    port, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.device_count() == 8 and jax.local_device_count() == 4
    from test_train import micro_config

    from data import sources as entry
    from faceptor_jax import loop

    config = micro_config()
    loop.train_and_evaluate(config, workdir, entry.make_sources(config))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
