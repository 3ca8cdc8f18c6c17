"""The torch DCT against scipy.fft.dctn / idctn with norm="ortho"."""

import numpy as np
import pytest
import scipy.fft
import torch

from cinemo_core.sampling.dct import dct, idct

CASES = [
    ((7,), (0,)),
    ((1, 4, 15, 40, 64), (-3, -2, -1)),
    ((2, 3, 5, 9, 11), (-2, -1)),
    ((3, 13, 6), (0, 2)),
    ((5, 1, 8), (1, 2, 0)),
    ((4, 6, 3), (1,)),
]


@pytest.mark.parametrize("shape,dims", CASES)
def test_matches_scipy_float64(shape, dims):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    expected = scipy.fft.dctn(x, axes=dims, norm="ortho")
    ours = dct(torch.from_numpy(x), dims)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-10)
    inv_expected = scipy.fft.idctn(x, axes=dims, norm="ortho")
    np.testing.assert_allclose(idct(torch.from_numpy(x), dims).numpy(), inv_expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_round_trip(dtype, tol):
    x = torch.randn(2, 3, 5, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    y = dct(x, (1, 2, 3))
    assert y.dtype == dtype
    back = idct(y, (1, 2, 3))
    assert back.dtype == dtype
    torch.testing.assert_close(back.double(), x.double(), rtol=0, atol=tol * 10)


def test_single_int_dim_and_default_last_dim():
    x = np.random.default_rng(1).standard_normal((3, 6))
    np.testing.assert_allclose(dct(torch.from_numpy(x)).numpy(), scipy.fft.dct(x, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(dct(torch.from_numpy(x), 0).numpy(), scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="dims"):
        dct(torch.zeros(2, 3), (2,))
    with pytest.raises(ValueError, match="twice"):
        dct(torch.zeros(2, 3), (1, -1))
    with pytest.raises(ValueError, match="floating-point"):
        dct(torch.zeros(2, 3, dtype=torch.int64))
