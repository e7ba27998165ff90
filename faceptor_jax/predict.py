"""Face analysis of photos and videos: `Predictor` (Python) and `python -m faceptor_jax.predict`.

    python -m faceptor_jax.predict --checkpoint DIR --input PATH... --output DIR [--tasks ...]
    python -m faceptor_jax.predict --checkpoint DIR --compare A.jpg B.jpg

Per input: faces are detected (yuface), aligned per task onto the crop that task was trained on
(ArcFace 5-point template for recognition/age/attributes/expression, the LaPa 5-point template for
parsing/landmarks; crop sides from the checkpoint's task specs, 112/512 for released weights),
batched over faces (padded to a few bucket sizes, so a folder compiles a few times, not per image),
and every output is mapped back to the original image's pixels. Writes `<name>.json` (`SCHEMA`),
`<name>.overlay.png` (`.overlay.gif` for videos) and `<name>.<parsing task>.png` (palette PNG,
pixel value = class id). Unreadable, truncated or oversized inputs are reported and skipped; the
exit status is non-zero only when no input could be processed.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image, ImageDraw, ImageSequence

from faceptor_jax import align, preprocess, tasks
from faceptor_jax.checkpoint import load_faceptor, read_meta
from faceptor_jax.metrics import CELEBA_ATTRIBUTES

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
VIDEO_EXTS = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm")
BUCKETS = (1, 2, 4, 8, 16)  # faces per forward pass are padded up to one of these
MAX_PIXELS = 80_000_000  # larger inputs are reported and skipped (PIL's bomb guard is ~89 MP)
# Squared L2 distance between L2-normalised flip-summed embeddings, "same" iff below (the
# verification protocol's rule). The released checkpoints' 10-fold LFW thresholds: store yours
# as `verification_threshold` in model.json; this default is insightface's typical LFW value.
DEFAULT_THRESHOLD = 1.4
SCHEMA_ID = "faceptor_jax.predict/1"

_FACE = {
    "type": "object",
    "required": ["box", "score", "points5"],
    "properties": {
        "box": {"type": "array", "items": {"type": "number"}},  # x1, y1, x2, y2 pixels
        "score": {"type": "number"},  # detector confidence in [0, 1]
        "points5": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "embedding": {"type": "object"},  # task -> [E] L2-normalised, flip-summed
        "age": {"type": "object"},  # task -> years
        "attributes": {"type": "object"},  # task -> {CelebA attribute: probability}
        "expression": {"type": "object"},  # task -> {"label", "probabilities": {label: p}}
        "landmarks": {"type": "object"},  # task -> [[x, y]] image pixels
        "parsing": {"type": "object"},  # task -> {label: pixel count of this face}
    },
}
SCHEMA = {
    "type": "object",
    "required": ["schema", "input", "kind", "width", "height", "tasks", "labels"],
    "properties": {
        "schema": {"type": "string"},
        "input": {"type": "string"},
        "kind": {"type": "string"},  # "image" | "video"
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "tasks": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object"},  # task -> class names (parsing, expression, attributes)
        "overlay": {"type": "string"},  # file name beside the JSON
        "masks": {"type": "object"},  # parsing task -> PNG file name (images only)
        "faces": {"type": "array", "items": _FACE},  # images
        "frames": {  # videos
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "faces"],
                "properties": {
                    "index": {"type": "integer"},
                    "faces": {"type": "array", "items": _FACE},
                },
            },
        },
    },
}


def validate(doc, schema=SCHEMA, where: str = "$") -> None:
    """Check `doc` against the JSON-Schema subset used by `SCHEMA`; ValueError names the path."""
    types = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float)}
    t = schema.get("type")
    if t and (not isinstance(doc, types[t]) or (t != "object" and isinstance(doc, bool))):
        raise ValueError(f"{where}: expected {t}, got {type(doc).__name__}")
    for key in schema.get("required", ()):
        if key not in doc:
            raise ValueError(f"{where}: missing {key!r}")
    for key, sub in schema.get("properties", {}).items():
        if isinstance(doc, dict) and key in doc:
            validate(doc[key], sub, f"{where}.{key}")
    if "items" in schema and isinstance(doc, list):
        for i, item in enumerate(doc):
            validate(item, schema["items"], f"{where}[{i}]")


def _labels(task: tasks.Task) -> tuple[str, ...]:
    return CELEBA_ATTRIBUTES if task.type.name == "attributes" else task.labels


class Predictor:
    """`Predictor(checkpoint_dir)(rgb_uint8)` -> (faces, masks): faces as in `SCHEMA`, masks
    {parsing task: uint8 [H, W] class ids in image coordinates}."""

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        task_names: Sequence[str] | None = None,
        conf: float = 0.5,
        max_batch: int = BUCKETS[-1],
    ):
        self.checkpoint = os.fspath(checkpoint)
        self.meta = read_meta(checkpoint)
        model = load_faceptor(checkpoint)
        specs = {s.name: s for s in model.cfg.tasks}
        names = list(task_names or specs)
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise ValueError(
                f"{checkpoint}: model has no task(s) {', '.join(unknown)}; its tasks: "
                + ", ".join(specs)
            )
        # Crop sides come from the checkpoint (112/512 for released weights, smaller in demos).
        self.tasks = {
            n: dataclasses.replace(tasks.get(n), input_size=specs[n].input_size) for n in names
        }
        self.conf, self.max_batch = conf, max_batch
        self.threshold = float(self.meta.get("verification_threshold", DEFAULT_THRESHOLD))
        self.labels = {n: list(_labels(t)) for n, t in self.tasks.items() if _labels(t)}
        graphdef, state = nnx.split(model)
        self._state = state
        self._forward = jax.jit(lambda s, x: self._essentials(nnx.merge(graphdef, s), x))
        self.shapes_seen: set[int] = set()  # batch buckets compiled so far
        self.faces = 0  # faces analysed by __call__
        self.model_seconds, self.timed_faces = 0.0, 0  # forward passes after compilation

    def _essentials(self, model, images):
        """Jitted: recognition on crop + mirrored crop (summed, as the verification protocol),
        then each task's decoding, keeping only what the outputs need."""
        inputs = dict(images)
        for n, t in self.tasks.items():
            if t.type.name == "recognition":
                inputs[n] = jnp.concatenate([images[n], images[n][:, :, ::-1]], axis=0)
        raw = model(inputs)
        out = {}
        for n, t in self.tasks.items():
            d = t.type.decode(raw[n], t)
            kind = t.type.name
            if kind == "recognition":
                e = d["embedding"].astype(jnp.float32)
                e = e[: e.shape[0] // 2] + e[e.shape[0] // 2 :]
                out[n] = e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
            elif kind == "age":
                out[n] = d["age"]
            elif kind in ("attributes", "expression"):
                out[n] = d["probabilities"]
            elif kind == "parsing":
                out[n] = d["label_map"].astype(jnp.uint8)
            else:
                out[n] = d["landmarks"]
        return out

    def _run(self, rgb: np.ndarray, dets: list[align.Detection]) -> list[dict]:
        """Model outputs per face (numpy, crop coordinates) and each task's crop matrix."""
        results = []
        for start in range(0, len(dets), self.max_batch):
            chunk = dets[start : start + self.max_batch]
            n = len(chunk)
            bucket = next((b for b in BUCKETS if b >= n), n)
            images, matrices, made = {}, {}, {}
            for name, t in self.tasks.items():
                size, kind = t.input_size, t.type.name
                key = (kind in ("parsing", "landmarks"), size)  # tasks sharing a crop share it
                if key not in made:
                    mats = [align.align_matrix(kind, d.points, size) for d in chunk]
                    batch = np.zeros((bucket, size, size, 3), np.float32)
                    for i, m in enumerate(mats):
                        batch[i] = align.normalize_crop(kind, preprocess.warp(rgb, m, size))
                    made[key] = batch, mats
                images[name], matrices[name] = made[key]
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
        masks = {
            n: np.zeros(hw, np.uint8) for n, t in self.tasks.items() if t.type.name == "parsing"
        }
        faces = []
        for det, res in zip(dets, self._run(rgb, dets), strict=True):
            face = {
                "box": [round(float(v), 2) for v in det.box],
                "score": round(det.score, 4),
                "points5": det.points.round(2).tolist(),
            }
            for name, (value, matrix) in res.items():
                self._add(face, name, value, matrix, masks, hw)
            faces.append(face)
        self.faces += len(faces)
        return faces, masks

    def _add(self, face: dict, name: str, value, matrix, masks, hw) -> None:
        t = self.tasks[name]
        kind = t.type.name
        if kind == "recognition":
            face.setdefault("embedding", {})[name] = np.round(value, 6).tolist()
        elif kind == "age":
            face.setdefault("age", {})[name] = round(float(value), 2)
        elif kind == "attributes":
            probs = dict(zip(self.labels[name], np.round(value, 4).tolist(), strict=True))
            face.setdefault("attributes", {})[name] = probs
        elif kind == "expression":
            probs = dict(zip(self.labels[name], np.round(value, 4).tolist(), strict=True))
            label = self.labels[name][int(np.argmax(value))]
            face.setdefault("expression", {})[name] = {"label": label, "probabilities": probs}
        elif kind == "landmarks":
            pts = preprocess.warped_to_source(value, matrix, 0.0, t.input_size)  # not clipped
            face.setdefault("landmarks", {})[name] = pts.round(2).tolist()
        else:  # parsing: nearest-neighbour back through the inverse of the crop matrix
            region, (x1, y1, x2, y2) = align.label_map_to_image(value, matrix, hw)
            dst = masks[name][y1:y2, x1:x2]
            dst[region > 0] = region[region > 0]
            counts = np.bincount(region.ravel(), minlength=len(self.labels[name]))
            face.setdefault("parsing", {})[name] = {
                lab: int(c) for lab, c in zip(self.labels[name], counts, strict=False) if c
            }

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """The largest face's L2-normalised identity embedding [E] (needs a recognition task)."""
        rec = [n for n, t in self.tasks.items() if t.type.name == "recognition"]
        if not rec:
            raise ValueError(f"{self.checkpoint}: the model has no recognition task")
        dets = align.detect_faces(rgb, self.conf)
        if not dets:
            raise ValueError("no face found")
        det = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        value, _ = self._run(rgb, [det])[0][rec[0]]
        return np.asarray(value, np.float32)

    def compare(self, a: np.ndarray, b: np.ndarray) -> dict:
        """Identity similarity of the largest faces: cosine, squared distance, same/different."""
        ea, eb = self.embed(a), self.embed(b)
        dist = float(np.sum(np.square(ea - eb)))
        return {
            "cosine": float(ea @ eb),
            "distance": dist,
            "threshold": self.threshold,
            "same": dist < self.threshold,
        }


# ----------------------------------------------------------------------------- inputs
class InputError(Exception):
    """An input that cannot be processed (reported by name and skipped)."""


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """Files as given; folders -> their files (sorted, not recursive, hidden ones left out)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
        else:
            out.append(p)
    return out


def _check_size(img: Image.Image, path: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise InputError(f"{path}: {w}x{h} is larger than {MAX_PIXELS:,} pixels")


def read_image(path: str) -> np.ndarray:
    """RGB uint8 [H, W, 3]; InputError for non-images, truncated files and oversized images."""
    try:
        with Image.open(path) as img:
            _check_size(img, path)
            img.load()
            return np.asarray(img.convert("RGB"))
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from e


def read_frames(path: str) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video: GIF/animated images through PIL, other formats through
    imageio (needs an imageio backend such as imageio-ffmpeg or av; not a dependency here)."""
    if path.lower().endswith(".gif"):
        try:
            with Image.open(path) as img:
                _check_size(img, path)
                for frame in ImageSequence.Iterator(img):
                    yield np.asarray(frame.convert("RGB"))
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable video ({e})") from e
        return
    try:
        import imageio.v3 as iio

        for frame in iio.imiter(path):
            yield np.asarray(frame)[..., :3].astype(np.uint8)
    except ImportError as e:
        raise InputError(f"{path}: reading this video format needs imageio + a backend") from e
    except (OSError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: not a readable video ({e})") from e


# ----------------------------------------------------------------------------- outputs
PALETTE = np.array(
    [[0, 0, 0], [255, 85, 0], [255, 170, 0], [255, 0, 85], [255, 0, 170], [0, 255, 0],
     [85, 255, 0], [170, 255, 0], [0, 255, 85], [0, 255, 170], [0, 0, 255], [85, 0, 255],
     [170, 0, 255], [0, 85, 255], [0, 170, 255], [255, 255, 0], [255, 255, 85], [255, 255, 170],
     [255, 0, 255], [255, 85, 255], [255, 170, 255], [0, 255, 255], [85, 255, 255]],
    np.uint8,
)  # fmt: skip


def save_mask(mask: np.ndarray, path: str) -> None:
    """Palette PNG: pixel value = class id, shown in the overlay's colours."""
    img = Image.fromarray(mask, mode="P")
    img.putpalette(PALETTE.ravel().tolist())
    img.save(path)


def _caption(face: dict) -> str:
    parts = []
    for age in face.get("age", {}).values():
        parts.append(f"age {age:.0f}")
        break
    for e in face.get("expression", {}).values():
        parts.append(f"{e['label']} {e['probabilities'][e['label']]:.2f}")
        break
    for attrs in face.get("attributes", {}).values():
        parts += [k for k in ("Male", "Smiling", "Eyeglasses") if attrs.get(k, 0) > 0.5]
        break
    return " ".join(parts) or f"{face['score']:.2f}"


def draw_overlay(rgb: np.ndarray, faces: list[dict], masks: dict, labels: dict) -> Image.Image:
    """Parsing colours (the first parsing task) with a legend, boxes, landmarks and captions."""
    out = rgb.astype(np.float32)
    legend = []
    for name, mask in list(masks.items())[:1]:
        colour = PALETTE[np.minimum(mask, len(PALETTE) - 1)].astype(np.float32)
        on = (mask > 0)[..., None]
        out = np.where(on, 0.55 * out + 0.45 * colour, out)
        present = np.unique(mask)
        legend = [(labels[name][c], PALETTE[c % len(PALETTE)]) for c in present if c > 0]
    img = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = max(1.0, max(img.size) / 300)
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        draw.rectangle([x1, y1, x2, y2], outline=(0, 255, 0), width=max(1, int(r)))
        pts = next(iter(face.get("landmarks", {}).values()), face["points5"])
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 0))
        text, at = _caption(face), (x1, max(0, y1 - 12))
        draw.rectangle(draw.textbbox(at, text), fill=(0, 0, 0))
        draw.text(at, text, fill=(0, 255, 0))
    for i, (name, colour) in enumerate(legend):
        y = 4 + 12 * i
        draw.rectangle([4, y, 14, y + 10], fill=tuple(int(c) for c in colour))
        draw.text((18, y), name, fill=(255, 255, 255))
    return img


def _doc(predictor: Predictor, path: str, kind: str, hw) -> dict:
    return {
        "schema": SCHEMA_ID,
        "input": os.path.abspath(path),
        "kind": kind,
        "width": int(hw[1]),
        "height": int(hw[0]),
        "checkpoint": os.path.abspath(predictor.checkpoint),
        "tasks": list(predictor.tasks),
        "labels": predictor.labels,
    }


def _write_json(doc: dict, path: str) -> None:
    validate(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def process_image(predictor: Predictor, path: str, out_dir: str) -> int:
    """Analyse one photo and write its JSON, overlay and masks; returns the number of faces."""
    rgb = read_image(path)
    faces, masks = predictor(rgb)
    stem = os.path.join(out_dir, os.path.basename(path))
    doc = _doc(predictor, path, "image", rgb.shape[:2])
    doc["masks"] = {}
    for name, mask in masks.items():
        save_mask(mask, f"{stem}.{name}.png")
        doc["masks"][name] = os.path.basename(f"{stem}.{name}.png")
    draw_overlay(rgb, faces, masks, predictor.labels).save(f"{stem}.overlay.png")
    doc |= {"overlay": os.path.basename(f"{stem}.overlay.png"), "faces": faces}
    _write_json(doc, f"{stem}.json")
    return len(faces)


def process_video(predictor: Predictor, path: str, out_dir: str, stride: int = 1) -> int:
    """Analyse every `stride`-th frame; writes the JSON (per frame) and an overlay GIF."""
    stem = os.path.join(out_dir, os.path.basename(path))
    frames, overlays, total, hw = [], [], 0, (0, 0)
    for i, rgb in enumerate(read_frames(path)):
        if i % stride:
            continue
        hw = rgb.shape[:2]
        faces, masks = predictor(rgb)
        frames.append({"index": i, "faces": faces})
        overlays.append(draw_overlay(rgb, faces, masks, predictor.labels))
        total += len(faces)
        print(f"\r{os.path.basename(path)}: frame {i + 1}, {total} faces", end="", file=sys.stderr)
    print(file=sys.stderr)
    if not frames:
        raise InputError(f"{path}: no frames")
    overlays[0].save(f"{stem}.overlay.gif", save_all=True, append_images=overlays[1:], loop=0)
    doc = _doc(predictor, path, "video", hw)
    doc |= {"overlay": os.path.basename(f"{stem}.overlay.gif"), "frames": frames}
    _write_json(doc, f"{stem}.json")
    return total


def run(predictor: Predictor, paths: Sequence[str], out_dir: str, stride: int = 1) -> dict:
    """Process every input; bad ones are reported on stderr and skipped. Returns a summary."""
    os.makedirs(out_dir, exist_ok=True)
    done, skipped, faces = [], [], 0
    t0 = time.perf_counter()
    for path in expand_inputs(paths):
        try:
            if path.lower().endswith(VIDEO_EXTS):
                n = process_video(predictor, path, out_dir, stride)
            else:
                n = process_image(predictor, path, out_dir)
        except (InputError, FileNotFoundError, IsADirectoryError) as e:
            print(f"skipped {e}", file=sys.stderr)
            skipped.append(path)
            continue
        if n == 0:
            print(f"{path}: no face found", file=sys.stderr)
        done.append(path)
        faces += n
    seconds = time.perf_counter() - t0
    return {"processed": done, "skipped": skipped, "faces": faces, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faceptor_jax.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="faceptor_jax checkpoint directory")
    p.add_argument("--input", nargs="+", default=[], help="images, folders, videos")
    p.add_argument("--output", default="predictions", help="output directory")
    p.add_argument("--tasks", nargs="+", default=None, help="subset of the model's tasks")
    p.add_argument("--conf", type=float, default=0.5, help="detector confidence threshold")
    p.add_argument("--video-stride", type=int, default=1, help="analyse every n-th frame")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="same person? (two photos)")
    p.add_argument("--threshold", type=float, default=None, help="verification threshold")
    args = p.parse_args(argv)
    if not args.input and not args.compare:
        p.error("give --input PATH... or --compare A B")
    predictor = Predictor(args.checkpoint, args.tasks, conf=args.conf)
    if args.threshold is not None:
        predictor.threshold = args.threshold
    if args.compare:
        try:
            a, b = (read_image(x) for x in args.compare)
            r = predictor.compare(a, b)
        except (InputError, ValueError) as e:
            print(f"compare: {e}", file=sys.stderr)
            return 1
        verdict = "same person" if r["same"] else "different people"
        print(f"cosine {r['cosine']:.4f}  distance {r['distance']:.4f}  "
              f"threshold {r['threshold']:.2f}: {verdict}")  # fmt: skip
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
