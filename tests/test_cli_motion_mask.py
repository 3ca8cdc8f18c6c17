"""``cinemo-animate --motion-mask``: a cinemagraph from the standalone tool and from Python (issue 17)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cinemo_core.app import cli, pipeline
from cinemo_core.app.demo import build_demo_components
from cinemo_core.app.pipeline import AnimationSettings
from cinemo_core.app.video_io import read_video

#: 128x64 pixels: a 16x8 latent grid. Under the half mask, fitted like the picture (bilinear cover-resize), the
#: latent columns 0..6 see only moving pixels, 9..15 only still ones; 7 and 8 are the soft border.
SIZE = (128, 64)
SETTINGS = dict(steps=2, num_frames=4, width=SIZE[0], height=SIZE[1], seed=3, prompt="waves")


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    return save(tmp_path / "input.png", rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))


def half_mask(tmp_path: Path, name: str = "mask.png", size: tuple[int, int] = (64, 32)) -> Path:
    """White (moves) on the left half, black (still) on the right, at another size of the image's shape."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, : width // 2] = 255
    return save(tmp_path / name, mask)


@pytest.fixture(scope="module")
def components():
    return build_demo_components()


def residual_of(components, image: Path, monkeypatch, settings: dict = SETTINGS,
                **changes) -> tuple[torch.Tensor, np.ndarray]:
    """The residual the pipeline sampled (the real ``sample_residual``'s output) and the decoded frames, with
    ``settings`` (this module's by default) and ``changes`` to them."""
    seen = []
    real = pipeline.sample_residual

    def recording(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(pipeline, "sample_residual", recording)
    result = pipeline.animate(components, image, AnimationSettings(**{**settings, **changes}))
    return seen[0].float(), result.frames


def test_half_mask_keeps_still_cells_exactly_zero_and_moving_cells_move(components, image, tmp_path, monkeypatch):
    residual, _ = residual_of(components, image, monkeypatch, motion_mask=str(half_mask(tmp_path)))
    assert residual.shape[-2:] == (8, 16)
    assert torch.equal(residual[..., 9:], torch.zeros_like(residual[..., 9:]))
    moving = residual[..., :7].abs().amax(dim=(0, 1, 3, 4))
    assert bool((moving > 1e-3).all()), moving  # every generated frame moves there

    inverted, _ = residual_of(components, image, monkeypatch, motion_mask=str(half_mask(tmp_path)), invert_mask=True)
    assert torch.equal(inverted[..., :7], torch.zeros_like(inverted[..., :7]))
    assert bool((inverted[..., 9:].abs().amax(dim=(0, 1, 3, 4)) > 1e-3).all())


def test_white_mask_gives_the_video_without_a_mask(components, image, tmp_path, monkeypatch):
    white = save(tmp_path / "white.png", np.full((32, 64, 3), 255, dtype=np.uint8))
    masked, masked_frames = residual_of(components, image, monkeypatch, motion_mask=str(white))
    plain, plain_frames = residual_of(components, image, monkeypatch)
    assert torch.equal(masked, plain) and np.array_equal(masked_frames, plain_frames)


def test_black_mask_warns_and_gives_a_still_residual(components, image, tmp_path, monkeypatch):
    black = save(tmp_path / "black.png", np.zeros((64, 128), dtype=np.uint8))
    with pytest.warns(UserWarning, match="nothing moves"):
        residual, _ = residual_of(components, image, monkeypatch, motion_mask=str(black))
    assert not bool(residual.any())


def test_cli_cinemagraph_records_the_mask_in_the_sidecar(image, tmp_path, capsys):
    mask = half_mask(tmp_path)
    out = tmp_path / "clip.gif"
    args = [image, "--demo", "--out", out, "--steps", "1", "--size", "128x64", "--frames", "3", "--quiet",
            "--motion-mask", mask]
    assert cli.main([str(a) for a in args]) == 0
    record = json.loads(Path(f"{out}.json").read_text())
    digest = __import__("hashlib").sha256(mask.read_bytes()).hexdigest()
    assert record["request"]["motion_mask"] == {"path": str(mask.resolve()), "sha256": digest}
    assert record["settings"]["motion_mask"] == str(mask) and record["settings"]["invert_mask"] is False
    assert read_video(out)[0].shape[0] == 3


def test_cli_all_still_mask_is_a_note_not_an_error(image, tmp_path, capsys):
    black = save(tmp_path / "black.png", np.zeros((32, 64), dtype=np.uint8))
    out = tmp_path / "still.gif"
    args = [image, "--demo", "--out", out, "--steps", "1", "--size", "128x64", "--frames", "3",
            "--motion-mask", black, "--no-sidecar"]
    assert cli.main([str(a) for a in args]) == 0
    err = capsys.readouterr().err
    assert "note: motion_mask" in err and "nothing moves" in err
    assert out.exists()


@pytest.mark.parametrize(
    ("mask", "extra", "expected"),
    [
        ("missing.png", [], ["--motion-mask", "not found", "missing.png"]),
        ("empty.png", [], ["--motion-mask", "Cannot read image", "empty.png"]),
        ("square.png", [], ["--motion-mask", "another aspect ratio", "64x64", "128x64"]),
        (None, ["--invert-mask"], ["--invert-mask", "give motion_mask too"]),
    ],
)
def test_bad_masks_fail_before_loading_naming_the_flag(mask, extra, expected, image, tmp_path, capsys,
                                                      nothing_heavy_loads):
    (tmp_path / "empty.png").write_bytes(b"")
    save(tmp_path / "square.png", np.zeros((64, 64), dtype=np.uint8))
    out = tmp_path / "clip.mp4"
    args = [image, "--demo", "--out", out, "--size", "128x64", *extra]
    if mask:
        args += ["--motion-mask", tmp_path / mask]
    assert cli.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert not out.exists()


def test_batch_manifest_mask_is_relative_to_the_manifest(image, tmp_path, capsys):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    half_mask(jobs, "half.png")
    lines = [{"image": str(image), "motion_mask": "half.png", "out": "a.gif", "seed": 1},
             {"image": str(image), "motion_mask": "nope.png", "out": "b.gif"}]
    manifest = jobs / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out_dir = tmp_path / "out"
    args = ["batch", manifest, "--demo", "--out-dir", out_dir, "--steps", "1", "--size", "128x64", "--frames", "3",
            "--quiet"]
    assert cli.main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "'motion_mask'" in err and "nope.png" in err
    record = json.loads((out_dir / "a.gif.json").read_text())
    assert record["request"]["motion_mask"]["path"] == str((jobs / "half.png").resolve())
    assert not (out_dir / "b.gif").exists()
