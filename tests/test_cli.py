"""The ``cinemo-animate`` command: the offline demo end to end, the model-folder path, and bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import cinemo_core
from cinemo_core.app import cli
from cinemo_core.model.devices import CpuFeatures
from cinemo_core.app.video_io import probe_video, read_video

REPO_ROOT = Path(cinemo_core.__file__).resolve().parents[1]
SMALL = ["--steps", "2", "--size", "128x64", "--frames", "5"]
TINY = ["--steps", "1", "--size", "64x64", "--frames", "3"]


def run_cli(args: list[str]) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture
def image(tmp_path) -> Path:
    """A small valid PNG to animate."""
    from PIL import Image

    path = tmp_path / "input.png"
    gradient = np.linspace(0, 255, 96 * 64 * 3).reshape(64, 96, 3).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def demo_model_folder(tmp_path_factory) -> Path:
    from cinemo_core.app.demo import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("model") / "Cinemo")


def module_env() -> dict[str, str]:
    """The environment for ``python -m cinemo_core`` with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def read_until(process: subprocess.Popen, marker: bytes) -> bytes:
    """The process's stderr up to ``marker`` (asserted to appear)."""
    seen = b""
    give_up = time.monotonic() + 240  # a safety net against hanging, not a timing check
    while marker not in seen and time.monotonic() < give_up:
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    assert marker in seen, seen.decode(errors="replace")
    return seen


def test_demo_runs_end_to_end_as_a_module(out_dir):
    out = out_dir / "demo.mp4"
    completed = subprocess.run(
        [sys.executable, "-m", "cinemo_core", "--demo", "--out", str(out), *SMALL, "--fps", "10", "--seed", "3"],
        capture_output=True, text=True, env=module_env(), timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "RANDOM weights" in completed.stderr and "meaningless" in completed.stderr
    assert "seed 3" in completed.stderr and str(out) in completed.stdout
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height) == (5, 128, 64)
    assert info.fps == pytest.approx(10.0)
    assert sorted(p.name for p in out_dir.iterdir()) == ["demo.mp4", "demo.mp4.json"]


def test_demo_with_defaults_except_size_and_steps(out_dir, capsys):
    """Default frames (16) and fps (8); webp output; the shipped sample image."""
    out = out_dir / "demo.webp"
    assert run_cli(["--demo", "--out", out, "--steps", "1", "--size", "64x64", "--quiet"]) == 0
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (16, 64, 64, 8.0)
    assert "RANDOM weights" in capsys.readouterr().err


def test_demo_exactly_as_the_readme_runs_it(out_dir, capsys):
    """No settings given: the demo's own size and steps, the default frames and fps, honest about the weights."""
    out = out_dir / "demo.mp4"
    assert run_cli(["--demo", "--out", out]) == 0
    info = probe_video(out)
    width, height = cli.DEMO_SIZE
    assert (info.num_frames, info.width, info.height, info.fps) == (16, width, height, 8.0)
    err = capsys.readouterr().err
    assert "RANDOM weights" in err and "meaningless" in err
    assert f"demo: 16 frames at {width}x{height}, {cli.DEMO_STEPS} steps" in err


def test_model_folder_gives_the_same_video_as_the_demo(demo_model_folder, image, out_dir):
    common = ["--prompt", "leaves rustling", *SMALL, "--seed", "7", "--quiet", "--device", "cpu"]
    assert run_cli([image, "--model", demo_model_folder, "--out", out_dir / "model.gif", *common]) == 0
    assert run_cli([image, "--demo", "--out", out_dir / "demo.gif", *common]) == 0
    from_folder, _ = read_video(out_dir / "model.gif")
    from_demo, _ = read_video(out_dir / "demo.gif")
    assert from_folder.shape == (5, 64, 128, 3)
    assert np.array_equal(from_folder, from_demo)


def test_tokenizer_longer_than_the_text_encoder_is_cut_to_its_positions(demo_model_folder, image, tmp_path, out_dir):
    """ComfyUI's own sd1_tokenizer folder says model_max_length 8192; CLIP-L has 77 positions."""
    import json
    import shutil

    folder = tmp_path / "long_tokenizer"
    shutil.copytree(demo_model_folder, folder)
    config_file = folder / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["model_max_length"] = 8192
    config_file.write_text(json.dumps(config))
    common = ["--prompt", "leaves rustling " * 30, *TINY, "--seed", "3", "--quiet", "--device", "cpu"]
    assert run_cli([image, "--model", folder, "--out", out_dir / "long.gif", *common]) == 0
    assert run_cli([image, "--model", demo_model_folder, "--out", out_dir / "plain.gif", *common]) == 0
    assert np.array_equal(read_video(out_dir / "long.gif")[0], read_video(out_dir / "plain.gif")[0])


def test_model_folder_with_the_temporal_decoder(demo_model_folder, image, tmp_path, out_dir, capsys):
    """The official default VAE: 16 frames decode as chunks of 14 + 2 through the CLI."""
    import shutil

    from diffusers import AutoencoderKLTemporalDecoder

    folder = tmp_path / "with_temporal"
    shutil.copytree(demo_model_folder, folder)
    torch.manual_seed(0)
    AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), layers_per_block=1
    ).save_pretrained(folder / "vae_temporal_decoder")
    out = out_dir / "clip.mp4"
    assert run_cli([image, "--model", folder, "--out", out, "--steps", "1", "--size", "64x64", "--seed", "1"]) == 0
    assert "Loading Cinemo" in capsys.readouterr().err
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (16, 64, 64, 8.0)


def test_seed_makes_runs_repeatable_and_settings_matter(image, out_dir):
    base = [image, "--demo", *TINY, "--quiet"]
    assert run_cli([*base, "--seed", "1", "--out", out_dir / "a.gif"]) == 0
    assert run_cli([*base, "--seed", "1", "--out", out_dir / "b.gif"]) == 0
    assert run_cli([*base, "--seed", "2", "--out", out_dir / "c.gif"]) == 0
    assert run_cli([*base, "--seed", "1", "--no-dct", "--out", out_dir / "d.gif"]) == 0
    a, b, c, d = (read_video(out_dir / f"{n}.gif")[0] for n in "abcd")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


def test_long_looping_video_uses_windows_and_the_loop(image, out_dir, capsys, monkeypatch):
    """--frames above 16 goes through the context windows, --loop through the loop ramp, into the video."""
    from cinemo_core.app import pipeline

    seen = {}
    real = pipeline.sample_residual

    def recording(*args, **kwargs):
        seen.update(frames=args[1].shape[2], windows=kwargs["windows"], loop_ramp=kwargs["loop_ramp"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "sample_residual", recording)
    out = out_dir / "loop.gif"
    assert run_cli([image, "--demo", "--out", out, "--steps", "1", "--size", "64x64", "--frames", "21", "--loop"]) == 0
    assert seen == {"frames": 20, "windows": pipeline.LONG_VIDEO_WINDOWS, "loop_ramp": 5}
    assert "overlapping windows" in capsys.readouterr().err
    assert probe_video(out).num_frames == 21


def test_sidecar_holds_the_seed_and_settings_and_remakes_the_clip(image, out_dir):
    """A random seed is recorded; the sidecar's settings given back as flags make the same frames."""
    import json

    assert run_cli([image, "--demo", "--out", out_dir / "a.gif", *TINY, "--intensity", "4", "--quiet"]) == 0
    record = json.loads((out_dir / "a.gif.json").read_text())
    settings = record["settings"]
    assert isinstance(record["seed"], int) and settings["seed"] == record["seed"]
    assert record["request"]["settings"]["seed"] is None and record["request"]["image"]["path"] == str(image)
    assert (settings["intensity"], settings["num_frames"], settings["steps"]) == (4, 3, 1)
    assert record["request"]["model"]["demo"] is True and record["cinemo_animate"]
    again = [image, "--demo", "--out", out_dir / "b.gif", "--quiet", "--no-sidecar",
             "--seed", settings["seed"], "--intensity", settings["intensity"], "--frames", settings["num_frames"],
             "--steps", settings["steps"], "--size", f"{settings['width']}x{settings['height']}",
             "--cfg", settings["guidance_scale"], "--init", settings["init"]]
    assert run_cli(again) == 0
    assert not (out_dir / "b.gif.json").exists()
    assert np.array_equal(read_video(out_dir / "a.gif")[0], read_video(out_dir / "b.gif")[0])


def test_existing_output_is_replaced(image, out_dir):
    out = out_dir / "clip.gif"
    out.write_bytes(b"old")
    assert run_cli([image, "--demo", "--out", out, *TINY, "--quiet"]) == 0
    assert probe_video(out).num_frames == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--intensity", "25"], ["--intensity", "0 (least motion) to 19"]),
        (["--intensity", "-1"], ["--intensity"]),
        (["--size", "100x100"], ["--size", "multiple of 8"]),
        (["--size", "32x32"], ["--size", "from 64"]),
        (["--size", "big"], ["WIDTHxHEIGHT"]),
        (["--frames", "1"], ["--frames", "from 2"]),
        (["--frames", "500"], ["--frames"]),
        (["--steps", "0"], ["--steps"]),
        (["--cfg", "-1"], ["--cfg"]),
        (["--cfg", "nan"], ["--cfg"]),
        (["--seed", "-5"], ["--seed"]),
        (["--dct-low-pass", "1.5"], ["--dct-low-pass", "[0, 1]"]),
        (["--dct-noise-timestep", "1000"], ["--dct-noise-timestep", "0 to 999"]),
        (["--motion-id", "inf"], ["--motion-id"]),
        (["--intensity", "3", "--motion-id", "90"], ["not allowed with"]),
        (["--init", "dct", "--no-dct"], ["not allowed with"]),
        (["--fps", "0"], ["--fps"]),
        (["--dtype", "int8"], ["--dtype"]),
        (["--device", "tpu"], ["--device", "Unknown device"]),
    ],
)
def test_bad_arguments_fail_before_loading_and_write_nothing(args, expected, out_dir, capsys, nothing_heavy_loads):
    code = run_cli(["--demo", "--out", out_dir / "clip.mp4", *args])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err
    assert list(out_dir.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu(out_dir, capsys, nothing_heavy_loads):
    assert run_cli(["--demo", "--out", out_dir / "clip.mp4", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


def test_missing_model_folder(image, tmp_path, out_dir, capsys, nothing_heavy_loads):
    missing = tmp_path / "Cinemo"
    assert run_cli([image, "--model", missing, "--out", out_dir / "clip.mp4"]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and str(missing) in err and "does not exist" in err
    assert "huggingface.co/maxin-cn/Cinemo" in err
    assert list(out_dir.iterdir()) == []


def test_incomplete_model_folder_names_the_missing_part(demo_model_folder, image, tmp_path, out_dir, capsys,
                                                        nothing_heavy_loads):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(demo_model_folder, partial)
    shutil.rmtree(partial / "text_encoder")
    assert run_cli([image, "--model", partial, "--out", out_dir / "clip.mp4"]) == 2
    err = capsys.readouterr().err
    assert "text_encoder/ is missing" in err and "maxin-cn/Cinemo" in err
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("content", [b"this is not an image", b""])
def test_unreadable_image(content, tmp_path, out_dir, capsys, nothing_heavy_loads):
    broken = tmp_path / "photo.png"
    broken.write_bytes(content)
    assert run_cli([broken, "--demo", "--out", out_dir / "clip.mp4"]) == 2
    err = capsys.readouterr().err
    assert "IMAGE" in err and "Cannot read image" in err and str(broken) in err
    assert list(out_dir.iterdir()) == []


def test_missing_image(tmp_path, out_dir, capsys, nothing_heavy_loads):
    assert run_cli([tmp_path / "nope.jpg", "--demo", "--out", out_dir / "clip.mp4"]) == 2
    assert "not found" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--out", "OUT/clip.avi", "--demo"], ".mp4, .webp, .gif"),
        (["--out", "OUT/missing/clip.mp4", "--demo"], "does not exist"),
        (["--out", "OUT/clip.mp4"], "--model DIR"),
        (["--out", "OUT/clip.mp4", "--model", "OUT"], "IMAGE"),
        (["--demo", "--model", "OUT", "--out", "OUT/clip.mp4"], "not allowed with"),
        (["--demo"], "--out"),
    ],
)
def test_bad_output_or_missing_source(args, expected, out_dir, capsys, nothing_heavy_loads):
    args = [a.replace("OUT", str(out_dir)) for a in args]
    assert run_cli(args) == 2
    assert expected in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


def test_interrupted_run_writes_nothing(image, out_dir, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cinemo_core.app.pipeline.animate", interrupted)
    assert run_cli([image, "--demo", "--out", out_dir / "clip.mp4", *TINY]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")
def test_terminated_run_leaves_no_video(out_dir):
    out = out_dir / "clip.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "cinemo_core", "--demo", "--out", str(out), "--steps", "999", "--size", "64x64",
         "--frames", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=module_env(),
    )
    seen = read_until(process, b"Denoising")
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130
    assert b"interrupted" in seen + rest
    assert list(out_dir.iterdir()) == []


NATIVE_BF16_CPU = CpuFeatures(machine="x86_64", cpuinfo_flags=frozenset({"avx512f", "avx512_bf16"}),
                              torch_bf16_flags=frozenset({"avx512_bf16"}), aten_capability="AVX512", onednn=True)
PLAIN_CPU = CpuFeatures(machine="x86_64", cpuinfo_flags=frozenset({"avx2"}), torch_bf16_flags=frozenset(),
                        aten_capability="AVX2", onednn=True)


@pytest.mark.parametrize(
    ("cpu", "dtype", "expected", "said"),
    [
        (NATIVE_BF16_CPU, "auto", torch.bfloat16, "precision: bf16 (auto on the CPU: this CPU computes bfloat16 natively (avx512_bf16))"),
        (PLAIN_CPU, "auto", torch.float32, "precision: fp32 (auto on the CPU: this CPU has no AVX512-BF16 or AMX"),
        (NATIVE_BF16_CPU, "fp32", torch.float32, "precision: fp32 (--dtype fp32)"),
        (PLAIN_CPU, "bf16", torch.bfloat16, "precision: bf16 (--dtype bf16 (this CPU has no AVX512-BF16 or AMX"),
    ],
    ids=["auto-native-bf16", "auto-plain", "fp32-overrides", "bf16-requested"],
)
def test_the_chosen_precision_is_used_and_explained(cpu, dtype, expected, said, image, out_dir, capsys, monkeypatch):
    from cinemo_core.app import demo

    monkeypatch.setattr("cinemo_core.model.devices.probe_cpu_features", lambda: cpu)
    built = []
    real_build = demo.build_demo_components
    monkeypatch.setattr(
        "cinemo_core.app.demo.build_demo_components", lambda **kw: built.append(kw["dtype"]) or real_build(**kw)
    )
    out = out_dir / "clip.gif"
    assert run_cli([image, "--demo", "--out", out, *TINY, "--device", "cpu", "--dtype", dtype]) == 0
    assert built == [expected]
    assert said in capsys.readouterr().err
    assert probe_video(out).num_frames == 3


def test_compile_without_a_cpp_compiler_fails_before_loading(tmp_path, out_dir, capsys, monkeypatch,
                                                             nothing_heavy_loads):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    assert run_cli(["--demo", "--out", out_dir / "clip.mp4", "--device", "cpu", "--compile"]) == 2
    err = capsys.readouterr().err
    assert "--compile" in err and "C++ compiler" in err and "no-such-c++" in err
    assert list(out_dir.iterdir()) == []


def test_compile_failure_is_one_clear_line(image, out_dir, capsys, monkeypatch):
    from cinemo_core.app import torch_compile

    def broken_backend(graph, example_inputs):
        raise RuntimeError("C++ compile failed:\n/tmp/kernel.cpp:1: error: ...\n  (hundreds more lines)")

    monkeypatch.setattr(torch_compile, "compile_unet", lambda unet: torch_compile.CompiledUNet(unet, backend=broken_backend))
    assert run_cli([image, "--demo", "--out", out_dir / "clip.mp4", *TINY, "--device", "cpu", "--compile"]) == 1
    err = capsys.readouterr().err
    (line,) = [text for text in err.splitlines() if "error:" in text]
    assert "could not compile the UNet (RuntimeError: C++ compile failed)" in line and "without --compile" in line
    assert "Traceback" not in err and "kernel.cpp" not in err
    assert list(out_dir.iterdir()) == []


def test_help_lists_the_options(capsys):
    assert run_cli(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--demo", "--model", "--intensity", "--cfg", "--frames", "--size", "--no-dct", "--dct-low-pass",
                 "--dct-noise-timestep", "--device", "--dtype", "--fps", "--negative-prompt", "--loop", "--no-sidecar",
                 "--compile"):
        assert flag in text


@pytest.mark.parametrize("command", ["animate", "transfer"])
def test_every_setting_has_a_flag_of_its_command(command):
    """A settings error names its setting (SettingError.setting); the CLI turns it into a flag of the command."""
    import dataclasses

    from cinemo_core.app.cli import animate, transfer
    from cinemo_core.app.pipeline import AnimationSettings
    from cinemo_core.app.transfer import TransferSettings

    module, settings, flags = {
        "animate": (animate, AnimationSettings, animate.ANIMATION_FLAGS),
        "transfer": (transfer, TransferSettings, transfer.TRANSFER_FLAGS),
    }[command]
    options = {option for action in module.build_parser()._actions for option in action.option_strings}
    fields = {field.name for field in dataclasses.fields(settings)}
    assert sorted(fields - set(flags)) == []
    assert sorted(flag for setting, flag in flags.items() if setting in fields and flag not in options) == []


def test_settings_errors_name_their_setting():
    from cinemo_core.app.pipeline import AnimationSettings
    from cinemo_core.settings import SettingError

    for changes, setting in (({"width": 100}, "width"), ({"motion_id": float("nan")}, "motion_id"),
                             ({"seed": -1}, "seed"), ({"guidance_scale": -1.0}, "guidance_scale")):
        with pytest.raises(SettingError) as error:
            AnimationSettings(**changes).validate()
        assert error.value.setting == setting
