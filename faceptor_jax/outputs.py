"""What predict writes: the JSON's schema (`SCHEMA`, checked by `validate` before every write),
overlays a person looks at (parsing colours with a legend, boxes, landmarks, captions) and
palette masks. Faces are dicts as in `SCHEMA`."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceptor_jax import tasks

SCHEMA_ID = "faceptor_jax.predict/1"

_FACE = {
    "type": "object",
    "required": ["box", "score", "points5"],
    "properties": {
        "box": {"type": "array", "items": {"type": "number"}},  # x1, y1, x2, y2 pixels
        "score": {"type": "number"},  # detector confidence in [0, 1]
        "points5": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
    }
    # one field per task type: {task: its value} (`TaskType.predict`)
    | {t.predict.key: t.predict.schema for t in tasks.TASK_TYPES},
}
SCHEMA = {
    "type": "object",
    "required": ["schema", "input", "kind", "width", "height", "tasks", "labels"],
    "properties": {
        "schema": {"type": "string"},
        "input": {"type": "string"},
        "kind": {"type": "string"},  # "image" | "video"
        "fps": {"type": "number"},  # videos: frames per second as the file states it
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


def caption(face: dict) -> str:
    """A short label: age, expression, a few attributes (the first task of each), else score."""
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
    """Parsing colours (the first parsing task) with a legend, boxes, landmarks and captions.

    rgb uint8 [H, W, 3]; masks {task: uint8 [H, W] class ids}; labels {task: class names}."""
    out = rgb.copy()  # uint8; colours are blended in float only where the mask covers the faces
    legend = []
    for name, mask in list(masks.items())[:1]:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size:
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            part, sub = out[box].astype(np.float32), mask[box]
            colour = PALETTE[np.minimum(sub, len(PALETTE) - 1)].astype(np.float32)
            blend = np.where((sub > 0)[..., None], 0.55 * part + 0.45 * colour, part)
            out[box] = blend.clip(0, 255).astype(np.uint8)
        present = np.unique(mask)
        legend = [(labels[name][c], PALETTE[c % len(PALETTE)]) for c in present if c > 0]
    img = Image.fromarray(out)
    draw = ImageDraw.Draw(img)
    r = max(1.0, max(img.size) / 300)
    font, line = _font(img.size)
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        draw.rectangle([x1, y1, x2, y2], outline=(0, 255, 0), width=max(1, int(r)))
        pts = next(iter(face.get("landmarks", {}).values()), face["points5"])
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 0))
        text, at = caption(face), (x1, max(0, y1 - line))
        draw.rectangle(draw.textbbox(at, text, font=font), fill=(0, 0, 0))
        draw.text(at, text, fill=(0, 255, 0), font=font)
    pad, box = line // 3, line * 5 // 6
    for i, (name, colour) in enumerate(legend):
        y = pad + line * i
        draw.rectangle([pad, y, pad + box, y + box], fill=tuple(int(c) for c in colour))
        draw.text((pad + box + pad, y), name, fill=(255, 255, 255), font=font)
    return img


def _font(size: tuple[int, int]) -> tuple[ImageFont.ImageFont, int]:
    """(font, line height): Pillow's 11-px default up to 640 px, scaled with larger images so
    captions and legend stay readable (at 1920×1080: 33 px)."""
    scale = max(size) / 640
    if scale <= 1:
        return ImageFont.load_default(), 12
    return ImageFont.load_default(size=round(11 * scale)), round(12 * scale)
