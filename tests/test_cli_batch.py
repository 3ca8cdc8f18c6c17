"""``cinemo-animate batch``: shards, resuming, a killed job, bad lines failing alone, sidecars that remake a clip
(the offline demo model, tiny sizes)."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from test_cli import module_env, read_until

from cinemo_core.app import cli
from cinemo_core.app.cli.jobs import Shard, shard_from_environment
from cinemo_core.app.video_io import probe_video, read_video

TINY = ["--steps", "1", "--size", "64x64", "--frames", "3"]


def run_batch(args: list) -> int:
    return cli.main(["batch", *[str(a) for a in args]])


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        pixels = (np.random.default_rng(i).random((48, 80, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def write_manifest(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.fixture
def manifest(images):
    return write_manifest(images / "jobs.jsonl", [
        {"image": f"img{i}.png", "seed": i, "out": f"clip{i}.gif", "prompt": f"job {i}"} for i in range(4)
    ])


def outputs(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def no_model_loads(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded although every clip was already made")

    monkeypatch.setattr("cinemo_core.app.demo.build_demo_components", forbidden)


def test_two_shards_write_every_job_once_and_a_second_run_writes_nothing(manifest, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet", "--shard", "0/2"]) == 0
    first = outputs(out)
    assert first == ["clip0.gif", "clip0.gif.json", "clip2.gif", "clip2.gif.json"]
    monkeypatch.setenv("RANK", "1")  # torchrun's shard when --shard is absent
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet"]) == 0
    assert "2 made, 0 skipped" in capsys.readouterr().out
    assert outputs(out) == sorted(f"clip{i}.gif{ext}" for i in range(4) for ext in ("", ".json"))
    made = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr("cinemo_core.app.demo.build_demo_components",
                        lambda **kw: pytest.fail("the model was loaded although every clip was already made"))
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet"]) == 0
    assert "0 made, 4 skipped (already made), 0 failed" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == made


def test_changed_settings_are_made_again(manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet", "--shard", "0/4"]) == 0
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet", "--shard", "0/4",
                      "--intensity", "3"]) == 0
    assert "1 made, 0 skipped" in capsys.readouterr().out.splitlines()[-1]
    assert json.loads((out / "clip0.gif.json").read_text())["settings"]["intensity"] == 3


def test_a_bad_line_fails_alone_with_its_line_number(images, tmp_path, capsys):
    manifest = write_manifest(images / "jobs.jsonl", [
        {"image": "img0.png", "seed": 1, "out": "a.gif"},
        {"image": "missing.png"},
        "not json",
        {"image": "img1.png", "frames": 1},
        {"image": "img1.png", "seed": "x"},
        {"image": "img2.png", "sedd": 3},
        {"image": "img2.png", "model": "elsewhere"},
        {"image": "img3.png", "out": "a.gif"},
        {"image": "img3.png", "seed": 2, "frames": 4},
    ])
    out = tmp_path / "out"
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "2 made, 0 skipped (already made), 7 failed" in captured.out
    errors = [line for line in captured.err.splitlines() if "failed:" in line]
    expected = [("line 2:", "missing.png"), ("line 3:", "not valid JSON"), ("line 4:", "'frames'"),
                ("line 5:", "'seed'"), ("line 6:", "unknown key 'sedd'"), ("line 7:", "'model' is set once"),
                ("line 8:", "as line 1 does")]
    assert len(errors) == len(expected)
    for line, (where, reason) in zip(errors, expected):
        assert where in line and reason in line, line
    made = [name for name in outputs(out) if not name.endswith(".json")]
    assert len(made) == 2 and "a.gif" in made
    (other,) = [name for name in made if name != "a.gif"]
    assert other.startswith("img3-") and probe_video(out / other).num_frames == 4


def test_sidecar_remakes_the_same_frames(manifest, tmp_path):
    out = tmp_path / "out"
    assert run_batch([manifest, "--demo", "--out-dir", out, *TINY, "--quiet", "--shard", "1/4",
                      "--cfg", "3"]) == 0
    record = json.loads((out / "clip1.gif.json").read_text())
    settings = record["settings"]
    assert settings["seed"] == 1 == record["seed"] and settings["prompt"] == "job 1"
    assert (settings["guidance_scale"], settings["num_frames"]) == (3.0, 3)
    again = tmp_path / "again.gif"
    assert cli.main([record["request"]["image"]["path"], "--demo", "--out", str(again), "--quiet",
                     "--seed", str(settings["seed"]), "--prompt", settings["prompt"], "--cfg",
                     str(settings["guidance_scale"]), "--steps", str(settings["steps"]), "--frames",
                     str(settings["num_frames"]), "--size", f"{settings['width']}x{settings['height']}"]) == 0
    assert np.array_equal(read_video(again)[0], read_video(out / "clip1.gif")[0])


def test_a_folder_animates_each_image(images, tmp_path):
    out = tmp_path / "out"
    assert run_batch([images, "--demo", "--out-dir", out, *TINY, "--quiet", "--format", "webp",
                      "--shard", "1/2"]) == 0
    assert outputs(out) == ["img1.webp", "img1.webp.json", "img3.webp", "img3.webp.json"]


def test_a_csv_manifest(images, tmp_path):
    (images / "jobs.csv").write_text("image,seed,loop,out\nimg0.png,5,true,loop.gif\nimg1.png,,,\n")
    out = tmp_path / "out"
    assert run_batch([images / "jobs.csv", "--demo", "--out-dir", out, *TINY, "--quiet", "--shard", "0/2"]) == 0
    record = json.loads((out / "loop.gif.json").read_text())
    assert (record["seed"], record["settings"]["loop"]) == (5, True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shard", "2/2"], "shard 2 of 2 does not exist"),
        (["--shard", "one"], "expected K/N"),
        (["--frames", "1"], "--frames"),
        (["--fps", "0"], "--fps"),
    ],
)
def test_bad_command_line_fails_before_anything(args, expected, manifest, tmp_path, capsys, no_model_loads):
    assert run_batch([manifest, "--demo", "--out-dir", tmp_path / "out", *args]) == 2
    assert expected in capsys.readouterr().err
    assert outputs(tmp_path / "out") == []


def test_empty_or_missing_source(tmp_path, capsys, no_model_loads):
    (tmp_path / "empty.jsonl").write_text("\n")
    assert run_batch([tmp_path / "empty.jsonl", "--demo", "--out-dir", tmp_path / "out"]) == 2
    assert "no job in the manifest" in capsys.readouterr().err
    assert run_batch([tmp_path / "nope.jsonl", "--demo", "--out-dir", tmp_path / "out"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_shard_from_torchrun_or_slurm():
    assert shard_from_environment({}) == Shard()
    assert shard_from_environment({"RANK": "3", "WORLD_SIZE": "4"}).index == 3
    slurm = shard_from_environment({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4",
                                    "SLURM_ARRAY_TASK_COUNT": "3"})
    assert (slurm.index, slurm.count) == (1, 3)
    with pytest.raises(cli.UsageError, match="does not exist"):
        shard_from_environment({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")
def test_a_job_killed_while_sampling_leaves_no_file_and_is_made_on_the_next_run(images, tmp_path):
    manifest = write_manifest(images / "jobs.jsonl", [
        {"image": "img0.png", "seed": 0, "steps": 400, "out": "slow.gif"},
        {"image": "img1.png", "seed": 1, "out": "fast.gif"},
    ])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cinemo_core", "batch", str(manifest), "--demo", "--out-dir", str(out),
               "--size", "64x64", "--frames", "3", "--steps", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=module_env())
    seen = read_until(process, b"Denoising")
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, (seen + rest).decode(errors="replace")
    assert b"interrupted" in seen + rest
    assert outputs(out) == []
    assert run_batch([manifest, "--demo", "--out-dir", out, "--size", "64x64", "--frames", "3", "--steps", "1",
                      "--quiet"]) == 0
    assert outputs(out) == ["fast.gif", "fast.gif.json", "slow.gif", "slow.gif.json"]


def test_every_manifest_key_is_parsed_like_its_option():
    """The manifest keys come from the options the batch parser records: each has its option's action."""
    from cinemo_core.app.cli.batch import JOB_KEYS, build_parser
    from cinemo_core.app.cli.jobs import job_actions

    keys = set(JOB_KEYS.values()) | {"no_dct", "fps"}
    actions = job_actions(build_parser(), keys)
    assert set(actions) == keys
    assert actions["size"].type("64x48") == (64, 48)
    assert actions["loop"].nargs == 0 and actions["fps"].type is float
    assert {option for action in actions.values() for option in action.option_strings} >= {"--cfg", "--end-image"}
