"""Writing (and reading back) short RGB videos: ``.mp4`` (H.264 via PyAV), ``.webp`` and ``.gif`` (Pillow).

Every writer goes through :func:`write_video`, which encodes into a hidden temporary file in the
destination folder and renames it over the destination only once the encoder has finished. An
interrupted or failed run therefore never leaves a truncated video behind, and an existing file at
the destination is kept intact until the new one is complete. (Only a hard kill, such as SIGKILL or
a power cut, can leave the hidden ``.NAME.*.partial.EXT`` file behind; never a broken ``NAME``.)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..settings import MAX_READ_PIXELS  # a frame's limit too: decoders allocate what a header claims

if TYPE_CHECKING:
    from PIL import Image

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mp4", ".webp", ".gif")
#: What :func:`read_video` decodes: the written formats, and other common containers through PyAV.
READABLE_EXTENSIONS: tuple[str, ...] = SUPPORTED_EXTENSIONS + (".mov", ".mkv", ".webm", ".avi", ".m4v")
MAX_FPS = 60.0
MP4_CRF = 17  # visually lossless for x264; the official demo uses imageio quality 7-8 (similar)
WEBP_QUALITY = 90
_H264_ENCODERS = ("libx264", "h264", "libopenh264")


@dataclass(frozen=True)
class VideoInfo:
    """What a written video contains, as read back from the file."""

    num_frames: int
    width: int
    height: int
    fps: float


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Validate a destination before any work is done; return it as a :class:`Path`.

    Raises:
        ValueError: unsupported extension, or the path names a folder.
        FileNotFoundError: the destination folder does not exist.
        PermissionError: the destination folder is not writable.
    """
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"Output file '{out}' has the extension {suffix or '(none)'!r}; the video format is chosen by the "
            f"extension, use one of {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    if out.is_dir():
        raise ValueError(f"Output path '{out}' is a folder; give a file name such as '{out / ('video' + suffix)}'.")
    if suffix == ".mp4":
        try:
            _pick_h264_encoder()
        except RuntimeError as error:
            raise ValueError(str(error)) from None
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"The folder of the output file '{out}' does not exist; create '{parent}' first or choose another path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write into the folder '{parent}' (permission denied); choose another path.")
    return out


def check_fps(fps: float) -> float:
    """Return ``fps`` as a float if it is a usable frame rate (0 < fps <= 60), else raise ``ValueError``."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a number, got {fps!r}.") from None
    if not 0.0 < value <= MAX_FPS:
        raise ValueError(f"fps must be greater than 0 and at most {MAX_FPS:g}, got {fps!r}.")
    return value


def _check_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
        raise ValueError(f"Expected frames shaped (num_frames, height, width, 3), got {array.shape}.")
    if array.dtype != np.uint8:
        raise ValueError(f"Expected uint8 frames (0..255), got dtype {array.dtype}.")
    if array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"Frames must be at least 1x1 pixels, got {array.shape[2]}x{array.shape[1]}.")
    return np.ascontiguousarray(array)


def _pick_h264_encoder() -> str:
    import av

    available = av.codecs_available
    for name in _H264_ENCODERS:
        if name in available:
            try:
                av.codec.Codec(name, "w")
            except Exception:  # listed but not usable as an encoder in this build
                continue
            return name
    raise RuntimeError(
        "This PyAV/FFmpeg build has no H.264 encoder, so .mp4 cannot be written; write .webp or .gif instead, "
        "or install the PyAV wheel from PyPI (`pip install av`), which includes libx264."
    )


def _write_mp4(frames: np.ndarray, target: str, fps: float) -> None:
    import av

    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even width and height, got {width}x{height}; write .webp or .gif.")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(target, mode="w", format="mp4") as container:
        stream = container.add_stream(_pick_h264_encoder(), rate=rate)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": str(MP4_CRF), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _pillow_frames(frames: np.ndarray) -> list["Image.Image"]:
    from PIL import Image

    return [Image.fromarray(frame) for frame in frames]


def _write_webp(frames: np.ndarray, target: str, fps: float) -> None:
    from PIL import features

    if not features.check("webp"):
        raise RuntimeError("This Pillow build has no WebP support; write .mp4 or .gif instead.")
    images = _pillow_frames(frames)
    images[0].save(
        target,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=int(round(1000.0 / fps)),
        loop=0,
        quality=WEBP_QUALITY,
        method=4,
    )


def _write_gif(frames: np.ndarray, target: str, fps: float) -> None:
    # GIF delays are stored in 1/100 s, so e.g. 8 fps (125 ms) plays at 12 cs = 8.33 fps. Pillow merges
    # consecutive identical frames into one longer frame, which plays back identically.
    images = _pillow_frames(frames)
    images[0].save(
        target,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(round(1000.0 / fps)),
        loop=0,
    )


_WRITERS: dict[str, Callable[[np.ndarray, str, float], None]] = {
    ".mp4": _write_mp4,
    ".webp": _write_webp,
    ".gif": _write_gif,
}


def _claim_temporary_path(out: Path) -> Path:
    """Create an empty, uniquely named hidden file next to ``out`` (normal permissions, honours umask)."""
    while True:
        candidate = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.partial{out.suffix}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate


def write_video(frames: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike[str], fps: float = 8.0) -> Path:
    """Write ``frames`` (uint8, ``(num_frames, height, width, 3)`` RGB) to ``path`` atomically.

    The format follows the extension (``.mp4``: H.264 yuv420p, ``.webp``: animated lossy WebP,
    ``.gif``: animated GIF), all looping. Returns the written path. On any error or interruption
    the temporary file is removed and ``path`` is left as it was.
    """
    out = check_output_path(path)
    rate = check_fps(fps)
    array = _check_frames(frames)
    writer = _WRITERS[out.suffix.lower()]
    temporary = _claim_temporary_path(out)
    try:
        writer(array, str(temporary), rate)
        os.replace(temporary, out)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return out


class VideoReadError(ValueError):
    """A file that is not a readable video (damaged, truncated, empty, of another format, absurdly large)."""




def read_video(path: str | os.PathLike[str], max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video: ``(frames uint8 (F, H, W, 3), fps)``; at most ``max_frames`` frames when given.

    Reads what :func:`write_video` writes, and through PyAV also ``READABLE_EXTENSIONS``' other containers.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        VideoReadError: (a ``ValueError``) naming the file, for anything that does not decode to at least one
            frame: an unknown extension, a damaged, truncated or empty file, another format under the name.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix not in READABLE_EXTENSIONS:
        raise VideoReadError(f"Cannot read '{source}': expected one of {', '.join(READABLE_EXTENSIONS)}.")
    if not source.is_file():
        raise FileNotFoundError(f"No video at '{source}'.")
    limit = max_frames if max_frames is not None else float("inf")
    try:
        frames, fps = (_read_with_pillow if suffix in (".webp", ".gif") else _read_with_pyav)(source, limit)
    except Exception as error:  # noqa: BLE001 - every decoder failure means the same to the caller
        raise VideoReadError(
            f"Cannot read '{source}' as a {suffix[1:].upper()} video (damaged, truncated, or not that format): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not frames:
        raise VideoReadError(f"Cannot read '{source}': it holds no video frames.")
    return np.stack(frames), fps


def _check_frame_size(width: int, height: int) -> None:
    if width * height > MAX_READ_PIXELS:
        raise ValueError(f"its frames claim {width}x{height} pixels, more than {MAX_READ_PIXELS} pixels")


def _read_with_pillow(source: Path, limit: float) -> tuple[list[np.ndarray], float]:
    from PIL import Image, ImageSequence

    frames: list[np.ndarray] = []
    with Image.open(source) as image:
        _check_frame_size(*image.size)
        durations = []
        for frame in ImageSequence.Iterator(image):
            if len(frames) >= limit:
                break
            frames.append(np.asarray(frame.convert("RGB")))  # loads the frame, which sets its duration
            durations.append(frame.info.get("duration", 0) or 0)
    mean_ms = float(np.mean(durations)) if durations else 0.0
    return frames, (1000.0 / mean_ms if mean_ms > 0 else 0.0)


def _read_with_pyav(source: Path, limit: float) -> tuple[list[np.ndarray], float]:
    import av

    frames: list[np.ndarray] = []
    with av.open(str(source)) as container:
        if not container.streams.video:
            raise ValueError("it has no video stream")
        stream = container.streams.video[0]
        _check_frame_size(stream.codec_context.width, stream.codec_context.height)
        for frame in container.decode(stream):
            if len(frames) >= limit:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
        fps = float(stream.average_rate or stream.guessed_rate or 0)
    return frames, fps


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, size and frame rate of a written video (decodes it fully)."""
    frames, fps = read_video(path)
    return VideoInfo(num_frames=int(frames.shape[0]), width=int(frames.shape[2]), height=int(frames.shape[1]), fps=fps)
