"""Orthonormal DCT-II and its inverse over any set of tensor dimensions.

Implemented as a matrix product with the DCT-II basis matrix of each size, which is exact,
differentiable and works on every device. The matrices are built in float64 and cached per
(size, device, dtype). Half-precision inputs are transformed in float32 and cast back.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import torch

_TRANSFORM_DTYPES = (torch.float32, torch.float64)


@lru_cache(maxsize=64)
def _dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """C[k, i] = s_k cos(pi (2i + 1) k / 2n), s_0 = sqrt(1/n), s_k = sqrt(2/n): orthogonal."""
    i = torch.arange(n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] = math.sqrt(1.0 / n)
    return basis.to(device=device, dtype=dtype)


def _normalise_dims(x: torch.Tensor, dims: int | Iterable[int]) -> list[int]:
    dims = [dims] if isinstance(dims, int) else list(dims)
    out = []
    for d in dims:
        if not isinstance(d, int) or not -x.dim() <= d < x.dim():
            raise ValueError(
                f"dims must be integers in [{-x.dim()}, {x.dim() - 1}] for a {x.dim()}-D tensor, got {d!r}."
            )
        d %= x.dim()
        if d in out:
            raise ValueError(f"dimension {d} is listed twice in dims.")
        out.append(d)
    return out


def _apply(x: torch.Tensor, dims: int | Iterable[int], inverse: bool) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"Expected a floating-point torch.Tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}.")
    dims = _normalise_dims(x, dims)
    work_dtype = x.dtype if x.dtype in _TRANSFORM_DTYPES else torch.float32
    y = x.to(work_dtype)
    for d in dims:
        if y.shape[d] == 0:
            continue
        basis = _dct_matrix(y.shape[d], y.device, work_dtype)
        # Along the last axis: forward y @ C^T, inverse y @ C (C is orthogonal).
        moved = y.movedim(d, -1)
        moved = moved @ (basis if inverse else basis.T)
        y = moved.movedim(-1, d)
    return y.to(x.dtype)


def dct(x: torch.Tensor, dims: int | Iterable[int] = -1) -> torch.Tensor:
    """Orthonormal DCT-II of ``x`` over ``dims`` (like ``scipy.fft.dctn(norm="ortho", axes=dims)``)."""
    return _apply(x, dims, inverse=False)


def idct(x: torch.Tensor, dims: int | Iterable[int] = -1) -> torch.Tensor:
    """Inverse of :func:`dct` (orthonormal DCT-III), like ``scipy.fft.idctn(norm="ortho", axes=dims)``."""
    return _apply(x, dims, inverse=True)
