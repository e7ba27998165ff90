"""Face analysis of photos and videos: `Predictor` (Python) and `python -m faceptor_jax.predict`.

    python -m faceptor_jax.predict --checkpoint DIR --input PATH... --output DIR [--tasks ...]
    python -m faceptor_jax.predict --checkpoint DIR --compare A.jpg B.jpg

DIR is a model directory (`python -m convert`, `python -m faceptor_jax.export`) or a training
workdir (`main.py --workdir`: its newest checkpoint; `WORKDIR/checkpoints/STEP` for another).

Per input: faces are detected (yuface), aligned per task onto the crop its type was trained on
(`TaskType.crop`: the ArcFace template for the 112-px types, the 5-point face template for
parsing/landmarks; crop sides from the checkpoint's task specs, 112/512 for released weights),
batched over faces (padded to a few bucket sizes, so a folder compiles a few times, not per image),
and every output is mapped back to the original image's pixels. Writes `<name>.json`
(`outputs.SCHEMA`), `<name>.overlay.png` (videos: `.overlay.mp4`, `.overlay.gif` for GIFs) and
`<name>.<parsing task>.png` (palette PNG, pixel value = class id), and for the whole run a row
per face in `faces.csv` / `faces.jsonl` (`tables.py`). Videos (`media.VIDEO_EXTS`) are analysed
frame by frame. Unreadable, truncated or oversized inputs are reported and skipped;
the exit status is non-zero only when no input could be processed.

`--compare A B` prints the cosine similarity and the verification protocol's distance (squared L2
between L2-normalised flip-summed embeddings) of the largest faces, and the verdict against the
threshold evaluation derived for this model (`<checkpoint>/verification.json`, written by
`main.py --mode=eval` and by training's evaluations), or `--threshold`, or else
`DEFAULT_THRESHOLD`; it says which.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from faceptor_jax import align, compile_cache, errors, media, preprocess, tables, tasks
from faceptor_jax.checkpoint import (
    locate,
    read_meta,
    step_dir,
)
from faceptor_jax.media import InputError, read_image
from faceptor_jax.model import families
from faceptor_jax.outputs import SCHEMA_ID, draw_overlay, save_mask, validate
from faceptor_jax.threshold import DEFAULT_THRESHOLD, verification_threshold  # noqa: F401

BUCKETS = (1, 2, 4, 8, 16)  # faces per forward pass are padded up to one of these


class Predictor:
    """`Predictor(checkpoint_dir)(rgb_uint8)` -> (faces, masks): faces as in `outputs.SCHEMA`, masks
    {parsing task: uint8 [H, W] class ids in image coordinates}. `checkpoint_dir`: a model
    directory or a training workdir (newest step), or `<workdir>/checkpoints/<step>`."""

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        task_names: Sequence[str] | None = None,
        conf: float = 0.5,
        max_batch: int = BUCKETS[-1],
        threshold: float | None = None,
    ):
        self.checkpoint = os.fspath(checkpoint)
        where, self.step = locate(checkpoint)  # step: a workdir's training step, else None
        # A workdir's step is pinned: training may save newer ones (and drop old) meanwhile.
        self.weights = where if self.step is None else step_dir(where, self.step)
        self.meta = read_meta(self.weights)
        model = families.load(self.weights, task_heads=True)
        specs = {s.name: s for s in model.cfg.tasks}
        names = list(task_names or specs)
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise InputError(
                f"--tasks: {checkpoint} has no task(s) {', '.join(unknown)}; its tasks: "
                + ", ".join(specs)
            )
        # Crop sides come from the checkpoint (112/512 for released weights, smaller in demos).
        self.tasks = {
            n: dataclasses.replace(tasks.get(n), input_size=specs[n].input_size) for n in names
        }
        self.conf, self.max_batch = conf, max_batch
        self.threshold, self.threshold_source = verification_threshold(where, threshold, self.step)
        self.labels = {n: list(t.labels) for n, t in self.tasks.items() if t.labels}
        # tasks sharing a crop and side share its images; each view of them is encoded once
        self._crops = {n: f"{t.type.crop.name}@{t.input_size}" for n, t in self.tasks.items()}
        views = {n: t.type.predict.views for n, t in self.tasks.items()}
        self._reads = {n: tuple(f"{self._crops[n]}/{v}" for v in vs) for n, vs in views.items()}
        self._views = sorted({(self._crops[n], v) for n, vs in views.items() for v in vs})
        graphdef, state = nnx.split(model)
        self._state = state
        self._forward = jax.jit(lambda s, x: self._essentials(nnx.merge(graphdef, s), x))
        self.shapes_seen: set[int] = set()  # batch buckets compiled so far
        self.faces = 0  # faces analysed by __call__
        self.model_seconds, self.timed_faces = 0.0, 0  # forward passes after compilation

    def _essentials(self, model, images):
        """Jitted: every crop's views (recognition: + its mirror) encoded once (`shared`), each
        task decoded from the views it reads, and only what its output needs."""
        inputs = {f"{c}/{v}": tasks.VIEWS[v](images[c]) for c, v in self._views}
        raw = model.shared(inputs, self._reads)
        return {
            n: t.type.predict.essentials(t.type.decode(raw[n], t)) for n, t in self.tasks.items()
        }

    def _run(self, rgb: np.ndarray, dets: list[align.Detection]) -> list[dict]:
        """Model outputs per face (numpy, crop coordinates) and each task's crop matrix."""
        results = []
        for start in range(0, len(dets), self.max_batch):
            chunk = dets[start : start + self.max_batch]
            n = len(chunk)
            bucket = next((b for b in BUCKETS if b >= n), n)
            images, matrices, made = {}, {}, {}
            for name, t in self.tasks.items():
                crop, size, key = t.type.crop, t.input_size, self._crops[name]
                if key not in made:
                    mats = [crop.align(d.points, size) for d in chunk]
                    batch = np.zeros((bucket, size, size, 3), np.float32)
                    for i, m in enumerate(mats):
                        batch[i] = crop.normalize(preprocess.warp(rgb, m, size))
                    made[key] = batch, mats
                images[key], matrices[name] = made[key]
            t0 = time.perf_counter()
            out = jax.device_get(self._forward(self._state, images))
            if bucket in self.shapes_seen:  # steady state only: a bucket's first call compiles
                self.model_seconds += time.perf_counter() - t0
                self.timed_faces += n
            self.shapes_seen.add(bucket)
            for i in range(n):
                results.append({k: (v[i], matrices[k][i]) for k, v in out.items()})
        return results

    def __call__(self, rgb: np.ndarray) -> tuple[list[dict], dict[str, np.ndarray]]:
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        hw = rgb.shape[:2]
        dets = align.detect_faces(rgb, self.conf)
        masks = {n: np.zeros(hw, np.uint8) for n, t in self.tasks.items() if t.type.predict.mask}
        faces = []
        for det, res in zip(dets, self._run(rgb, dets), strict=True):
            face = {
                "box": [round(float(v), 2) for v in det.box],
                "score": round(det.score, 4),
                "points5": det.points.round(2).tolist(),
            }
            for name, (value, matrix) in res.items():
                t = self.tasks[name]
                out = t.type.predict
                entry = out.entry(value, matrix, t, self.labels.get(name, []), masks.get(name))
                face.setdefault(out.key, {})[name] = entry
            faces.append(face)
        self.faces += len(faces)
        return faces, masks

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """The largest face's L2-normalised identity embedding [E] (needs a recognition task)."""
        rec = [n for n, t in self.tasks.items() if t.type.predict.key == "embedding"]
        if not rec:
            raise ValueError(f"{self.checkpoint}: the model has no recognition task")
        dets = align.detect_faces(rgb, self.conf)
        if not dets:
            raise ValueError("no face found")
        det = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        value, _ = self._run(rgb, [det])[0][rec[0]]
        return np.asarray(value, np.float32)

    def compare(self, a: np.ndarray, b: np.ndarray) -> dict:
        """Identity similarity of the largest faces: cosine, the protocol's distance (squared
        L2 of the normalised embeddings, = 2 - 2·cosine), same iff distance < threshold."""
        embeddings = []
        for which, rgb in (("first", a), ("second", b)):
            try:
                embeddings.append(self.embed(rgb))
            except ValueError as e:
                raise ValueError(f"{which} image: {e}") from e
        ea, eb = embeddings
        dist = float(np.sum(np.square(ea - eb)))
        return {
            "cosine": float(ea @ eb),
            "distance": dist,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "same": dist < self.threshold,
        }


def _doc(predictor: Predictor, path: str, kind: str, hw) -> dict:
    return {
        "schema": SCHEMA_ID,
        "input": os.path.abspath(path),
        "kind": kind,
        "width": int(hw[1]),
        "height": int(hw[0]),
        "checkpoint": os.path.abspath(predictor.weights),
        "tasks": list(predictor.tasks),
        "labels": predictor.labels,
    }


def _write_json(doc: dict, path: str) -> None:
    validate(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def _stem(path: str, out_dir: str, name: str | None) -> str:
    """Where an input's outputs go: `<out_dir>/<name>` (default its file name)."""
    stem = os.path.join(out_dir, name or os.path.basename(path))
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    return stem


def process_image(predictor: Predictor, path: str, out_dir: str, name: str | None = None) -> dict:
    """Analyse one photo and write its JSON, overlay and masks (`<out_dir>/<name>.*`, default
    name: the file's); returns the JSON."""
    rgb = read_image(path)
    faces, masks = predictor(rgb)
    stem = _stem(path, out_dir, name)
    doc = _doc(predictor, path, "image", rgb.shape[:2])
    doc["masks"] = {}
    for name, mask in masks.items():
        save_mask(mask, f"{stem}.{name}.png")
        doc["masks"][name] = os.path.basename(f"{stem}.{name}.png")
    draw_overlay(rgb, faces, masks, predictor.labels).save(f"{stem}.overlay.png")
    doc |= {"overlay": os.path.basename(f"{stem}.overlay.png"), "faces": faces}
    _write_json(doc, f"{stem}.json")
    return doc


def process_video(
    predictor: Predictor, path: str, out_dir: str, stride: int = 1, name: str | None = None
) -> dict:
    """Analyse every `stride`-th frame, with a progress bar on stderr; writes the JSON (faces per
    frame) and an overlay video, and returns the JSON."""
    stem = _stem(path, out_dir, name)
    count, fps = media.video_info(path)
    overlay = f"{stem}.overlay" + (".gif" if path.lower().endswith(".gif") else ".mp4")
    writer = media.VideoWriter(overlay, fps / stride)
    frames, total, hw, seen = [], 0, (0, 0), 0
    try:
        for i, rgb in enumerate(media.read_frames(path)):
            seen = i + 1
            if i % stride:
                continue
            hw = rgb.shape[:2]
            faces, masks = predictor(rgb)
            frames.append({"index": i, "faces": faces})
            writer.write(draw_overlay(rgb, faces, masks, predictor.labels))
            total += len(faces)
            _progress(os.path.basename(path), i + 1, count, total)
    except InputError:
        writer.close()
        if os.path.exists(overlay):  # no half-written overlay for a skipped input
            os.remove(overlay)
        raise
    finally:
        print(file=sys.stderr)
    writer.close()
    if not frames:
        raise InputError(f"{path}: no frames")
    if count and seen < count:
        print(f"{path}: only {seen} of the {count} frames it states could be decoded (a "
              "truncated file?)", file=sys.stderr)  # fmt: skip
    doc = _doc(predictor, path, "video", hw) | {"fps": fps}
    doc |= {"overlay": os.path.basename(overlay), "frames": frames}
    _write_json(doc, f"{stem}.json")
    return doc


def _progress(name: str, done: int, count: int, faces: int) -> None:
    """One stderr line, redrawn: a bar when the file states its frame count, else a counter."""
    if count:
        n = min(20, 20 * done // count)
        text = f"[{'#' * n}{'.' * (20 - n)}] frame {done}/{count}"
    else:
        text = f"frame {done}"
    print(f"\r{name}: {text}, {faces} faces", end="", file=sys.stderr, flush=True)


def run(predictor: Predictor, paths: Sequence[str], out_dir: str, stride: int = 1) -> dict:
    """Process every input (a row per face in `tables`; bad ones named on stderr and skipped)."""
    media.check_output_dir(out_dir)
    done, skipped, faces = [], [], 0
    table = tables.FaceTables(out_dir, predictor.tasks)
    t0 = time.perf_counter()
    inputs = media.expand_inputs(paths)
    for p in (p for p in paths if os.path.isdir(p) and not media.expand_inputs([p])):
        print(f"{p}: an empty folder (no files to analyse)", file=sys.stderr)
    names = media.output_names(inputs)  # same-named inputs keep their folders
    for path in inputs:
        try:
            if media.is_video(path):
                doc = process_video(predictor, path, out_dir, stride, names[path])
            else:
                doc = process_image(predictor, path, out_dir, names[path])
        except (InputError, FileNotFoundError, IsADirectoryError) as e:
            print(f"skipped {e}", file=sys.stderr)
            skipped.append(path)
            continue
        n = table.add(doc, names[path], path)
        if n == 0:
            print(f"{path}: no face found", file=sys.stderr)
        done.append(path)
        faces += n
    seconds = time.perf_counter() - t0
    return {"processed": done, "skipped": skipped, "faces": faces, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faceptor_jax.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--checkpoint",
        required=True,
        help="model dir, training workdir or WORKDIR/checkpoints/STEP",
    )
    p.add_argument("--input", nargs="+", default=[], help="images, folders, videos")
    p.add_argument("--output", default="predictions", help="output directory")
    p.add_argument("--tasks", nargs="+", default=None, help="subset of the model's tasks")
    p.add_argument("--conf", type=float, default=0.5, help="detector confidence threshold")
    p.add_argument("--video-stride", type=int, default=1, help="analyse every n-th frame")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="same person? (two photos)")
    p.add_argument("--threshold", type=float, default=None,
                   help="same iff squared L2 distance < this (default: the protocol's, stored by "
                        "evaluation in CHECKPOINT/verification.json)")  # fmt: skip
    p.add_argument("--compile_cache", default=compile_cache.DEFAULT, help=compile_cache.HELP)
    args = p.parse_args(argv)
    if not args.input and not args.compare:
        p.error("give --input PATH... or --compare A B")
    if args.video_stride < 1:
        p.error(f"--video-stride {args.video_stride}: must be 1 or more")
    try:
        if args.input:  # before anything is analysed
            media.check_output_dir(args.output)
        compile_cache.enable(args.compile_cache)
        predictor = Predictor(args.checkpoint, args.tasks, conf=args.conf, threshold=args.threshold)
    except errors.user_errors() as e:  # not a model, a damaged step, an unknown task
        return errors.report("predict", e)
    if args.compare:
        try:
            a, b = (read_image(x) for x in args.compare)
            r = predictor.compare(a, b)
        except (InputError, ValueError) as e:
            print(f"compare {' '.join(args.compare)}: {e}", file=sys.stderr)
            return 1
        verdict = "same person" if r["same"] else "different people"
        print(f"cosine similarity {r['cosine']:.4f}, squared L2 distance {r['distance']:.4f} "
              f"(same iff < {r['threshold']:.4f}): {verdict}\n"
              f"threshold: {r['threshold_source']}")  # fmt: skip
        if not args.input:
            return 0
    s = run(predictor, args.input, args.output, args.video_stride)
    rate = s["faces"] / s["seconds"] if s["seconds"] else 0.0
    ms, tf = predictor.model_seconds, predictor.timed_faces
    model_rate = f"{tf / ms:.3g} faces/s" if ms else "n/a"
    print(
        f"{len(s['processed'])} inputs processed, {len(s['skipped'])} skipped, "
        f"{s['faces']} faces in {s['seconds']:.1f} s: {rate:.3g} faces/s end to end, "
        f"{model_rate} in the compiled model "
        f"({len(predictor.shapes_seen)} batch shapes compiled) -> {args.output}"
    )
    return 0 if s["processed"] else 1


if __name__ == "__main__":
    sys.exit(main())
