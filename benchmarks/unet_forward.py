"""Benchmark one forward of the full-size Cinemo UNet on random weights (not a test).

Prints seconds per forward, GFLOP per forward (torch.utils.flop_counter), the achieved GFLOP/s, the
same process's 2048x2048 fp32 matmul GFLOP/s as a yardstick of the machine, and the peak RSS.

    python benchmarks/unet_forward.py                      # official config, 16 frames at 16x16, batch 2, fp32, CPU
    python benchmarks/unet_forward.py --latent 40 64 --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time

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


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


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

    with torch.inference_mode():
        forward()  # warm-up
        counter = FlopCounterMode(display=False)
        with counter:
            forward()
        gflop = counter.get_total_flops() / 1e9
        seconds = []
        for _ in range(args.repeats):
            _synchronize(args.device)
            start = time.perf_counter()
            forward()
            _synchronize(args.device)
            seconds.append(time.perf_counter() - start)
    per_forward = statistics.median(seconds)
    reference = matmul_gflops(args.device, dtype)
    achieved = gflop / per_forward
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"machine: {platform.machine()} {device_name}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"case: official config, batch {args.batch}, {args.frames} frames at latent {height}x{width}, {args.dtype}, {args.device}")
    print(f"seconds per forward (median of {args.repeats}): {per_forward:.3f}")
    print(f"GFLOP per forward: {gflop:.1f}")
    print(f"achieved GFLOP/s: {achieved:.1f}")
    print(f"2048x2048 matmul GFLOP/s: {reference:.1f}")
    print(f"achieved / matmul: {achieved / reference:.2f}x")
    print(f"peak RSS: {peak_rss_gb():.2f} GB")
    if args.device.startswith("cuda"):
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
