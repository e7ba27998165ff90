"""Face verification (insightface protocol, as the original): safe `.bin` reader, 10-fold accuracy
with best-threshold search, TAR@FAR, and a mergeable embedding accumulator. Host-side numpy.

Protocol: embedding = f(image) + f(hflip(image)), L2-normalised; pair distance = squared L2 between
embeddings 2i and 2i+1; 10 folds as sklearn `KFold(10, shuffle=False)`; for each fold the threshold
in arange(0, 4, 0.01) with the best accuracy on the other nine folds (first one on ties) is applied
to the fold ("same" iff dist < threshold); accuracy = mean ± std (population) over folds.
"""

import dataclasses
import io
import os
import pickle
from dataclasses import field

import numpy as np

from faceptor_jax import accumulators

THRESHOLDS = np.arange(0, 4, 0.01)

# The only globals a real insightface .bin may name: numpy arrays (cv2.imencode buffers), numpy
# bool scalars in the same/different list, and `_codecs.encode` (how Python 3 protocol-2 pickles
# store `bytes`). Both numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) spellings.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("_codecs", "encode"): __import__("_codecs").encode,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _BinUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `_ALLOWED_GLOBALS`; anything else is refused before it runs."""

    def __init__(self, file, path: str, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"{self._path}: refusing to load global '{module}.{name}': a verification .bin "
                "holds only (list of encoded images, list of bools); this file is not one"
            ) from None


def _as_image_bytes(path: str, i: int, b: object) -> bytes:
    if isinstance(b, bytes):
        return b
    if isinstance(b, np.ndarray) and b.dtype == np.uint8:
        return b.tobytes()
    raise ValueError(f"{path}: image {i} is {type(b).__name__}, expected encoded bytes")


def read_verification_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """Read an insightface verification `.bin`: (encoded images [2P], issame bool [P]).

    Images 2i and 2i+1 form pair i. Python-2 pickles are read as the original does (ASCII first,
    then `encoding='bytes'`). Raises ValueError naming the file when it names any global beyond a
    few numpy/codec ones, or when its structure is not (list of bytes, list of bools).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        try:
            obj = _BinUnpickler(io.BytesIO(raw), path).load()
        except UnicodeDecodeError:  # Python 2 `str` image buffers
            obj = _BinUnpickler(io.BytesIO(raw), path, encoding="bytes").load()
    except _RefusedGlobal as e:
        raise ValueError(str(e)) from None
    except Exception as e:
        raise ValueError(f"{path}: not a readable verification .bin ({e!r})") from None
    if not (isinstance(obj, tuple | list) and len(obj) == 2):
        raise ValueError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(obj)}")
    bins, issame = obj
    if not isinstance(bins, list | tuple):
        raise ValueError(f"{path}: image list is {type(bins).__name__}, expected list")
    images = [_as_image_bytes(path, i, b) for i, b in enumerate(bins)]
    flags = list(issame) if isinstance(issame, list | tuple | np.ndarray) else None
    if flags is None or not all(isinstance(v, bool | np.bool_) for v in flags):
        raise ValueError(f"{path}: same/different list must hold bools")
    if len(images) != 2 * len(flags):
        raise ValueError(f"{path}: {len(images)} images for {len(flags)} pairs (need 2 per pair)")
    return images, np.asarray(flags, dtype=bool)


def kfold_splits(n: int, n_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays as sklearn `KFold(n_folds, shuffle=False).split(range(n))`:
    contiguous test folds, the first n % n_folds of them one longer."""
    if n < n_folds:
        raise ValueError(f"kfold: {n} pairs cannot make {n_folds} folds")
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    idx = np.arange(n)
    stops = np.cumsum(sizes)
    return [
        (np.concatenate([idx[: stop - s], idx[stop:]]), idx[stop - s : stop])
        for s, stop in zip(sizes, stops, strict=True)
    ]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise x / ‖x‖ like `sklearn.preprocessing.normalize` (zero rows stay zero). [N,D]."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1.0, n)


def _accuracy_table(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of "same iff dist < t" for every threshold t. dist [P], issame [P] -> [T]."""
    pred = dist[:, None] < thresholds[None, :]  # [P, T]
    return np.mean(pred == issame[:, None], axis=0)


def verification_accuracy(
    embeddings: np.ndarray, issame: np.ndarray, n_folds: int = 10, thresholds=THRESHOLDS
) -> dict[str, object]:
    """insightface `evaluate(...)` accuracy. embeddings [2P,D] already normalised, issame [P].

    Returns acc_mean, acc_std (fractions in [0,1]), per-fold accuracies and best thresholds, and
    tpr/fpr [T] averaged over the test folds (the ROC insightface returns).
    """
    embeddings = np.asarray(embeddings, np.float64)
    issame = np.asarray(issame, bool)
    if embeddings.ndim != 2 or embeddings.shape[0] != 2 * issame.shape[0]:
        raise ValueError(f"verification: embeddings {embeddings.shape} for {issame.shape[0]} pairs")
    if not np.all(np.isfinite(embeddings)):
        raise ValueError("verification: embeddings contain NaN or inf")
    dist = np.sum(np.square(embeddings[0::2] - embeddings[1::2]), axis=1)  # [P]
    accs, best, tprs, fprs = [], [], [], []
    for train, test in kfold_splits(issame.shape[0], n_folds):
        t_best = thresholds[np.argmax(_accuracy_table(dist[train], issame[train], thresholds))]
        pred = dist[test][:, None] < thresholds[None, :]
        same = issame[test][:, None]
        tp, fp = np.sum(pred & same, 0), np.sum(pred & ~same, 0)
        n_pos, n_neg = np.sum(same), np.sum(~same)
        tprs.append(tp / n_pos if n_pos else np.zeros(len(thresholds)))
        fprs.append(fp / n_neg if n_neg else np.zeros(len(thresholds)))
        accs.append(np.mean((dist[test] < t_best) == issame[test]))
        best.append(t_best)
    accs = np.asarray(accs)
    return {
        "acc_mean": float(np.mean(accs)),
        "acc_std": float(np.std(accs)),
        "fold_accuracies": accs,
        "best_thresholds": np.asarray(best),
        "tpr": np.mean(tprs, 0),
        "fpr": np.mean(fprs, 0),
    }


def tar_at_far(
    embeddings: np.ndarray, issame: np.ndarray, fars=(1e-2, 1e-3, 1e-4)
) -> dict[float, float]:
    """True-accept rate at fixed false-accept rates over all pairs (no folds).

    For each far, the threshold is the smallest distance t with #(negative dist < t) ≤
    floor(far·#negatives), i.e. the (k+1)-th smallest negative distance; TAR = fraction of
    positive pairs with dist < t. When far·#negatives < 1 this is TAR at zero false accepts
    (LFW has 3000 negative pairs, so FAR 1e-4 reads the same as FAR 0). insightface's
    fold-wise `calculate_val` interpolates FAR with scipy's `interp1d`, whose handling of
    repeated FAR values changed across scipy versions; the original never reports it.
    """
    emb = np.asarray(embeddings, np.float64)
    issame = np.asarray(issame, bool)
    dist = np.sum(np.square(emb[0::2] - emb[1::2]), axis=1)
    neg = np.sort(dist[~issame])
    pos = dist[issame]
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError("tar_at_far: need both same and different pairs")
    out = {}
    for far in fars:
        k = int(np.floor(far * len(neg)))
        t = neg[k] if k < len(neg) else np.inf
        out[far] = float(np.mean(pos < t))
    return out


@dataclasses.dataclass(frozen=True)
class VerificationAccumulator(accumulators.Accumulator):
    """Embeddings of one verification set, mergeable across batches and hosts (order restored by
    image index). index int [N]; embedding / embedding_flip float32 [N,D] (unnormalised)."""

    index: np.ndarray = field(default=None, metadata=accumulators.CAT)
    embedding: np.ndarray = field(default=None, metadata=accumulators.CAT)
    embedding_flip: np.ndarray = field(default=None, metadata=accumulators.CAT)

    @classmethod
    def from_batch(cls, index, embedding, embedding_flip) -> "VerificationAccumulator":
        index = np.asarray(index, np.int64)
        e, ef = np.asarray(embedding, np.float32), np.asarray(embedding_flip, np.float32)
        if e.shape != ef.shape or e.ndim != 2 or e.shape[0] != index.shape[0]:
            raise ValueError(f"verification: index {index.shape}, embeddings {e.shape}, {ef.shape}")
        return cls(index=index, embedding=e, embedding_flip=ef)

    def compute(self, issame: np.ndarray, n_folds: int = 10) -> dict[str, object]:
        """Accuracy-Flip (mean, std), XNorm, TAR@FAR and the folds' best thresholds (squared L2
        between normalised embeddings; `threshold` is their mean) for 2·len(issame) images."""
        n = 2 * len(issame)
        order = np.argsort(self.index, kind="stable")
        if not np.array_equal(self.index[order], np.arange(n)):
            raise ValueError(
                f"verification: got {len(self.index)} embeddings, need each of 0..{n - 1} once"
            )
        e, ef = self.embedding[order].astype(np.float64), self.embedding_flip[order]
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(ef))):
            raise ValueError("verification: embeddings contain NaN or inf")
        xnorm = float(np.mean(np.linalg.norm(np.concatenate([e, ef]), axis=1)))
        emb = l2_normalize(e + ef)
        res = verification_accuracy(emb, issame, n_folds)
        return {
            "accuracy": res["acc_mean"],
            "accuracy_std": res["acc_std"],
            "xnorm": xnorm,
            "tar_at_far": tar_at_far(emb, issame),
            "fold_accuracies": res["fold_accuracies"],
            "threshold": float(np.mean(res["best_thresholds"])),
            "fold_thresholds": res["best_thresholds"],
            "pairs": len(issame),
        }
