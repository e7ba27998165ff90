"""Photos and videos in and out for predict: Pillow for images and GIFs, PyAV (FFmpeg's libraries,
bundled in its wheel) for MP4/AVI/MOV/MKV/WebM. Every input failure is an `InputError` that names
the file, so a folder run can report it and go on."""

import contextlib
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import ExifTags, Image, ImageOps, ImageSequence

from faceptor_jax import errors

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
VIDEO_EXTS = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm")
MAX_PIXELS = 80_000_000  # larger inputs are reported and skipped (PIL's bomb guard is ~89 MP)
VIDEO_CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"  # overlay videos


# An input that cannot be processed (reported by name and skipped): the project's error type.
InputError = errors.InputError


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """Files as given; folders -> their files (sorted, not recursive, hidden ones left out)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
        else:
            out.append(p)
    return out


def output_names(paths: Sequence[str]) -> dict[str, str]:
    """{input: its output name under --output}: the file name, or, when two inputs share one
    (a/x.jpg, b/x.jpg), every input's path relative to the inputs' common folder — so outputs
    never overwrite each other and keep the inputs' folder structure."""
    names = {p: os.path.basename(p) for p in paths}
    if len(set(names.values())) == len(names):
        return names
    full = {p: os.path.abspath(p) for p in paths}
    root = os.path.commonpath([os.path.dirname(f) for f in full.values()])
    return {p: os.path.relpath(f, root) for p, f in full.items()}


def check_output_dir(path: str) -> None:
    """Create `path` if needed and make sure files can be written there, before any input is
    analysed; InputError names the folder and why not."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"--output {path}: a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise InputError(f"--output {path}: cannot write there ({e.strerror or e})") from e


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTS)


def _check_size(w: int, h: int, path: str) -> None:
    if w * h > MAX_PIXELS:
        raise InputError(f"{path}: {w}x{h} is larger than {MAX_PIXELS:,} pixels")


def to_rgb(img: Image.Image) -> np.ndarray:
    """RGB uint8 [H, W, 3] as the image is displayed: EXIF orientation applied (a phone photo
    stored sideways comes out upright, so every coordinate is in the displayed image), 16-bit and
    32-bit grayscale scaled to 8 bits (Pillow's own conversion clips them to near white), a
    palette image with a transparent colour over white."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, SyntaxError):
        if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # upright photos are not copied
            img = ImageOps.exif_transpose(img)  # unreadable EXIF: as stored
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        wide = np.asarray(img).astype(np.int64)
        gray = (np.clip(wide, 0, 65535) // 257).astype(np.uint8)  # 16-bit range -> 8 bits
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode == "F":
        f = np.nan_to_num(np.asarray(img, dtype=np.float32))
        f = f * 255.0 if f.size and f.max() <= 1.0 else f
        gray = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode in ("P", "PA") and ("transparency" in img.info or img.mode == "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def read_image(path: str) -> np.ndarray:
    """RGB uint8 [H, W, 3] as displayed (`to_rgb`); InputError for non-images, truncated files
    and oversized images."""
    try:
        with Image.open(path) as img:
            _check_size(*img.size, path)
            img.load()
            return to_rgb(img)
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from e


def _open_video(path: str) -> av.container.InputContainer:
    try:
        container = av.open(path)
    except av.FFmpegError as e:  # missing files too (av's FileNotFoundError is one)
        raise InputError(f"{path}: not a readable video ({e})") from e
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: no video stream (not a video file, or truncated)")
    return container


def video_info(path: str) -> tuple[int, float]:
    """(frame count, frames per second) as the file states them; count 0 where it does not."""
    if path.lower().endswith(".gif"):
        try:
            with Image.open(path) as img:
                ms = img.info.get("duration") or 100
                return int(getattr(img, "n_frames", 1)), 1000.0 / ms
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable video ({e})") from e
    with _open_video(path) as c:
        s = c.streams.video[0]
        return int(s.frames or 0), float(s.average_rate or 25)


def read_frames(path: str) -> Iterator[np.ndarray]:
    """RGB uint8 frames [H, W, 3] in display order: GIFs through Pillow, the rest through PyAV.
    InputError names the file when it cannot be opened or a frame cannot be decoded."""
    if path.lower().endswith(".gif"):
        try:
            with Image.open(path) as img:
                _check_size(*img.size, path)
                for frame in ImageSequence.Iterator(img):
                    yield np.asarray(frame.convert("RGB"))
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable video ({e})") from e
        return
    with _open_video(path) as c:
        stream = c.streams.video[0]
        _check_size(stream.codec_context.width, stream.codec_context.height, path)
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, ValueError) as e:
            raise InputError(f"{path}: cannot decode the video ({e})") from e


class VideoWriter:
    """Frames -> `path`: an animated GIF (kept in memory, for GIF inputs) or a streamed video
    (`VIDEO_CODEC`, yuv420p, which needs even sides: odd ones get one black pixel more)."""

    def __init__(self, path: str, fps: float):
        self.path, self.fps = path, fps
        self._gif: list[Image.Image] | None = [] if path.lower().endswith(".gif") else None
        self._out, self._stream = None, None  # opened at the first frame: no frames, no file

    def write(self, img: Image.Image) -> None:
        if self._gif is not None:
            self._gif.append(img)
            return
        rgb = np.asarray(img.convert("RGB"))
        h, w = rgb.shape[:2]
        if self._stream is None:
            self._out = av.open(self.path, "w")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._out.add_stream(VIDEO_CODEC, rate=rate)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)))
        self._out.mux(self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))

    def close(self) -> None:
        if self._gif:
            ms = round(1000 / max(self.fps, 1e-3))
            self._gif[0].save(
                self.path, save_all=True, append_images=self._gif[1:], duration=ms, loop=0
            )
        if self._out is not None:
            self._out.mux(self._stream.encode(None))  # flush the encoder
            self._out.close()
