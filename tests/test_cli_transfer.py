"""``cinemo-animate transfer``: the offline demo, a real clip and edited image, the model folder, and bad input
(exit status 2, nothing loaded, nothing written)."""

import subprocess
import sys

import numpy as np
import pytest
from test_cli import module_env
from test_transfer import moving_clip

from cinemo_core.app import cli
from cinemo_core.app.video_io import probe_video, read_video, write_video

TINY = ["--steps", "1", "--size", "64x64", "--frames", "3"]
pytestmark = pytest.mark.filterwarnings("ignore:Cinemo was trained at")


def run_cli(args: list) -> int:
    return cli.main(["transfer", *[str(a) for a in args]])


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def clip(tmp_path):
    """A 24 fps source clip of 9 frames."""
    return write_video(moving_clip(9), tmp_path / "source.mp4", fps=24)


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "edited.png"
    Image.fromarray(moving_clip(1)[0][..., ::-1].copy()).save(path)
    return path


def test_demo_runs_end_to_end_as_a_module(out_dir):
    out = out_dir / "transfer.mp4"
    completed = subprocess.run(
        [sys.executable, "-m", "cinemo_core", "transfer", "--demo", "--out", str(out), "--steps", "2",
         "--size", "128x64", "--frames", "5", "--seed", "3"],
        capture_output=True, text=True, env=module_env(), timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "RANDOM weights" in completed.stderr and "seed 3" in completed.stderr
    assert str(out) in completed.stdout
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (5, 128, 64, 8.0)
    assert sorted(p.name for p in out_dir.iterdir()) == ["transfer.mp4", "transfer.mp4.json"]


def test_clip_and_image_with_a_frame_step(clip, image, out_dir, capsys):
    out = out_dir / "edited.gif"
    args = ["--video", clip, "--image", image, "--demo", "--out", out, *TINY, "--frame-step", "3", "--seed", "1",
            "--source-prompt", "a square", "--prompt", "a blue square"]
    assert run_cli(args) == 0
    err = capsys.readouterr().err
    assert "fps" not in err  # 24 fps stepped by 3 is Cinemo's 8 fps: no advice
    frames, _ = read_video(out)
    assert frames.shape == (3, 64, 64, 3)
    import hashlib
    import json

    record = json.loads((out_dir / "edited.gif.json").read_text())
    assert record["request"]["command"] == "transfer" and record["seed"] == 1
    assert record["request"]["video"]["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert (record["settings"]["frame_step"], record["settings"]["source_prompt"]) == (3, "a square")
    assert run_cli([*args[:-6], "--seed", "1", "--frame-step", "1", "--out", out_dir / "slow.gif"]) == 0
    assert "--frame-step 3 keeps the motion's speed" in capsys.readouterr().err
    assert not np.array_equal(read_video(out_dir / "slow.gif")[0], frames)


def test_model_folder_gives_the_same_video_as_the_demo(clip, image, out_dir, tmp_path):
    from cinemo_core.app.demo import write_demo_model

    folder = write_demo_model(tmp_path / "Cinemo")
    common = ["--video", clip, "--image", image, *TINY, "--seed", "7", "--quiet", "--device", "cpu"]
    assert run_cli([*common, "--model", folder, "--out", out_dir / "model.gif"]) == 0
    assert run_cli([*common, "--demo", "--out", out_dir / "demo.gif"]) == 0
    assert np.array_equal(read_video(out_dir / "model.gif")[0], read_video(out_dir / "demo.gif")[0])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--frames", "10"], ["--video", "has 9 frames, but 10 frames were asked for"]),
        (["--frames", "17"], ["--frames", "at most 16 frames", "one pass"]),
        (["--loop"], ["unrecognized arguments: --loop"]),
        (["--frames", "4", "--frame-step", "3"], ["has 9 frames, but 4 frames", "frame step of 3"]),
        (["--frame-step", "0"], ["--frame-step", "frame step must be an integer from 1"]),
        (["--inversion-cfg", "-1"], ["--inversion-cfg", ">= 0"]),
        (["--cfg", "-1"], ["--cfg", "official 1)"]),
        (["--dct-noise-timestep", "1000"], ["--dct-noise-timestep", "official 985"]),
        (["--init", "fft"], ["invalid choice: 'fft'"]),
        (["--intensity", "25"], ["--intensity"]),
        (["--size", "100x100"], ["--size", "multiple of 8"]),
        (["--fps", "0"], ["--fps"]),
        (["--device", "tpu"], ["--device"]),
    ],
)
def test_bad_arguments_fail_before_loading_and_write_nothing(args, expected, clip, image, out_dir, capsys,
                                                             nothing_heavy_loads):
    code = run_cli(["--video", clip, "--image", image, "--demo", "--out", out_dir / "clip.mp4", "--frames", "3", *args])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.mp4", b"this is not a video", "cannot read video"),
        ("empty.gif", b"", "cannot read video"),
        ("clip.txt", b"text", "expected one of .mp4"),
    ],
)
def test_unreadable_video(name, content, expected, image, tmp_path, out_dir, capsys, nothing_heavy_loads):
    source = tmp_path / name
    source.write_bytes(content)
    assert run_cli(["--video", source, "--image", image, "--demo", "--out", out_dir / "clip.mp4"]) == 2
    err = capsys.readouterr().err
    assert "--video" in err and expected in err and str(source) in err
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--video", "TMP/missing.mp4", "--image", "IMAGE", "--demo"], "video file not found"),
        (["--video", "CLIP", "--image", "TMP/missing.png", "--demo"], "--image"),
        (["--video", "CLIP", "--image", "CLIP", "--demo"], "Cannot read image"),
        (["--video", "CLIP", "--model", "TMP"], "--image"),
        (["--image", "IMAGE", "--model", "TMP"], "--video"),
        (["--video", "CLIP", "--image", "IMAGE"], "--model DIR"),
        (["--video", "CLIP", "--image", "IMAGE", "--model", "TMP/nope"], "does not exist"),
    ],
)
def test_missing_or_bad_inputs(args, expected, clip, image, tmp_path, out_dir, capsys, nothing_heavy_loads):
    names = {"TMP": str(tmp_path), "CLIP": str(clip), "IMAGE": str(image)}
    args = [names.get(a, a) for a in args]
    args = [a.replace("TMP/", f"{tmp_path}/") for a in args]
    assert run_cli([*args, "--frames", "3", "--out", out_dir / "clip.mp4"]) == 2
    assert expected in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


def test_interrupted_run_writes_nothing(out_dir, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cinemo_core.app.transfer.transfer_motion", interrupted)
    assert run_cli(["--demo", "--out", out_dir / "clip.mp4", *TINY]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


def test_help_lists_the_options(capsys):
    assert run_cli(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--video", "--image", "--source-prompt", "--prompt", "--negative-prompt", "--inversion-cfg",
                 "--frame-step", "--demo", "--model", "--intensity", "--motion-id", "--steps", "--cfg", "--seed",
                 "--frames", "--size", "--no-dct", "--dct-low-pass", "--dct-noise-timestep", "--vae", "--device",
                 "--dtype", "--fps", "--quiet", "--no-sidecar"):
        assert flag in text
    assert "default 985" in text
    assert cli.main(["--help"]) == 0
    assert "transfer --help" in capsys.readouterr().out
