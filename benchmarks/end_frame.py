"""How well an end frame is reached, and whether the way there is a jump: the figures behind docs/cinemagraphs.md
"End frame".

Not a test. The two models of ``benchmarks/window_quality.py`` (the smooth-motion oracle and the golden tiny
UNet). The target is a random end frame per video, drawn like a frame of the oracle's motion prior (same
variance as its last frame), so it is a frame the motion could plausibly reach; each row reports, as the loop
table does, the last frame's distance to the target and the largest frame-to-frame step, both over the median
frame-to-frame step (batch means). 64 frames are sampled in the default context windows.

    python benchmarks/end_frame.py            # about 10 minutes on one CPU core
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.window_quality import TINY_A, SmoothMotionOracle, frame_steps, tiny_unet  # noqa: E402
from cinemo_core.sampling.context_windows import ContextWindows  # noqa: E402
from cinemo_core.sampling.loop import default_end_ramp  # noqa: E402
from cinemo_core.sampling.sampler import sample_residual  # noqa: E402
from cinemo_core.sampling.schedule import CinemoSchedule  # noqa: E402


def end_targets(oracle: SmoothMotionOracle, frames: int, batch: int, seed: int) -> torch.Tensor:
    """[batch, 4, 1, 8, 16] random end frames with the variance the prior gives the last frame."""
    variance = oracle.prior(frames - 1)[-1, -1].float()
    generator = torch.Generator().manual_seed(seed)
    return variance.sqrt() * torch.randn(batch, 4, 1, 8, 16, generator=generator)


def sample(model, frames: int, batch: int, steps: int, end_target: torch.Tensor | None,
           end_ramp: int | None = None) -> torch.Tensor:
    """A [batch, 4, frames - 1, 8, 16] residual from plain noise (seed 1), with the golden case's conditioning."""
    from safetensors.torch import load_file

    golden = load_file(TINY_A / "case.safetensors")
    noise = torch.randn(batch, 4, frames - 1, 8, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return sample_residual(
            model, noise, golden["base_content"], golden["encoder_hidden_states"],
            golden["negative_encoder_hidden_states"], 90.0, steps=steps, guidance_scale=1.0,
            windows=ContextWindows(), end_target=end_target, end_ramp=end_ramp,
        )


def end_figures(residual: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(last frame vs target, largest frame-to-frame step), both over the median step, batch means."""
    steps = frame_steps(residual)
    median = steps.median(dim=1).values
    distance = (residual[:, :, -1:] - target).flatten(1).norm(dim=1)
    return float((distance / median).mean()), float((steps.max(dim=1).values / median).mean())


def end_table(models: dict, oracle: SmoothMotionOracle, steps: int) -> None:
    print(f"\nEnd frame: last frame vs the end frame over the median frame-to-frame step ({steps} steps; the "
          "largest step shows whether the way there is a jump)")
    print("| model | frames | option | distance to end frame / median step | largest step / median step |")
    print("|---|---|---|---|---|")
    for model_name, (model, batch) in models.items():
        for frames in (16, 64):
            target = end_targets(oracle, frames, batch, seed=2)
            variants = [("none", None, None), (f"end frame (ramp {default_end_ramp(frames - 1)} + 1)", target, None),
                        ("end frame, no ramp (only the last frame pulled)", target, 0)]
            for label, end_target, ramp in variants:
                distance, largest = end_figures(sample(model, frames, batch, steps, end_target, ramp), target)
                print(f"| {model_name} | {frames} | {label} | {distance:.2f} | {largest:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=16, help="oracle samples per row")
    parser.add_argument("--tiny-batch", type=int, default=2, help="tiny UNet samples per row (it is slower)")
    parser.add_argument("--motion-length", type=float, default=3.0, help="oracle: frames over which motion changes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--oracle-only", action="store_true", help="skip the tiny UNet rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    oracle = SmoothMotionOracle(args.motion_length, CinemoSchedule())
    models = {"oracle": (oracle, args.batch)}
    if not args.oracle_only:
        models["tiny"] = (tiny_unet(), args.tiny_batch)
    end_table(models, oracle, args.steps)


if __name__ == "__main__":
    main()
