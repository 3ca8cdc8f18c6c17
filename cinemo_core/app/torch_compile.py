"""``torch.compile`` for the UNet, failing with one clear line instead of a compiler traceback.

Compiling happens on the first call (tens of seconds to minutes on a CPU; see the README's speed
section for when it pays off). A failure there (no C++ compiler, an unsupported Python or backend,
an inductor bug) becomes a :class:`CompileError` that says what failed and how to run without it.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import torch
from torch import nn


class CompileError(RuntimeError):
    """``torch.compile`` could not compile the UNet (the message is one line)."""


def _first_line(error: BaseException) -> str:
    """``Type: first line`` of the innermost cause (a backend failure wraps the compiler's own error)."""
    while True:
        inner = getattr(error, "inner_exception", None) or error.__cause__
        if not isinstance(inner, BaseException) or inner is error:
            break
        error = inner
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0].rstrip(':') if lines else 'no message'}"


def cpp_compiler() -> str | None:
    """The C++ compiler inductor will call on the CPU (``$CXX``, else g++ / clang++ on macOS), if installed."""
    name = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
    return shutil.which(name)


def compile_problem(device: torch.device) -> str | None:
    """Why compiling cannot work on ``device`` here (checked before anything is loaded), or None."""
    if device.type == "cpu" and cpp_compiler() is None:
        wanted = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
        return f"compiling for the CPU needs a C++ compiler, and {wanted!r} was not found (set CXX or install one)"
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return "compiling for a CUDA GPU needs the triton package, which is not installed"
    return None


class CompiledUNet:
    """The UNet run through ``torch.compile``; a failure while compiling raises :class:`CompileError`.

    Only calls up to the first success are watched: later errors are the UNet's own.
    """

    def __init__(self, unet: nn.Module, *, backend: Any = "inductor", mode: str | None = None) -> None:
        self.unet = unet
        try:
            self.compiled = torch.compile(unet, backend=backend, mode=mode, dynamic=False)
        except (RuntimeError, ValueError, TypeError) as error:
            raise CompileError(f"torch.compile is not available here ({_first_line(error)}); run without --compile.") from error
        self.compiled_once = False

    @property
    def config(self) -> Any:
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.compiled_once:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except ValueError:
            raise  # bad input, reported by the UNet itself as without compiling
        except Exception as error:  # noqa: BLE001 - any failure inside dynamo/inductor
            raise CompileError(
                f"torch.compile could not compile the UNet ({_first_line(error)}); run without --compile."
            ) from error
        self.compiled_once = True
        return out


def compile_unet(unet: nn.Module, *, backend: Any = "inductor", mode: str | None = None) -> CompiledUNet:
    """Wrap ``unet`` for ``torch.compile`` (compiled on its first call)."""
    return CompiledUNet(unet, backend=backend, mode=mode)
