"""``cinemo-animate --end-image``: a video that ends on a second picture, from the command line and from Python
(issue 17). On the demo model: the sampled residual's last frame is the end picture's latent minus the first
picture's, recomputed here from the preprocessing and the encoder with the pipeline's documented draw order."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cinemo_core.app import cli
from cinemo_core.app.pipeline import AnimationSettings
from cinemo_core.app.video_io import read_video
from cinemo_core.model.components import encode_image
from cinemo_core.preprocess import fit_image, load_image

from test_cli_motion_mask import SIZE, components, image, residual_of, save  # noqa: F401 - shared fixtures

SETTINGS = dict(steps=2, num_frames=6, width=SIZE[0], height=SIZE[1], seed=3, prompt="waves")


@pytest.fixture
def end_image(tmp_path) -> Path:
    """Another picture, of another size and aspect ratio (it is fitted like the first)."""
    rng = np.random.default_rng(1)
    return save(tmp_path / "end.png", rng.integers(0, 256, (90, 150, 3), dtype=np.uint8))


def sampled(components, image: Path, monkeypatch, **changes) -> torch.Tensor:
    """The residual the pipeline sampled (the real ``sample_residual``'s output) with this module's settings."""
    return residual_of(components, image, monkeypatch, SETTINGS, **changes)[0]


def expected_target(components, image: Path, end_image: Path) -> torch.Tensor:
    """End latent minus first latent: both pictures fitted and encoded, the draws in the pipeline's order (first
    picture, the residual noise, end picture) from the seed."""
    generator = torch.Generator().manual_seed(SETTINGS["seed"])
    width, height = SIZE

    def latent(path):
        return encode_image(components.image_encoder, fit_image(load_image(path), width, height),
                            scaling_factor=components.scaling_factor, generator=generator)

    first = latent(image)
    torch.randn((1, components.latent_channels, SETTINGS["num_frames"] - 1, height // 8, width // 8),
                generator=generator)
    return (latent(end_image) - first).float()


def test_video_ends_on_the_end_image(components, image, end_image, monkeypatch):
    target = expected_target(components, image, end_image)
    ended = sampled(components, image, monkeypatch, end_image=str(end_image))
    torch.testing.assert_close(ended[:, :, -1:], target, rtol=1e-6, atol=1e-6)
    plain = sampled(components, image, monkeypatch)
    assert (plain[:, :, -1:] - target).norm() > 0.5 * target.norm()
    # the same first frame and noise with or without it: the frames before the ramp barely change
    assert (ended[:, :, 0] - plain[:, :, 0]).norm() < (plain[:, :, -1:] - target).norm()


def test_the_motion_mask_wins_over_the_end_image(components, image, end_image, tmp_path, monkeypatch):
    mask = np.zeros((32, 64), dtype=np.uint8)
    mask[:, :32] = 255
    ended = sampled(components, image, monkeypatch, end_image=str(end_image),
                    motion_mask=str(save(tmp_path / "mask.png", mask)))
    assert torch.count_nonzero(ended[..., 9:]) == 0
    target = expected_target(components, image, end_image)
    torch.testing.assert_close(ended[:, :, -1:, :, :7], target[..., :7], rtol=1e-6, atol=1e-6)


def test_cli_end_image_records_it_in_the_sidecar(image, end_image, tmp_path, capsys):
    out = tmp_path / "clip.gif"
    args = [image, "--demo", "--out", out, "--steps", "1", "--size", "128x64", "--frames", "4", "--quiet",
            "--end-image", end_image]
    assert cli.main([str(a) for a in args]) == 0
    record = json.loads(Path(f"{out}.json").read_text())
    digest = hashlib.sha256(end_image.read_bytes()).hexdigest()
    assert record["request"]["end_image"] == {"path": str(end_image.resolve()), "sha256": digest}
    assert record["settings"]["end_image"] == str(end_image)
    assert read_video(out)[0].shape[0] == 4


@pytest.mark.parametrize(
    ("end", "extra", "expected"),
    [
        ("end.png", ["--loop"], ["--end-image", "--loop", "give one of them"]),
        ("missing.png", [], ["--end-image", "missing.png"]),
        ("empty.png", [], ["--end-image", "Cannot read image", "empty.png"]),
        ("strip.png", [], ["--end-image", "aspect is too far"]),
    ],
)
def test_bad_end_images_fail_before_loading_naming_the_flag(end, extra, expected, image, end_image, tmp_path, capsys,
                                                           nothing_heavy_loads):
    (tmp_path / "empty.png").write_bytes(b"")
    save(tmp_path / "strip.png", np.zeros((1, 10000, 3), dtype=np.uint8))
    out = tmp_path / "clip.mp4"
    args = [image, "--demo", "--out", out, "--size", "128x64", "--end-image", tmp_path / end, *extra]
    assert cli.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert not out.exists()


def test_settings_refuse_end_image_with_loop():
    with pytest.raises(ValueError, match="end_image and loop both set") as caught:
        AnimationSettings(end_image="end.png", loop=True).validate()
    assert caught.value.setting == "end_image"


def test_batch_manifest_end_image_is_relative_to_the_manifest(image, end_image, tmp_path, capsys):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "end.png").write_bytes(end_image.read_bytes())
    lines = [{"image": str(image), "end_image": "end.png", "out": "a.gif", "seed": 1},
             {"image": str(image), "end_image": "nope.png", "out": "b.gif"},
             {"image": str(image), "end_image": "end.png", "loop": True, "out": "c.gif"}]
    manifest = jobs / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out_dir = tmp_path / "out"
    args = ["batch", manifest, "--demo", "--out-dir", out_dir, "--steps", "1", "--size", "128x64", "--frames", "3",
            "--quiet"]
    assert cli.main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "'end_image'" in err and "nope.png" in err
    assert "line 3" in err and "end_image and loop both set" in err
    record = json.loads((out_dir / "a.gif.json").read_text())
    assert record["request"]["end_image"]["path"] == str((jobs / "end.png").resolve())
    assert not (out_dir / "b.gif").exists() and not (out_dir / "c.gif").exists()
