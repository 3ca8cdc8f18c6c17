"""Fuzzed pictures and masks for the core and the CLI (property-based, a bounded number of cases; issue 18).

- ``fit_image`` (what Cinemo First Frame Encode and the pipeline fit an IMAGE with) and the motion mask's
  ``as_mask_batch`` + ``latent_mask`` (what Cinemo Conditioning and ``--motion-mask`` use) on tensors of odd
  shapes, dtypes and values: 0-size, 1x1, extreme aspect ratios, NaN/inf, far outside 0..1, wrong channel
  counts and dimensions, batches. Each ends in a ``ValueError`` naming the input, or a result of the right
  shape and range; a picture of one colour must come out that colour (bilinear resizing keeps a constant).
- ``load_image`` and the CLI's ``IMAGE`` and ``--motion-mask`` on files: PNG/JPEG/GIF/WebP/BMP/TIFF in every
  PIL mode a user meets (bilevel, grey, grey+alpha, palette with and without transparency, RGB, RGBA, 16-bit,
  32-bit int and float, CMYK), animated GIFs, each truncated, with bytes changed, empty, or with a header
  claiming a huge size (decompression bombs). The reader gives 0..1 RGB or a ``ValueError`` naming the file;
  the CLI exits 2 naming the argument before any model loads, and writes nothing.

``derandomize`` keeps the cases the same from run to run; ``CINEMO_FUZZ_EXAMPLES`` sets the cases per test.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cinemo_core.app import cli
from cinemo_core.preprocess import fit_image, load_image
from cinemo_core.sampling.still import as_mask_batch, latent_mask
from cinemo_core.settings import MAX_READ_PIXELS

FUZZ = settings(max_examples=int(os.environ.get("CINEMO_FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
VIDEO = (64, 64)  # width, height: the smallest video, so that each case is cheap

# --- tensors -----------------------------------------------------------------------------------------------------

SIDES = st.one_of(st.integers(0, 3), st.integers(4, 96), st.sampled_from([1, 7, 20_000, 100_000]))
FILLS = st.one_of(
    st.floats(0.0, 1.0), st.floats(-0.5, 1.5), st.floats(-1e6, 1e6),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 255.0]),
)
DTYPES = st.sampled_from([torch.float32, torch.float16, torch.float64, torch.uint8, torch.bool, torch.int64,
                          torch.complex64])


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, fill: float, noisy: bool) -> torch.Tensor:
    """``shape`` filled with ``fill`` (plus uniform noise when ``noisy``), cast to ``dtype``; small or empty."""
    if any(side == 0 for side in shape):
        return torch.zeros(shape, dtype=dtype)
    if np.prod(shape) > 400_000:  # an extreme aspect: the longest side is kept, the others shrink to at most 7
        longest = int(np.argmax(shape))
        shape = tuple(side if i == longest else min(side, 7) for i, side in enumerate(shape))
    values = torch.full(shape, fill, dtype=torch.float64)
    if noisy:
        values = values + torch.rand(shape, generator=torch.Generator().manual_seed(len(shape)), dtype=torch.float64)
    if dtype in (torch.uint8, torch.int64):
        values = values.nan_to_num(0.0, 255.0, 0.0).clamp(0, 255).round()
    if dtype == torch.float16:
        values = values.clamp(-6e4, 6e4)
    return values.to(dtype)


@st.composite
def images(draw) -> torch.Tensor:
    rank = draw(st.sampled_from([4, 4, 4, 3, 5]))
    batch, height, width = draw(st.integers(0, 3)), draw(SIDES), draw(SIDES)
    channels = draw(st.sampled_from([3, 3, 1, 4, 2, 5, 0]))
    shape = (batch, height, width, channels)[:rank] if rank <= 4 else (batch, 1, height, width, channels)
    return _tensor(shape, draw(DTYPES), draw(FILLS), draw(st.booleans()))


def _picture_range(image: torch.Tensor) -> torch.Tensor:
    """What an IMAGE means: uint8 / 255, floats clipped to 0..1."""
    return image.double() / 255.0 if image.dtype == torch.uint8 else image.double().clamp(0.0, 1.0)


@FUZZ
@given(image=images())
@example(image=torch.full((1, 8, 8, 3), float("nan")))  # became a NaN latent, blamed on the VAE
@example(image=torch.full((1, 8, 8, 3), 255.0))  # 0..255 floats: a white first frame, silently
@example(image=torch.zeros((1, 1, 100_000, 3)))  # cover-resized to 65x6500000 pixels first: gigabytes
def test_fit_image_names_the_image_or_fits_it(image):
    width, height = VIDEO
    try:
        fitted = fit_image(image, width, height)
    except ValueError as error:
        assert str(error).startswith("image"), str(error)
        return
    assert fitted.shape == (image.shape[0], 3, height, width)
    assert bool(torch.isfinite(fitted).all()) and float(fitted.abs().max()) <= 1.0 + 1e-6
    picture = _picture_range(image)
    if picture.shape[-1] == 4:
        picture = picture[..., :3] * picture[..., 3:] + (1 - picture[..., 3:])
    if bool((picture == picture.flatten()[0]).all()):  # one colour in, that colour out
        expected = 2 * float(picture.flatten()[0]) - 1
        assert torch.allclose(fitted.double(), torch.full_like(fitted.double(), expected), atol=1e-3)


@st.composite
def masks(draw) -> torch.Tensor:
    rank = draw(st.sampled_from([2, 3, 3, 4, 1, 0]))
    shape = tuple(draw(st.integers(0, 3)) if i == 0 and rank == 3 else draw(SIDES) for i in range(rank))
    return _tensor(shape, draw(DTYPES), draw(FILLS), draw(st.booleans()))


@FUZZ
@given(mask=masks())
@example(mask=torch.zeros((1, 100_000)))  # cover-resized to 65x6500000 pixels first: gigabytes
def test_motion_mask_is_named_or_fitted_to_the_latent_grid(mask):
    latent_hw = (VIDEO[1] // 8, VIDEO[0] // 8)
    try:
        fitted = latent_mask(as_mask_batch(mask, "motion_mask"), latent_hw)
    except ValueError as error:
        assert str(error).startswith("motion_mask"), str(error)
        return
    count = mask.shape[0] if mask.dim() == 3 else 1
    assert fitted.shape == (count, *latent_hw)
    assert bool(torch.isfinite(fitted).all()) and 0.0 <= float(fitted.min()) and float(fitted.max()) <= 1.0
    values = mask.double().clamp(0.0, 1.0)
    if bool((values == values.flatten()[0]).all()):  # one value in, that value in every latent cell
        assert torch.allclose(fitted.double(), torch.full_like(fitted.double(), float(values.flatten()[0])), atol=1e-4)


# --- files -------------------------------------------------------------------------------------------------------

MODES = ["1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
FORMATS = {"png": ["1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "I;16", "I"], "jpeg": ["L", "RGB", "CMYK"],
           "gif": ["L", "P", "P+transparency", "RGB"], "webp": ["RGB", "RGBA"], "bmp": ["1", "L", "P", "RGB"],
           "tiff": MODES}


def _gradient(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1).astype(np.uint8)


def picture_bytes(fmt: str, mode: str, width: int, height: int, frames: int = 1) -> bytes:
    """A valid ``fmt`` file of ``mode`` (``frames`` > 1: animated, GIF/WebP/PNG)."""
    rgb = Image.fromarray(_gradient(width, height))
    if mode == "P+transparency":
        picture = rgb.convert("P")
        picture.info["transparency"] = 0
    elif mode in ("I;16", "I", "F"):
        grey = np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
        picture = (Image.fromarray((grey * 65535).astype(np.uint16)) if mode == "I;16"
                   else Image.fromarray((grey * 65535).astype(np.int32), "I") if mode == "I"
                   else Image.fromarray(grey.astype(np.float32), "F"))
    else:
        picture = rgb.convert(mode)
    buffer = io.BytesIO()
    if frames > 1:
        more = [Image.fromarray(np.roll(_gradient(width, height), 5 * i, axis=1)).convert(picture.mode)
                for i in range(1, frames)]
        picture.save(buffer, fmt, save_all=True, append_images=more, duration=100)
    else:
        picture.save(buffer, fmt, **({"transparency": 0} if mode == "P+transparency" and fmt != "tiff" else {}))
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_bytes(fmt: str, width: int, height: int) -> bytes:
    """A small file whose header claims ``width x height`` pixels (valid checksums: only the size is absurd)."""
    if fmt == "png":
        header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _png_chunk(b"IEND", b"")
    if fmt == "gif":
        small = picture_bytes("gif", "P", 8, 8)
        return small[:6] + struct.pack("<HH", min(width, 65535), min(height, 65535)) + small[10:]
    small = bytearray(picture_bytes("jpeg", "RGB", 8, 8))  # JPEG: the SOF0 segment's height and width
    at = small.index(b"\xff\xc0") + 5
    small[at:at + 4] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    return bytes(small)


@st.composite
def picture_files(draw) -> tuple[str, bytes, bool]:
    """(file name, bytes, whether the file was changed)."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    kind = draw(st.sampled_from(["valid", "valid", "truncated", "bytes changed", "empty", "bomb", "animated"]))
    if kind == "empty":
        return f"empty.{fmt}", b"", True
    if kind == "bomb":
        fmt = draw(st.sampled_from(["png", "gif", "jpeg"]))
        side = draw(st.sampled_from([9000, 20_000, 65_535]))
        return f"bomb.{fmt}", bomb_bytes(fmt, side, draw(st.sampled_from([side, 8]))), True
    if kind == "animated":
        fmt = draw(st.sampled_from(["gif", "webp", "png"]))
        mode = "P" if fmt == "gif" else "RGB"
        return f"animated.{fmt}", picture_bytes(fmt, mode, 24, 16, frames=draw(st.integers(2, 4))), False
    mode = draw(st.sampled_from(FORMATS[fmt]))
    data = picture_bytes(fmt, mode, draw(st.sampled_from([1, 3, 24])), draw(st.sampled_from([1, 2, 16])))
    name = f"{mode.replace(';', '_').replace('+', '_')}.{fmt}"
    if kind == "truncated":
        return f"truncated_{name}", data[: draw(st.integers(0, len(data) - 1))], True
    if kind == "bytes changed":
        changed = bytearray(data)
        for _ in range(draw(st.integers(1, 16))):
            changed[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return f"changed_{name}", bytes(changed), True
    return name, data, False


def read_outcome(path: Path, changed: bool) -> str:
    """'read' (checked: [1, H, W, 3] float32 in 0..1, within the size limit) or 'ValueError' naming the file."""
    try:
        image = load_image(path)
    except ValueError as error:
        assert path.name in str(error), str(error)
        assert not changed or path.name.startswith(("truncated", "changed", "empty", "bomb")), str(error)
        return "ValueError"
    assert image.dtype == torch.float32 and image.dim() == 4 and image.shape[0] == 1 and image.shape[-1] == 3
    assert image.shape[1] * image.shape[2] <= MAX_READ_PIXELS
    assert bool(torch.isfinite(image).all()) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    return "read"


@FUZZ
@given(case=picture_files())
def test_picture_files_are_read_or_named(case, tmp_path):
    name, data, changed = case
    path = tmp_path / name
    path.write_bytes(data)
    outcome = read_outcome(path, changed)
    if not changed:  # every unchanged file of every mode reads
        assert outcome == "read", name


@pytest.mark.parametrize("fmt", ["png", "gif", "jpeg"])
def test_a_decompression_bomb_is_refused_before_decoding(fmt, tmp_path):
    """Before: PIL's DecompressionBombError (not a ValueError) escaped, and the CLI printed a traceback."""
    path = tmp_path / f"bomb.{fmt}"
    path.write_bytes(bomb_bytes(fmt, 65_535, 65_535))
    with pytest.raises(ValueError, match="bomb|pixels"):
        load_image(path)


def test_unchanged_png_reads_exactly(tmp_path):
    """The reader's values against the pixels written (PNG is lossless), grey and RGB."""
    rgb = _gradient(24, 16)
    for mode, expected in (("RGB", rgb), ("L", np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, -1))):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(rgb).convert(mode).save(path)
        assert torch.equal(load_image(path)[0], torch.from_numpy(expected.astype(np.float32) / 255.0))


@pytest.fixture
def cli_image(tmp_path) -> Path:
    path = tmp_path / "picture.png"
    Image.fromarray(_gradient(64, 64)).save(path)
    return path


def cli_outcome(args: list, out: Path, capsys) -> tuple[str, str]:
    """('usage', stderr) for exit status 2, or ('accepted', '') once the CLI goes on to load a model."""
    try:
        status = cli.main([str(arg) for arg in args])
    except AssertionError as error:  # nothing_heavy_loads: every argument was accepted
        assert "model was loaded" in str(error)
        return "accepted", ""
    err = capsys.readouterr().err
    assert status == 2, (status, err)
    assert "Traceback" not in err and not out.exists() and not list(out.parent.glob(f"{out.name}*")), err
    return "usage", err


@FUZZ
@given(case=picture_files())
def test_cli_motion_mask_file_is_named_or_accepted(case, cli_image, tmp_path, capsys, nothing_heavy_loads):
    name, data, changed = case
    mask = tmp_path / f"mask_{name}"
    mask.write_bytes(data)
    out = tmp_path / "clip.mp4"
    outcome, err = cli_outcome([cli_image, "--demo", "--out", out, "--size", "64x64", "--motion-mask", mask], out, capsys)
    if outcome == "usage":
        assert "--motion-mask" in err, err
    else:  # accepted masks are readable pictures of the image's (square) shape
        assert load_image(mask).shape[1] == load_image(mask).shape[2]


@FUZZ
@given(case=picture_files())
@example(case=("row.png", picture_bytes("png", "RGB", 100_000, 1), False))  # a 1-pixel row: refused, not resized
def test_cli_image_file_is_named_or_accepted(case, tmp_path, capsys, nothing_heavy_loads):
    name, data, changed = case
    image = tmp_path / name
    image.write_bytes(data)
    out = tmp_path / "clip.mp4"
    outcome, err = cli_outcome([image, "--demo", "--out", out, "--size", "64x64"], out, capsys)
    if outcome == "usage":
        assert "IMAGE" in err, err
    else:
        read_outcome(image, changed)
