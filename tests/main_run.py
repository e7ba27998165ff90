"""One training run of `main.py` as a user starts it, shared by the tiny-config tests."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(config_file: str, workdir: str, total_steps: int) -> tuple[list[dict], dict]:
    """`python main.py --config=<config_file> --workdir=<workdir>` in a subprocess on one CPU
    device (the other tests' 8 fake devices would make it several times slower), with the test
    session's compile cache -> (every metrics.jsonl row, the final evaluation's row)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cache = os.path.join(ROOT, ".pytest_cache", "xla")
    cmd = [sys.executable, "main.py", f"--config={config_file}", f"--workdir={workdir}"]
    done = subprocess.run(
        [*cmd, f"--compile_cache={cache}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    assert evals and evals[-1]["step"] == total_steps, "no final evaluation logged"
    return rows, evals[-1]
