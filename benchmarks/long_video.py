"""Peak memory and time per denoising step for long videos, with context windows vs one pass (not a test).

Each configuration runs in its own process (so that its peak RSS is its own): the tiny Cinemo UNet
(``CinemoUNetConfig.tiny()``, random weights) at a small latent size, text guidance on (cond + uncond
batched, as in the real sampler), fp32 on the CPU. Reported per configuration:

* ``step peak``: the largest total of live tensors during one whole sampling step (every window, the
  blending buffers and the DDIM update), traced with ``cinemo_core.model.memory.PeakTracker`` on the real run;
* ``peak RSS``: the process's peak resident memory (weights, PyTorch, Python included);
* ``s / step``: wall time of one step, the median over the timed steps.

    python benchmarks/long_video.py                   # 16, 32, 64 frames at 256x160, windows vs one pass
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cinemo_core import CinemoUNet3D, CinemoUNetConfig  # noqa: E402
from cinemo_core.sampling.context_windows import LONG_VIDEO_WINDOWS  # noqa: E402
from cinemo_core.model.memory import PeakTracker  # noqa: E402
from cinemo_core.sampling.sampler import sample_residual  # noqa: E402


def peak_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(frames: int, windowed: bool, height: int, width: int, steps: int) -> dict:
    """One configuration, in this process."""
    torch.manual_seed(0)
    config = CinemoUNetConfig.tiny()
    unet = CinemoUNet3D(config).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, frames - 1, height, width, generator=generator)
    base = torch.randn(1, 4, 1, height, width, generator=generator)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    negative = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    windows = LONG_VIDEO_WINDOWS if windowed else None

    def run(num_steps: int, callback=None) -> None:
        with torch.inference_mode():
            sample_residual(unet, x, base, context, negative, 90.0, steps=num_steps, guidance_scale=7.5,
                            windows=windows, callback=callback)

    tracker = PeakTracker()
    with tracker:
        run(1)
    stamps = [time.perf_counter()]
    run(steps + 1, callback=lambda *args: stamps.append(time.perf_counter()))
    per_step = [b - a for a, b in itertools.pairwise(stamps[1:])]  # the first step warms up
    calls = sum(len(LONG_VIDEO_WINDOWS.windows(frames - 1, step)) for step in range(steps)) if windowed else steps
    return {
        "frames": frames, "windowed": windowed, "step_peak_mib": tracker.peak / 2**20,
        "peak_rss_mib": peak_rss_mib(), "seconds_per_step": statistics.median(per_step),
        "unet_calls_per_step": calls / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--size", type=int, nargs=2, default=[256, 160], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("FRAMES", "WINDOWED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = args.size
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1] == "1", height // 8, width // 8, args.steps)))
        return

    print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s); tiny UNet, {width}x{height} (latent {width // 8}x{height // 8}), cfg on, fp32, "
          f"windows: {LONG_VIDEO_WINDOWS.schedule} / {LONG_VIDEO_WINDOWS.fuse}, {LONG_VIDEO_WINDOWS.length} + first "
          f"image, overlap {LONG_VIDEO_WINDOWS.overlap}")
    print("| frames | sampling | UNet calls / step | step peak (tensors) | peak RSS | s / step |")
    print("|---|---|---|---|---|---|")
    for frames in args.frames:
        for windowed in (False, True):
            command = [sys.executable, __file__, "--one", str(frames), str(int(windowed)), "--size", str(width),
                       str(height), "--steps", str(args.steps), "--threads", str(args.threads)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            mode = "windows" if windowed else "one pass"
            if windowed and frames <= LONG_VIDEO_WINDOWS.length + 1:
                mode += " (= one pass)"
            print(f"| {frames} | {mode} | {result['unet_calls_per_step']:.1f} | {result['step_peak_mib']:.0f} MiB | "
                  f"{result['peak_rss_mib']:.0f} MiB | {result['seconds_per_step']:.2f} |")


if __name__ == "__main__":
    main()
