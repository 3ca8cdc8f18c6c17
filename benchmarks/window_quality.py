"""How context windows and the loop option shape a video: the figures behind README "Long videos and loops".

Not a test. Two models:

* ``oracle``: the exact denoiser of a smooth-motion prior (a Gaussian process over frames, squared-exponential
  in time with a length of ``--motion-length`` frames, conditioned on residual 0 at the first image), in the
  Cinemo UNet's calling convention. Like Cinemo it sees ``[first image, window frames]`` and so believes every
  window starts right after the first image. Its one-pass samples are smooth by construction, so any seam,
  dip or jump in a windowed sample is the windows' doing.
* ``tiny``: the golden tiny Cinemo UNet (random weights; its frames are uncorrelated noise, so smoothness
  figures mean nothing there, but the loop mechanism's guarantee must hold on it too).

    python benchmarks/window_quality.py                 # all tables, about 10 minutes on one CPU core
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cinemo_core.sampling import sampler as sampling  # noqa: E402
from cinemo_core.sampling.context_windows import (  # noqa: E402
    BATCHED,
    FLAT,
    LOOPED_UNIFORM,
    OVERLAP_LINEAR,
    PYRAMID,
    RELATIVE,
    STANDARD_STATIC,
    STANDARD_UNIFORM,
    ContextWindows,
)
from cinemo_core.sampling.loop import default_ramp  # noqa: E402
from cinemo_core.sampling.sampler import sample_residual  # noqa: E402
from cinemo_core.sampling.schedule import CinemoSchedule  # noqa: E402

TINY_A = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny_a"


class SmoothMotionOracle:
    """E[residual | x_t] for a Gaussian-process motion prior, returned as epsilon (ignores text and motion id)."""

    def __init__(self, motion_length: float, schedule: CinemoSchedule) -> None:
        self.motion_length = motion_length
        self.alphas = schedule.alphas_cumprod.double()

    def prior(self, frames: int) -> torch.Tensor:
        """Covariance of residual frames at positions 1..frames, given residual 0 at position 0."""
        position = torch.arange(frames + 1, dtype=torch.float64)
        kernel = torch.exp(-((position[:, None] - position[None, :]) ** 2) / (2 * self.motion_length**2))
        anchored = kernel[1:, 1:] - kernel[1:, :1] @ kernel[:1, 1:]
        return anchored + 1e-6 * torch.eye(frames, dtype=torch.float64)

    def __call__(self, x, timesteps, context, *, base_content, motion_ids):
        alpha = self.alphas[int(timesteps[0])]
        prior = self.prior(x.shape[2])
        eye = torch.eye(x.shape[2], dtype=torch.float64)
        posterior = alpha.sqrt() * prior @ torch.linalg.inv(alpha * prior + (1 - alpha) * eye)
        clean = torch.einsum("fg,bcghw->bcfhw", posterior, x.double())
        return ((x.double() - alpha.sqrt() * clean) / (1 - alpha).sqrt()).to(x.dtype)


def tiny_unet():
    from cinemo_core import load_unet

    return load_unet(TINY_A).eval()


def sample(model, frames: int, batch: int, steps: int, seed: int, windows=None, loop_ramp=0, cfg=1.0):
    """A [batch, 4, frames - 1, 8, 16] residual from plain noise, with the golden case's conditioning."""
    from safetensors.torch import load_file

    golden = load_file(TINY_A / "case.safetensors")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, 4, frames - 1, 8, 16, generator=generator)
    with torch.no_grad():
        return sample_residual(
            model, noise, golden["base_content"], golden["encoder_hidden_states"],
            golden["negative_encoder_hidden_states"], 90.0, steps=steps, guidance_scale=cfg, windows=windows,
            loop_ramp=loop_ramp,
        )


def frame_steps(residual: torch.Tensor) -> torch.Tensor:
    """[batch, frames] latent distance of each frame to the one before (frame 0 = the first image)."""
    frames = residual.transpose(1, 2).flatten(2)  # batch, F, D
    with_first = torch.cat([torch.zeros_like(frames[:, :1]), frames], dim=1)
    return (with_first[:, 1:] - with_first[:, :-1]).norm(dim=2)


def smoothness(residual: torch.Tensor) -> tuple[float, float, float]:
    """(worst step, smallest step, smallest amplitude after the first window) relative to their medians.

    Mean squared step per frame pair over the batch and latent elements: a seam is a step far above the
    median, over-smoothing one far below; the amplitude is the mean squared residual per frame.
    """
    frames = residual.transpose(1, 2).flatten(2).double()  # batch, F, D
    squared_steps = (frames[:, 1:] - frames[:, :-1]).pow(2).mean(dim=(0, 2))
    amplitude = frames.pow(2).mean(dim=(0, 2))[15:]
    median = squared_steps.median()
    return (
        float((squared_steps.max() / median).sqrt()),
        float((squared_steps.min() / median).sqrt()),
        float((amplitude.min() / amplitude.median()).sqrt()),
    )


def seam(residual: torch.Tensor) -> tuple[float, float]:
    """(last frame vs first frame, largest frame-to-frame step), both over the median step, batch means."""
    steps = frame_steps(residual)
    median = steps.median(dim=1).values
    last = residual[:, :, -1].flatten(1).norm(dim=1)
    return float((last / median).mean()), float((steps.max(dim=1).values / median).mean())


@contextlib.contextmanager
def pinned_anchor():
    """Variant for comparison only: pin one extra last frame to the first image (weights 1, ..., 1, 0)."""
    original = sampling.return_weights

    def pin(num_frames: int, ramp: int) -> torch.Tensor:
        weights = torch.ones(num_frames)
        weights[-1] = 0.0
        return weights

    sampling.return_weights = pin
    try:
        yield
    finally:
        sampling.return_weights = original


def schedule_table(oracle, frames: int, batch: int, steps: int) -> None:
    print(f"\nWindows on the smooth-motion oracle (motion length {oracle.motion_length:g} frames): {frames} "
          f"frames, {batch} samples, {steps} steps, window 15 + first image, overlap 4")
    print("| schedule | fuse | worst step / median | smallest step / median | smallest amplitude / median |")
    print("|---|---|---|---|---|")
    rows = [("one pass", None)] + [
        (f"{schedule}", ContextWindows(schedule=schedule, fuse=fuse))
        for schedule, fuse in [
            (STANDARD_STATIC, PYRAMID), (STANDARD_STATIC, RELATIVE), (STANDARD_STATIC, FLAT),
            (STANDARD_STATIC, OVERLAP_LINEAR), (STANDARD_UNIFORM, PYRAMID), (STANDARD_UNIFORM, RELATIVE),
            (STANDARD_UNIFORM, FLAT), (STANDARD_UNIFORM, OVERLAP_LINEAR), (LOOPED_UNIFORM, PYRAMID), (BATCHED, FLAT),
        ]
    ]
    for name, windows in rows:
        residual = sample(oracle, frames, batch, steps, seed=0, windows=windows)
        worst, smallest, amplitude = smoothness(residual)
        fuse = windows.fuse if windows else "-"
        print(f"| {name} | {fuse} | {worst:.2f} | {smallest:.2f} | {amplitude:.2f} |")


def loop_table(models: dict, steps: int) -> None:
    print(f"\nLoop seam: last frame vs first frame over the median frame-to-frame step ({steps} steps; "
          "the largest step shows whether the way back is a jump)")
    print("| model | frames | option | seam / median step | largest step / median step |")
    print("|---|---|---|---|---|")
    for model_name, (model, batch) in models.items():
        for frames in (16, 64):
            windows = ContextWindows()
            variants = [("none", {}), (f"--loop (ramp {default_ramp(frames - 1)})", {"loop_ramp": default_ramp(frames - 1)})]
            if frames > 16:
                variants.append(("looped windows, closed", {"windows_override": ContextWindows(
                    schedule=LOOPED_UNIFORM, closed_loop=True)}))
            variants.append(("pinned anchor (extra frame, dropped)", {"pinned": True}))
            for label, variant in variants:
                use = variant.get("windows_override", windows)
                if variant.get("pinned"):
                    with pinned_anchor():
                        residual = sample(model, frames + 1, batch, steps, seed=1, windows=use, loop_ramp=1)[:, :, :-1]
                else:
                    residual = sample(model, frames, batch, steps, seed=1, windows=use,
                                      loop_ramp=variant.get("loop_ramp", 0))
                ratio, largest = seam(residual)
                print(f"| {model_name} | {frames} | {label} | {ratio:.2f} | {largest:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=16, help="oracle samples per row")
    parser.add_argument("--tiny-batch", type=int, default=2, help="tiny UNet samples per row (it is slower)")
    parser.add_argument("--motion-lengths", type=float, nargs="+", default=[2.0, 3.0, 5.0],
                        help="oracle: frames over which motion changes (one window table each; the loop table "
                        "uses the second)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    for motion_length in args.motion_lengths:
        schedule_table(SmoothMotionOracle(motion_length, CinemoSchedule()), 64, args.batch, args.steps)
    oracle = SmoothMotionOracle(args.motion_lengths[min(1, len(args.motion_lengths) - 1)], CinemoSchedule())
    loop_table({"oracle": (oracle, args.batch), "tiny": (tiny_unet(), args.tiny_batch)}, args.steps)


if __name__ == "__main__":
    main()
