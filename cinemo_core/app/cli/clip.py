"""Making one clip on loaded components, the same way for every command: step bar, render, atomic write, sidecar."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

if TYPE_CHECKING:
    import torch

    from ...model.components import CinemoComponents
    from ..render import ClipResult, ProgressFn


@dataclass
class Clip:
    """One clip to make.

    Attributes:
        render: the application on loaded components, reporting ``progress(done, total)``.
        stages: the step bar's label for each pass of ``steps`` steps (transfer: inverting, then denoising).
        steps: steps per pass.
        out, fps: the video to write.
        request: what the sidecar records as asked (None: no sidecar).
    """

    render: Callable[[CinemoComponents, ProgressFn], ClipResult]
    stages: tuple[str, ...]
    steps: int
    out: Path
    fps: float
    request: dict[str, Any] | None


def model_identity(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The model a clip is made with, for its sidecar: the demo or the folder's files, and the device type and
    precision (frames differ slightly between them)."""
    from ..sidecar import folder_identity

    where = {"demo": True} if args.demo else folder_identity(args.model, args.vae)
    return {**where, "device": device.type, "dtype": str(dtype).replace("torch.", "")}


def input_identity(path: str | None, fallback: str) -> dict[str, str]:
    """An input file by its content, or ``fallback`` naming the demo's built-in input."""
    from ..sidecar import file_identity

    return file_identity(path) if path else {"builtin": fallback}


def make_clip(
    components: CinemoComponents, clip: Clip, *, stderr: TextIO, quiet: bool, position: int = 0
) -> tuple[ClipResult, Path]:
    """Render ``clip`` with a step bar, write its video (atomically) and its sidecar; (result, written path)."""
    from tqdm.auto import tqdm

    from ..sidecar import build_sidecar, write_sidecar
    from ..video_io import write_video

    bar = tqdm(total=len(clip.stages) * clip.steps, desc=clip.stages[0], unit="step", file=stderr, disable=quiet,
               leave=False, position=position)

    shown = [clip.stages[0]]

    def progress(done: int, total: int) -> None:
        stage = clip.stages[min((done - 1) // clip.steps, len(clip.stages) - 1)]
        if stage != shown[0]:
            shown[0] = stage
            bar.set_description(stage, refresh=False)
        bar.update(done - bar.n)

    try:
        result = clip.render(components, progress)
    finally:
        bar.close()
    written = write_video(result.frames, clip.out, fps=clip.fps)
    if clip.request is not None:
        write_sidecar(written, build_sidecar(clip.request, result.settings, result.seed, result.motion_id,
                                             tuple(result.frames.shape[:3])))
    return result, written


def wrote_line(written: Path, result: ClipResult, fps: float) -> str:
    frames, height, width = result.frames.shape[:3]
    return f"Wrote {written} ({frames} frames, {width}x{height}, {fps:g} fps)"
