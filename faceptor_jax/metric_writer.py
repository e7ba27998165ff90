"""Metrics to TensorBoard event files (tensorboardX: no TensorFlow needed), a JSONL file and the
console. Only the process given `enabled=True` (process 0) writes.

A resumed run (`resume_step`) first drops the JSONL rows after that step — the steps the stopped
run logged past its last checkpoint, which the resumed run logs again — and any half-written line
a kill left, so `metrics.jsonl` holds each step once."""

import json
import os
from collections.abc import Mapping

from absl import logging


class MetricWriter:
    def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self._tb = self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            path = os.path.join(workdir, "metrics.jsonl")
            if resume_step and os.path.exists(path):
                _truncate_after(path, resume_step)
            self._jsonl = open(path, "a")  # noqa: SIM115

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in scalars.items():
            self._tb.add_scalar(k, float(v), step)
        self._tb.flush()
        self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}))
        self._jsonl.write("\n")
        self._jsonl.flush()

    def print(self, line: str) -> None:
        if self.enabled:
            logging.info("%s", line)
            print(line, flush=True)

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


def _truncate_after(path: str, step: int) -> None:
    """Keep the rows of steps ≤ `step` (and drop unparseable ones), atomically."""
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
                keep = int(row["step"]) <= step
            except (ValueError, KeyError, TypeError):
                keep = False
            kept += [line if line.endswith("\n") else line + "\n"] if keep else []
            dropped += not keep
    if dropped:
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
        logging.info("%s: %d rows after step %d dropped (the resumed run logs them)", path,
                     dropped, step)  # fmt: skip
