"""Fuzzed files for the video reader (property-based, a bounded number of cases).

Every case must end in the reader's named error (``VideoReadError``, a ``ValueError`` naming the file) or frames
of the right layout; never another exception, a hang or a huge
allocation. Cases are derived from small valid clips written by ``write_video``: truncated, bytes changed,
empty, the container of one extension under another's name, and GIF/WebP headers claiming absurd sizes.
``derandomize`` keeps the cases the same from run to run; ``CINEMO_FUZZ_EXAMPLES`` sets the cases per test.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cinemo_core.app.video_io import SUPPORTED_EXTENSIONS, VideoReadError, read_video, write_video

#: Seconds one case may take: decoding a 4-frame 32x24 clip takes milliseconds.
CASE_LIMIT = 20.0
FUZZ = settings(max_examples=int(os.environ.get("CINEMO_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: Before the fix PyAV's DecoderNotFoundError (a truncated MP4), PIL's errors and numpy's "need at least one
#: array to stack" (a file with no frames) came out as they were.
NAMED = (VideoReadError,)


def _clip(extension: str) -> bytes:
    import tempfile

    frames = np.zeros((4, 24, 32, 3), dtype=np.uint8)
    for i in range(4):
        frames[i, :, 8 * i : 8 * i + 8] = (255, 40 * i, 0)
    with tempfile.TemporaryDirectory() as folder:
        return write_video(frames, Path(folder) / f"clip{extension}", fps=8).read_bytes()


CLIPS = {extension: _clip(extension) for extension in SUPPORTED_EXTENSIONS}


def read_outcome(path: Path) -> str:
    """'read' (checked: uint8 frames (F, H, W, 3), F >= 1, a finite rate) or the named error's class."""
    start = time.perf_counter()
    try:
        frames, fps = read_video(path, max_frames=64)
    except NAMED as error:
        assert path.name in str(error), str(error)
        outcome = type(error).__name__
    else:
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) >= 1
        assert 1 <= len(frames) <= 64 and np.isfinite(fps) and fps >= 0
        outcome = "read"
    assert time.perf_counter() - start < CASE_LIMIT
    return outcome


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(extension=st.sampled_from(SUPPORTED_EXTENSIONS), fraction=st.floats(0.0, 0.999))
@example(extension=".mp4", fraction=0.0)
def test_truncated_videos(tmp_path, extension, fraction):
    data = CLIPS[extension]
    read_outcome(_write(tmp_path, f"cut{extension}", data[: int(len(data) * fraction)]))


@FUZZ
@given(
    extension=st.sampled_from(SUPPORTED_EXTENSIONS),
    changes=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 255)), min_size=1, max_size=16),
)
def test_videos_with_changed_bytes(tmp_path, extension, changes):
    data = bytearray(CLIPS[extension])
    for where, value in changes:
        data[int(len(data) * where)] = value
    read_outcome(_write(tmp_path, f"changed{extension}", bytes(data)))


@FUZZ
@given(name=st.sampled_from(SUPPORTED_EXTENSIONS), container=st.sampled_from(SUPPORTED_EXTENSIONS + ("random",)),
       noise=st.binary(max_size=64))
def test_wrong_container_or_random_bytes_under_a_video_name(tmp_path, name, container, noise):
    data = noise if container == "random" else CLIPS[container]
    outcome = read_outcome(_write(tmp_path, f"clip{name}", data))
    if container == "random":
        assert outcome != "read"


@pytest.mark.parametrize("extension", SUPPORTED_EXTENSIONS + (".mov", ".txt"))
def test_empty_file_is_a_named_error(tmp_path, extension):
    with pytest.raises(VideoReadError, match=f"empty{extension}"):
        read_video(_write(tmp_path, f"empty{extension}", b""))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        read_video(tmp_path / "nothing.mp4")


def _gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose screen and one image claim ``width x height``, with one byte of pixel data."""
    screen = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00" + b"\x02\x02\x4c\x01\x00"
    return screen + image + b"\x3b"


@FUZZ
@given(width=st.integers(1, 65535), height=st.integers(1, 65535))
@example(width=65535, height=65535)
def test_gif_claiming_an_absurd_size(tmp_path, width, height):
    read_outcome(_write(tmp_path, "huge.gif", _gif_claiming(width, height)))


@FUZZ
@given(width=st.integers(1, 16384), height=st.integers(1, 16384))
@example(width=16383, height=16383)
def test_webp_claiming_an_absurd_size(tmp_path, width, height):
    """A lossless WebP (VP8L) header with the claimed size and a few bytes of data."""
    bits = (width - 1) | ((height - 1) << 14)
    body = b"\x2f" + struct.pack("<I", bits) + b"\x00\x00\x00\x00"
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
    read_outcome(_write(tmp_path, "huge.webp", data))
