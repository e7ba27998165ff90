"""Metrics to TensorBoard event files (tensorboardX: no TensorFlow needed), a JSONL file and the
console. Only the process given `enabled=True` (process 0) writes."""

import json
import os
from collections.abc import Mapping

from absl import logging


class MetricWriter:
    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._tb = self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

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
