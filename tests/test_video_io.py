"""Video writing: formats read back with the right frames, size and rate; failures leave nothing behind."""

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from cinemo_core.app import video_io
from cinemo_core.app.video_io import check_output_path, probe_video, read_video, write_video


def moving_square(num_frames: int = 6, height: int = 48, width: int = 80) -> np.ndarray:
    """Distinct frames: a colour ramp over time with a white square moving right."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        frames[i] = (40 + 30 * i, 120, 220 - 30 * i)
        frames[i, 10:26, 4 + 8 * i : 20 + 8 * i] = 255
    return frames


def ffmpeg_frames(path: Path, width: int, height: int) -> np.ndarray:
    """The frames as FFmpeg decodes them (the binary from imageio-ffmpeg): a reader independent of ours."""
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("extension", "fps", "expected_fps", "max_error"),
    [
        (".mp4", 8.0, 8.0, 4.0),
        (".mp4", 12.5, 12.5, 4.0),
        (".webp", 8.0, 8.0, 4.0),
        (".gif", 8.0, 100.0 / 12, 2.0),  # GIF delays are 1/100 s: 125 ms is stored as 12 cs
    ],
)
def test_round_trip(tmp_path, extension, fps, expected_fps, max_error):
    frames = moving_square()
    out = write_video(frames, tmp_path / f"clip{extension}", fps=fps)
    assert out == tmp_path / f"clip{extension}"
    independent = ffmpeg_frames(out, width=80, height=48)
    assert independent.shape == frames.shape
    # lossy codecs: pixels close to the originals, and frame order kept (each frame nearest its own original)
    assert np.abs(independent.astype(float) - frames).mean() < max_error
    for i, frame in enumerate(independent):
        errors = [np.abs(frame.astype(float) - original).mean() for original in frames]
        assert int(np.argmin(errors)) == i
    # our reader gives what FFmpeg gives (up to the two decoders' YUV-to-RGB rounding)
    decoded, read_fps = read_video(out)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(float) - independent).mean() < 3.0
    assert read_fps == pytest.approx(expected_fps, abs=1e-3)
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height) == (6, 80, 48)
    assert folder_listing(tmp_path) == [f"clip{extension}"]


def test_extension_chooses_container(tmp_path):
    frames = moving_square(3)
    heads = {ext: write_video(frames, tmp_path / f"v{ext}").read_bytes()[:12] for ext in (".mp4", ".webp", ".gif")}
    assert heads[".mp4"][4:8] == b"ftyp"
    assert heads[".webp"][:4] == b"RIFF" and heads[".webp"][8:12] == b"WEBP"
    assert heads[".gif"][:6] == b"GIF89a"


def test_uppercase_extension_is_accepted(tmp_path):
    out = write_video(moving_square(2), tmp_path / "CLIP.GIF")
    assert probe_video(out).num_frames == 2


def test_failed_encode_leaves_no_file_and_keeps_existing(tmp_path, monkeypatch):
    existing = tmp_path / "clip.mp4"
    existing.write_bytes(b"previous video")

    def broken_writer(frames, target, fps):
        Path(target).write_bytes(b"half a video")
        raise RuntimeError("encoder crashed")

    monkeypatch.setitem(video_io._WRITERS, ".mp4", broken_writer)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_video(moving_square(), existing)
    assert existing.read_bytes() == b"previous video"
    assert folder_listing(tmp_path) == ["clip.mp4"]


def test_interrupted_encode_leaves_no_file(tmp_path, monkeypatch):
    def interrupted_writer(frames, target, fps):
        Path(target).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setitem(video_io._WRITERS, ".webp", interrupted_writer)
    with pytest.raises(KeyboardInterrupt):
        write_video(moving_square(), tmp_path / "clip.webp")
    assert folder_listing(tmp_path) == []


def test_temporary_file_is_hidden_in_the_destination_folder(tmp_path, monkeypatch):
    seen = []

    def spying_writer(frames, target, fps):
        seen.append(Path(target))
        Path(target).write_bytes(b"x")

    monkeypatch.setitem(video_io._WRITERS, ".gif", spying_writer)
    write_video(moving_square(), tmp_path / "clip.gif")
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".clip.") and seen[0].suffix == ".gif"
    assert folder_listing(tmp_path) == ["clip.gif"]


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("clip.avi", ValueError, r"\.mp4, \.webp, \.gif"),
        ("clip", ValueError, "extension"),
        ("missing_folder/clip.mp4", FileNotFoundError, "does not exist"),
    ],
)
def test_bad_destinations(tmp_path, name, error, message):
    with pytest.raises(error, match=message):
        write_video(moving_square(), tmp_path / name)
    assert folder_listing(tmp_path) == []


def test_destination_that_is_a_folder(tmp_path):
    (tmp_path / "clip.mp4").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        check_output_path(tmp_path / "clip.mp4")


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((4, 16, 16, 3), dtype=np.float32), "uint8"),
        (np.zeros((16, 16, 3), dtype=np.uint8), "shaped"),
        (np.zeros((4, 16, 16, 4), dtype=np.uint8), "shaped"),
        (np.zeros((0, 16, 16, 3), dtype=np.uint8), "shaped"),
    ],
)
def test_bad_frames(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        write_video(frames, tmp_path / "clip.gif")
    assert folder_listing(tmp_path) == []


def test_odd_size_mp4_is_refused_cleanly(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        write_video(np.zeros((2, 15, 16, 3), dtype=np.uint8), tmp_path / "clip.mp4")
    assert folder_listing(tmp_path) == []


@pytest.mark.parametrize("fps", [0, -1, 61, float("nan"), "fast"])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(ValueError, match="fps"):
        write_video(moving_square(), tmp_path / "clip.gif", fps=fps)
    assert folder_listing(tmp_path) == []
