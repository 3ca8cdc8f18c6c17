"""Context windows: videos longer than the 16 frames Cinemo was trained on.

The motion residual ``[B, 4, F, h, w]`` is cut along its frame axis into overlapping windows of the
trained length (15 residual frames, 16 with the first image). Every window is denoised with the same
first frame, text and motion id, and the overlapping predictions are blended at every step.

Window schedules and blending weights are those of ComfyUI's ``comfy.context_windows`` (same names,
same windows, same weights), applied on the residual axis (ComfyUI ``dim=2``), so that the command line
and a ComfyUI graph with context windows sample the same video. They are re-derived here because
``cinemo_core`` runs without ComfyUI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..settings import CONTEXT_WINDOW_FUSE, CONTEXT_WINDOW_OVERLAP, CONTEXT_WINDOW_SCHEDULE, FRAME_DIM, TRAINED_FRAMES

STANDARD_STATIC = "standard_static"
STANDARD_UNIFORM = "standard_uniform"
LOOPED_UNIFORM = "looped_uniform"
BATCHED = "batched"
SCHEDULES = (STANDARD_STATIC, STANDARD_UNIFORM, LOOPED_UNIFORM, BATCHED)

PYRAMID = "pyramid"
FLAT = "flat"
OVERLAP_LINEAR = "overlap-linear"
RELATIVE = "relative"
FUSE_METHODS = (PYRAMID, RELATIVE, FLAT, OVERLAP_LINEAR)

#: Residual frames per window: the trained 16 frames minus the first image, which every window shares.
TRAINED_WINDOW = TRAINED_FRAMES - 1
#: The residual frame axis of ``[B, 4, F, h, w]`` (ComfyUI's ``dim``).

Window = list[int]
#: ``predict(x_slice) -> eps_slice`` for a ``[B, 4, f, h, w]`` slice of the residual.
WindowPredictor = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ContextWindows:
    """How to cut the residual frames into windows and blend them (ComfyUI's Context Windows settings).

    The defaults are Cinemo's (:data:`LONG_VIDEO_WINDOWS`).

    Attributes:
        length: residual frames per window (ComfyUI ``context_length``); 15 = the trained 16-frame clip.
        overlap: frames shared by neighbouring windows (``context_overlap``).
        schedule: one of :data:`SCHEDULES` (``context_schedule``).
        fuse: one of :data:`FUSE_METHODS` (``fuse_method``).
        stride: ``context_stride``, uniform schedules only (1 = contiguous windows).
        closed_loop: ``closed_loop``, ``looped_uniform`` only: windows also wrap from the last frame to the first.
    """

    length: int = TRAINED_WINDOW
    overlap: int = CONTEXT_WINDOW_OVERLAP
    schedule: str = CONTEXT_WINDOW_SCHEDULE
    fuse: str = CONTEXT_WINDOW_FUSE
    stride: int = 1
    closed_loop: bool = False

    def __post_init__(self) -> None:
        for name in ("length", "overlap", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"context window {name} must be an integer, got {value!r}.")
        if self.length < 1:
            raise ValueError(f"context window length must be at least 1 frame, got {self.length}.")
        if not 0 <= self.overlap < self.length:
            raise ValueError(
                f"context window overlap must be from 0 to length - 1 = {self.length - 1}, got {self.overlap}."
            )
        if self.stride < 1:
            raise ValueError(f"context window stride must be at least 1, got {self.stride}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"context schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.fuse not in FUSE_METHODS:
            raise ValueError(f"fuse method must be one of {', '.join(FUSE_METHODS)}, got {self.fuse!r}.")
        if self.fuse == OVERLAP_LINEAR and (self.overlap < 1 or self.schedule == BATCHED):
            raise ValueError(
                "fuse method overlap-linear blends overlapping frames: give an overlap of at least 1 frame and a "
                "schedule other than batched (whose windows do not overlap), or use fuse method flat."
            )

    def applies_to(self, num_frames: int) -> bool:
        """Windows are used only when the residual is longer than one window (as in ComfyUI)."""
        return num_frames > self.length

    def windows(self, num_frames: int, step: int = 0) -> list[Window]:
        """The windows (lists of residual frame indices) for denoising step ``step`` (0 = first)."""
        return context_windows(num_frames, self, step)


#: How the pipeline (and the ComfyUI node) sample videos longer than the trained 16 frames.
LONG_VIDEO_WINDOWS = ContextWindows()


def ordered_halving(step: int) -> float:
    """``step``'s 64-bit binary digits mirrored behind the binary point: 0, 1/2, 1/4, 3/4, 1/8, ...

    Uniform schedules shift their windows by this fraction of the video at each step, so that window
    edges fall on different frames from step to step.
    """
    mirrored = int(f"{step:064b}"[::-1], 2)
    return mirrored / (1 << 64)


def context_windows(num_frames: int, options: ContextWindows, step: int = 0) -> list[Window]:
    """The windows ``options.schedule`` gives ``num_frames`` residual frames at denoising step ``step``."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}.")
    windows = _schedule(num_frames, options, step)
    covered = set()
    for window in windows:
        covered.update(window)
    if covered != set(range(num_frames)):
        # only strided uniform windows wider than the video do this (in ComfyUI they index past the end or
        # leave frames to a division by zero)
        raise ValueError(
            f"context stride {options.stride} does not fit a {num_frames}-frame video with windows of "
            f"{options.length}: frames would be left out or run past the end. Use stride 1."
        )
    return windows


def _schedule(num_frames: int, options: ContextWindows, step: int) -> list[Window]:
    if options.schedule == STANDARD_STATIC:
        return _static_windows(num_frames, options)
    if options.schedule == BATCHED:
        return _batched_windows(num_frames, options)
    if options.schedule == LOOPED_UNIFORM:
        if num_frames < options.length:
            return [list(range(num_frames))]
        return _uniform_windows(num_frames, options, step, wrap_end=options.closed_loop)
    if num_frames <= options.length:
        return [list(range(num_frames))]
    return _unrolled(_uniform_windows(num_frames, options, step, wrap_end=False), num_frames, options.length)


def _static_windows(num_frames: int, options: ContextWindows) -> list[Window]:
    length = options.length
    if num_frames <= length:
        return [list(range(num_frames))]
    windows = []
    for start in range(0, num_frames, length - options.overlap):
        if start + length >= num_frames:  # the last window ends on the last frame, overlapping more
            windows.append(list(range(num_frames - length, num_frames)))
            break
        windows.append(list(range(start, start + length)))
    return windows


def _batched_windows(num_frames: int, options: ContextWindows) -> list[Window]:
    length = options.length
    return [list(range(start, min(start + length, num_frames))) for start in range(0, num_frames, length)]


def _uniform_windows(num_frames: int, options: ContextWindows, step: int, wrap_end: bool) -> list[Window]:
    """Evenly spaced windows starting at a per-step offset; indices wrap around the end of the video."""
    length, overlap = options.length, options.overlap
    levels = min(options.stride, math.ceil(math.log2(num_frames / length)) + 1)
    shift = ordered_halving(step)
    pad = round(num_frames * shift)
    stop = num_frames + pad - (0 if wrap_end else overlap)
    windows = []
    for level in range(levels):
        spacing = 1 << level
        span = length * spacing
        for start in range(int(shift * spacing) + pad, stop, span - overlap):
            windows.append([frame % num_frames for frame in range(start, start + span, spacing)])
    return windows


def _first_wrap(window: Window) -> int | None:
    """Position of the first index lower than its predecessor (where a window wraps), or None."""
    for position in range(1, len(window)):
        if window[position] < window[position - 1]:
            return position
    return None


def _unrolled(windows: list[Window], num_frames: int, length: int) -> list[Window]:
    """Windows that wrap around the end moved back to end on the last frame, with no window twice.

    Where moving a window back leaves the frames it wrapped onto uncovered (the next window does not
    hold them), a window starting on them is added after it.
    """
    windows = [list(window) for window in windows]
    position = 0
    while position < len(windows):
        window = windows[position]
        wrap = _first_wrap(window)
        if wrap is not None:
            wrapped_to = window[wrap]
            relative = [(frame - window[0]) % num_frames for frame in window]
            end_shift = num_frames - 1 - relative[-1]
            windows[position] = [frame + end_shift for frame in relative]
            if wrapped_to not in windows[(position + 1) % len(windows)]:
                windows.insert(position + 1, list(range(wrapped_to, wrapped_to + length)))
        position += 1
    unique: list[Window] = []
    for window in windows:
        if window not in unique:
            unique.append(window)
    return unique


def fuse_weights(window: Window, num_frames: int, options: ContextWindows) -> torch.Tensor:
    """Blending weight (float32, one per frame of ``window``) of that window's prediction.

    ``pyramid`` rises 1, 2, ... towards the middle of the window and falls again (FreeNoise's weighted
    average); ``flat`` is 1 everywhere; ``overlap-linear`` ramps over ``overlap`` frames on the sides
    shared with a neighbour; ``relative`` is 1 at the centre falling linearly to 0.01 at the ends.
    """
    length = len(window)
    if options.fuse == FLAT:
        return torch.ones(length)
    if options.fuse == PYRAMID:
        rise = list(range(1, (length + 1) // 2 + 1))
        return torch.tensor(rise + rise[: length // 2][::-1], dtype=torch.float32)
    if options.fuse == OVERLAP_LINEAR:
        weights = torch.ones(length)
        overlap = options.overlap
        if min(window) > 0:
            weights[:overlap] = torch.linspace(1e-37, 1, overlap)
        if max(window) < num_frames - 1:
            weights[-overlap:] = torch.linspace(1, 1e-37, overlap)
        return weights
    first, last = window[0], window[-1]
    centre, half_span = (first + last) / 2, (last - first + 1e-2) / 2
    return torch.tensor([max(1e-2, 1 - abs(frame - centre) / half_span) for frame in window], dtype=torch.float64)


def _along_frames(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return weights.to(like.device).view(1, 1, -1, 1, 1)


def windowed_prediction(
    predict: WindowPredictor, x: torch.Tensor, options: ContextWindows, step: int = 0
) -> torch.Tensor:
    """Predict every window of ``x`` [B, 4, F, h, w] with ``predict`` and blend the results.

    The result is the per-frame weighted mean of the windows' predictions (weights from
    :func:`fuse_weights`), in ``x``'s dtype. ``predict`` sees ``x[:, :, window]``.
    """
    num_frames = x.shape[FRAME_DIM]
    windows = options.windows(num_frames, step)
    total = torch.zeros_like(x)
    if options.fuse == RELATIVE:
        # a running weighted mean, as ComfyUI keeps it: each window is folded in with its weight
        bias_total = torch.zeros(num_frames, dtype=torch.float64)
        for window in windows:
            out = predict(x[:, :, window])
            bias = fuse_weights(window, num_frames, options)
            for position, frame in enumerate(window):
                before = float(bias_total[frame])
                added = float(bias[position])
                total[:, :, frame] = total[:, :, frame] * (before / (before + added)) + out[:, :, position] * (
                    added / (before + added)
                )
                bias_total[frame] = before + added
        return total
    counts = torch.zeros(1, 1, num_frames, 1, 1, device=x.device)
    for window in windows:
        out = predict(x[:, :, window])
        weights = _along_frames(fuse_weights(window, num_frames, options), x)
        # indexed +=, like ComfyUI: a frame listed twice in one window counts once
        total[:, :, window] += out * weights
        counts[:, :, window] += weights
    return total / counts

