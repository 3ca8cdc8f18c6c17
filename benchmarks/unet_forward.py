"""Benchmark one forward of the full-size Cinemo UNet on random weights (not a test).

Prints seconds per forward, GFLOP per forward (torch.utils.flop_counter), the achieved GFLOP/s, the
same process's 2048x2048 matmul GFLOP/s in the same dtype as a yardstick of the machine, and the peak RSS.
Forwards and matmul timings alternate and the best of each is kept, so that other jobs on a shared machine
disturb the ratio less than the seconds; the load average is printed with them. ``--profile N`` also
prints the forward's time by operator (torch.profiler, the N slowest, and by kind of operator).

    python benchmarks/unet_forward.py                      # official config, 16 frames at 16x16, batch 2, fp32, CPU
    python benchmarks/unet_forward.py --latent 20 32 --dtype bf16 --profile 25
    python benchmarks/unet_forward.py --latent 40 64 --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from cinemo_core import CinemoUNet3D, CinemoUNetConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def random_unet(config: CinemoUNetConfig, dtype: torch.dtype, device: str) -> CinemoUNet3D:
    """The model with small random weights, created in place (no second copy of 3.6 GB)."""
    unet = CinemoUNet3D(config, device="meta").to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, tensor in unet.state_dict().items():
            if name.endswith("rotary_emb.freqs"):
                continue
            if name.endswith(".weight") and tensor.ndim == 1:  # norm scales
                tensor.fill_(1.0)
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return unet.to(dtype).eval().requires_grad_(False)


def matmul_gflops(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


#: Kinds of operator in the profile: (kind, substrings of the aten operator's name), first match wins.
OPERATOR_KINDS = (
    ("convolution", ("convolution",)),
    ("matmul (linear)", ("addmm", "aten::mm", "bmm", "matmul")),
    ("attention", ("scaled_dot_product", "softmax")),
    ("normalisation", ("group_norm", "layer_norm")),
    ("layout copies", ("copy_", "cat", "index", "clone", "contiguous", "upsample")),
    ("elementwise", ("add", "mul", "silu", "gelu", "neg", "sub", "div", "where", "fill")),
)


def profile_forward(forward: Callable[[], torch.Tensor], rows: int) -> None:
    """Print the forward's self time by operator (the ``rows`` slowest) and by kind of operator."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        forward()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\nprofile: self CPU time by operator (ms; the profiler adds its own overhead), total {total / 1e3:.0f} ms")
    print(f"{'operator':<52} {'calls':>6} {'ms':>9} {'share':>6}")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        print(f"{event.key:<52} {event.count:>6} {event.self_cpu_time_total / 1e3:>9.1f} {event.self_cpu_time_total / total:>6.1%}")
    kinds: dict[str, float] = {}
    for event in events:
        kind = next((k for k, names in OPERATOR_KINDS if any(n in event.key for n in names)), "other")
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total
    print("\nprofile: by kind of operator")
    for kind, micros in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"{kind:<52} {'':>6} {micros / 1e3:>9.1f} {micros / total:>6.1%}")


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in averages)


def peak_rss_gb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="frames the UNet sees (first frame + residual frames)")
    parser.add_argument("--latent", type=int, nargs=2, default=(16, 16), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print the forward's time by operator, the N slowest (0: no profile)")
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    height, width = args.latent

    unet = random_unet(CinemoUNetConfig.official(), dtype, args.device)
    generator = torch.Generator(device=args.device).manual_seed(1)
    x = torch.randn(args.batch, 4, args.frames - 1, height, width, generator=generator, device=args.device).to(dtype)
    base = torch.randn(args.batch, 4, 1, height, width, generator=generator, device=args.device).to(dtype)
    context = torch.randn(args.batch, 77, 768, generator=generator, device=args.device).to(dtype)
    timesteps = torch.full((args.batch,), 981, device=args.device)
    motion = torch.full((args.batch,), 90.0, device=args.device)

    def forward() -> torch.Tensor:
        return unet(x, timesteps, context, base_content=base, motion_ids=motion)

    load_before = os.getloadavg()
    with torch.inference_mode():
        forward()  # warm-up
        counter = FlopCounterMode(display=False)
        with counter:
            forward()
        gflop = counter.get_total_flops() / 1e9
        seconds, references = [], [matmul_gflops(args.device, dtype)]
        for _ in range(args.repeats):  # forward and yardstick alternate: both see the same machine
            _synchronize(args.device)
            start = time.perf_counter()
            forward()
            _synchronize(args.device)
            seconds.append(time.perf_counter() - start)
            references.append(matmul_gflops(args.device, dtype))
        if args.profile:
            profile_forward(forward, args.profile)
    per_forward = min(seconds)
    reference = max(references)
    achieved = gflop / per_forward
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    print(f"machine: {platform.machine()} {device_name}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"case: official config, batch {args.batch}, {args.frames} frames at latent {height}x{width}, {args.dtype}, {args.device}")
    print(f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"seconds per forward (best of {args.repeats}): {per_forward:.3f} (all: {', '.join(f'{s:.2f}' for s in seconds)})")
    print(f"GFLOP per forward: {gflop:.1f}")
    print(f"achieved GFLOP/s: {achieved:.1f}")
    print(f"2048x2048 {args.dtype} matmul GFLOP/s (best of {len(references)}): {reference:.1f}")
    print(f"achieved / matmul: {achieved / reference:.2f}x")
    print(f"peak RSS: {peak_rss_gb():.2f} GB")
    if args.device.startswith("cuda"):
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
