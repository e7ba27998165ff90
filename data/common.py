"""Shared pieces of the TFDS builders: file checks, image bytes, the base builder.

Every builder reads the official manual download in the exact layout the original's loaders
expect and
writes ArrayRecord without TensorFlow: images are stored as encoded bytes (the original JPEG/PNG
bytes when the pixels are used as-is, PNG we encode when the original code transforms them at load
time). A missing or malformed file raises with its path and what was expected; a corrupt image is
reported, skipped and counted (`CorruptImages`), never silently.
"""

from __future__ import annotations

import abc
import dataclasses
import io
import logging
import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

log = logging.getLogger("data")


class ManualDownloadError(FileNotFoundError):
    """A file of the manual download is missing or malformed."""


def need(path: str, what: str) -> str:
    """Return `path` if it exists, else stop naming it and what it should be."""
    if not os.path.exists(path):
        raise ManualDownloadError(f"{path}: missing; expected {what}")
    return path


def read_lines(path: str, what: str) -> list[str]:
    with open(need(path, what), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def malformed(path: str, lineno: int, expected: str, got: str) -> ManualDownloadError:
    return ManualDownloadError(f"{path}:{lineno}: malformed line; expected {expected}, got {got!r}")


def encode_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


@dataclasses.dataclass
class CorruptImages:
    """Counts images that failed to decode; reported once per split."""

    paths: list[str] = dataclasses.field(default_factory=list)

    def check(self, data: bytes | None, path: str) -> bytes | None:
        """The bytes if they decode as an image, else None (reported, counted)."""
        try:
            if data is None:
                with open(need(path, "an image file"), "rb") as f:
                    data = f.read()
            with Image.open(io.BytesIO(data)) as img:
                img.load()
            return data
        except ManualDownloadError:
            raise
        except Exception as e:  # PIL raises many types for bad files
            log.warning("corrupt image skipped: %s (%s)", path, e)
            self.paths.append(path)
            return None

    def report(self, name: str, split: str) -> None:
        if self.paths:
            msg = f"{name}/{split}: skipped {len(self.paths)} corrupt image(s): {self.paths[:20]}"
            log.warning(msg)
            print(msg)


def image_feature(channels: int = 3) -> tfds.features.Image:
    return tfds.features.Image(shape=(None, None, channels))


def tensor(shape, dtype=np.float32) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=tuple(shape), dtype=dtype)


def scalar(dtype=np.int64) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=(), dtype=dtype)


class ManualBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """Base of every builder: features + per-split example generators from `manual_dir`.

    Subclasses define `name`, `FEATURES` (dict of tfds features), `SPLITS` (split names) and
    `examples(manual_dir, split, corrupt)` yielding (key, example); `image_path` keys in an example
    are read, checked and replaced by their bytes under `image`.
    """

    VERSION = tfds.core.Version("1.0.0")
    FEATURES: ClassVar[dict] = {}
    SPLITS: tuple[str, ...] = ("train", "test")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place the official download in manual_dir (see data/README)."

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict(dict(self.FEATURES))
        )

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        need(manual_dir, f"the {self.name} manual download directory")
        self.check_layout(manual_dir)
        return {split: self._generate_examples(manual_dir, split) for split in self.SPLITS}

    def check_layout(self, manual_dir: str) -> None:
        """Fail before writing anything when a top-level file is missing."""

    def _generate_examples(self, manual_dir: str, split: str) -> Iterator:
        corrupt = CorruptImages()
        for key, example in self.examples(manual_dir, split, corrupt):
            if "image_path" in example:
                data = corrupt.check(None, example.pop("image_path"))
                if data is None:
                    continue
                example["image"] = data
            yield key, example
        corrupt.report(self.name, split)

    @abc.abstractmethod
    def examples(self, manual_dir: str, split: str, corrupt: CorruptImages) -> Iterator:
        """Yield (unique key, example dict) of one split."""


class ListBuilder(ManualBuilder, abc.ABC):
    """Datasets that are a list of (image path, labels): 112-px age/attribute/expression sets."""

    @abc.abstractmethod
    def items(self, manual_dir: str, split: str) -> list[tuple[str, dict]]:
        """[(image path relative to manual_dir, label fields)] of one split."""

    def examples(self, manual_dir, split, corrupt):
        for i, (rel, labels) in enumerate(self.items(manual_dir, split)):
            path = os.path.join(manual_dir, "data", rel)
            yield f"{i}:{rel}", {"image_path": path, "filename": rel, **labels}  # lists may repeat


def split_label_lines(path: str, what: str, expected: str, sep: str | None = None, skip: int = 0):
    """Lines of a label file split into fields, with line numbers (empty lines skipped)."""
    for i, line in enumerate(read_lines(path, what)[skip:], start=skip + 1):
        if not line.strip():
            continue
        fields = line.strip().split(sep)
        if len(fields) < 2:
            raise malformed(path, i, expected, line)
        yield i, fields


def text() -> tfds.features.Text:
    return tfds.features.Text()
