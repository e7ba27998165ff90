"""Pure-Python reader (and a tiny writer, for tests) of InsightFace/MXNet RecordIO `.rec/.idx`.

Framing: each record is uint32 magic 0xced7230a, uint32 `lrec` (upper 3 bits continuation flag,
lower 29 bits length), the payload, zero padding to 4 bytes. A payload starts with the IRHeader
struct 'IfQQ' (flag, label, id, id2); when flag > 0, `flag` float32 labels follow the header.
`.idx` lines are `key<TAB>byte offset`.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<IfQQ")


class RecordIOError(ValueError):
    pass


def _read_idx(idx_path: str) -> dict[int, int]:
    out = {}
    with open(idx_path, encoding="ascii") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise RecordIOError(f"{idx_path}:{lineno}: expected 'key<TAB>offset', got {line!r}")
            out[int(parts[0])] = int(parts[1])
    return out


class IndexedRecordIO:
    """Random access to the records of a `.rec` through its `.idx` (read-only)."""

    def __init__(self, idx_path: str, rec_path: str):
        self.idx_path, self.rec_path = idx_path, rec_path
        self.offsets = _read_idx(idx_path)
        self._file = open(rec_path, "rb")  # noqa: SIM115 - kept open for random access

    def close(self) -> None:
        self._file.close()

    @property
    def keys(self) -> list[int]:
        return list(self.offsets)

    def read_idx(self, key: int) -> bytes:
        if key not in self.offsets:
            raise KeyError(f"{self.idx_path}: no record {key}")
        self._file.seek(self.offsets[key])
        chunks = []
        while True:
            head = self._file.read(8)
            if len(head) != 8:
                raise RecordIOError(f"{self.rec_path}: truncated record {key}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise RecordIOError(
                    f"{self.rec_path}: record {key} at {self.offsets[key]}: bad magic {magic:#x}, "
                    f"expected {MAGIC:#x}"
                )
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            chunks.append(self._file.read(length))
            self._file.read((4 - length % 4) % 4)
            if cflag in (0, 3):  # whole record, or last part of a split one
                return b"".join(chunks)


def unpack(payload: bytes) -> tuple[tuple[int, np.ndarray | float, int, int], bytes]:
    """payload -> ((flag, label, id, id2), image bytes); label is an array when flag > 0."""
    flag, label, id1, id2 = _HEADER.unpack_from(payload)
    body = payload[_HEADER.size :]
    if flag > 0:
        label = np.frombuffer(body[: 4 * flag], dtype=np.float32)
        body = body[4 * flag :]
    return (flag, label, id1, id2), body


def pack(label, image: bytes, id1: int = 0) -> bytes:
    """Inverse of `unpack` (flag 0 for a scalar label, else len(label))."""
    if np.ndim(label) == 0:
        return _HEADER.pack(0, float(label), id1, 0) + image
    arr = np.asarray(label, np.float32)
    return _HEADER.pack(arr.size, 0.0, id1, 0) + arr.tobytes() + image


def write(idx_path: str, rec_path: str, records: list[tuple[int, bytes]]) -> None:
    """Write (key, payload) records with `.idx` offsets (test fixtures)."""
    with open(rec_path, "wb") as rec, open(idx_path, "w", encoding="ascii") as idx:
        for key, payload in records:
            idx.write(f"{key}\t{rec.tell()}\n")
            rec.write(struct.pack("<II", MAGIC, len(payload)))
            rec.write(payload + b"\0" * ((4 - len(payload) % 4) % 4))
