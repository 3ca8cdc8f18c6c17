"""Image fit against an independent numpy re-derivation; image loading for each Pillow mode."""

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cinemo_core.preprocess import fit_image, load_image


def numpy_bilinear(img: np.ndarray, scale: float) -> np.ndarray:
    """Bilinear resize by a scale factor, half-pixel centres, edge clamp (no antialias). img [H, W, C]."""
    h, w = img.shape[:2]
    out_h, out_w = math.floor(h * scale), math.floor(w * scale)

    def taps(n_out: int, n_in: int):
        src = np.maximum((np.arange(n_out) + 0.5) / scale - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = src - i0
        return i0, i1, frac

    y0, y1, fy = taps(out_h, h)
    x0, x1, fx = taps(out_w, w)
    rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def reference_fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Official recipe: cover (height+1, width+1), centre crop, [-1, 1]. Returns [3, height, width]."""
    scale = max((height + 1) / img.shape[0], (width + 1) / img.shape[1])
    big = numpy_bilinear(img, scale)
    top = int(round((big.shape[0] - height) / 2.0))
    left = int(round((big.shape[1] - width) / 2.0))
    crop = big[top : top + height, left : left + width]
    return (crop * 2 - 1).transpose(2, 0, 1)


def test_off_size_advice_is_the_same_for_the_image_fit_and_the_settings():
    from cinemo_core import AnimationSettings

    with pytest.warns(UserWarning) as warned:
        fit_image(torch.rand(1, 40, 64, 3), width=64, height=40)
    (note,) = [str(w.message) for w in warned]
    assert "512x320" in note and "64x40" in note
    assert note in AnimationSettings(width=64, height=40).quality_warnings()
    assert AnimationSettings().quality_warnings() == []


@pytest.mark.parametrize("in_hw", [(37, 91), (200, 100), (40, 64), (41, 65), (13, 13)])
def test_fit_matches_numpy_reference(in_hw):
    rng = np.random.default_rng(in_hw[0])
    img = rng.random((2, *in_hw, 3))
    with pytest.warns(UserWarning, match="quality may drop"):
        ours = fit_image(torch.from_numpy(img).float(), width=64, height=40)
    assert ours.shape == (2, 3, 40, 64) and ours.dtype == torch.float32
    for b in range(2):
        np.testing.assert_allclose(ours[b].numpy(), reference_fit(img[b], 64, 40), rtol=0, atol=2e-5)


def test_fit_default_size_no_warning():
    img = np.random.default_rng(0).random((1, 30, 50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = fit_image(torch.from_numpy(img))
    assert ours.shape == (1, 3, 320, 512) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours[0].numpy(), reference_fit(img[0], 512, 320), rtol=0, atol=1e-9)


def test_fit_grey_and_rgba_inputs():
    rng = np.random.default_rng(1)
    grey = rng.random((1, 20, 30, 1))
    with pytest.warns(UserWarning):
        out = fit_image(torch.from_numpy(grey), width=24, height=16)
    np.testing.assert_allclose(out[0].numpy(), reference_fit(np.repeat(grey[0], 3, -1), 24, 16), atol=1e-9)
    rgba = rng.random((1, 20, 30, 4))
    flat = rgba[0, ..., :3] * rgba[0, ..., 3:] + (1 - rgba[0, ..., 3:])
    with pytest.warns(UserWarning):
        out = fit_image(torch.from_numpy(rgba), width=24, height=16)
    np.testing.assert_allclose(out[0].numpy(), reference_fit(flat, 24, 16), atol=1e-9)


@pytest.mark.parametrize("width,height", [(500, 320), (512, 0), (-8, 320), (512.0, 320)])
def test_fit_rejects_bad_sizes(width, height):
    with pytest.raises(ValueError, match="multiple of 8"):
        fit_image(torch.zeros(1, 10, 10, 3), width=width, height=height)


def test_fit_rejects_bad_layout():
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        fit_image(torch.zeros(1, 3, 10, 10))


def pixels(img: Image.Image, path) -> np.ndarray:
    img.save(path)
    out = load_image(path)
    assert out.shape == (1, img.height, img.width, 3) and out.dtype == torch.float32
    return out[0].numpy()


def test_load_rgb(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(pixels(Image.fromarray(arr), tmp_path / "a.png"), arr / 255.0, atol=1e-7)


def test_load_grey(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (5, 7), dtype=np.uint8)
    out = pixels(Image.fromarray(arr, mode="L"), tmp_path / "g.png")
    np.testing.assert_allclose(out, np.repeat(arr[..., None], 3, -1) / 255.0, atol=1e-7)


def test_load_rgba_composites_on_white(tmp_path):
    arr = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 255, 0, 128]]], dtype=np.uint8)
    out = pixels(Image.fromarray(arr, mode="RGBA"), tmp_path / "t.png")
    a = 128 / 255.0
    expected = np.array([[[1, 0, 0], [1, 1, 1], [1 - a, 1, 1 - a]]])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_load_la(tmp_path):
    arr = np.array([[[0, 0], [100, 255], [200, 51]]], dtype=np.uint8)
    out = pixels(Image.fromarray(arr, mode="LA"), tmp_path / "la.png")
    a = 51 / 255.0
    expected = np.array([1.0, 100 / 255.0, 200 / 255.0 * a + (1 - a)])
    np.testing.assert_allclose(out[0], np.repeat(expected[:, None], 3, -1), atol=1e-6)


def test_load_palette_with_transparency(tmp_path):
    img = Image.new("P", (3, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255])
    img.putpixel((1, 1), 1)
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    out = load_image(path)[0].numpy()
    np.testing.assert_allclose(out[0, 0], [1, 1, 1])  # transparent index -> white
    np.testing.assert_allclose(out[1, 1], [0, 0, 1])


def test_load_16bit(tmp_path):
    arr = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5957).astype(np.uint16)
    for name in ("g16.png", "g16.tif"):
        out = pixels(Image.fromarray(arr), tmp_path / name)
        np.testing.assert_allclose(out[..., 1], arr / 65535.0, atol=1e-6)
    # 32-bit integer images (how Pillow opens some 16-bit files) are read on the same 0..65535 scale.
    out = pixels(Image.fromarray(arr.astype(np.int32)), tmp_path / "i32.tif")
    np.testing.assert_allclose(out[..., 0], arr / 65535.0, atol=1e-6)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(missing)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.png"):
        load_image(junk)


def test_crop_that_drops_most_of_the_image_warns_how_much_it_keeps():
    """Issue 18: a 2000x100 image cropped to 512x320 keeps 100 * 1.6 = 160 of its 2000 columns (8 %)."""
    with pytest.warns(UserWarning, match=r"2000x100 image .* keeps only 8% of its width"):
        fit_image(torch.zeros(1, 100, 2000, 3))
    with pytest.warns(UserWarning, match=r"keeps only 25% of its height"):  # 64 of 256 rows at 64x64 from 64x256
        fit_image(torch.zeros(1, 256, 64, 3), width=64, height=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_image(torch.zeros(1, 400, 512, 3), width=512, height=320)  # keeps 320 / 400 of the height
