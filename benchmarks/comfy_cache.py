"""Core EasyCache and LazyCache on the Cinemo MODEL: UNet calls skipped, time, and the change (not a test).

Runs **Cinemo Sampler** (DDIM, the official schedule, DCTInit, CFG 7.5, 50 steps) on the golden tiny
model in an in-process ComfyUI (``--cpu``), once plain and once per cache node and ``reuse_threshold``
(start 0.15, end 0.95: the nodes' defaults). Counts UNet passes, one per video and conditioning (a hook on
the first convolution; cond and uncond run as one batched call, or as two calls under EasyCache, which
needs them apart), times the whole sampling, and compares the
sampled residual with the uncached one: ``max|cached - plain| / max|plain|``.

The tiny model has random weights: the differences say how much a cache changes *this* network's
trajectory, a stand-in for the real model's, not how the real model's videos look.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/comfy_cache.py
    COMFYUI_PATH=... python benchmarks/comfy_cache.py --latent 40 64 --steps 50 --thresholds 0.1 0.2
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=16, help="video frames (the first included)")
    parser.add_argument("--latent", type=int, nargs=2, default=(8, 16), metavar=("H", "W"),
                        help="latent size (default 8 16 = 128x64 pixels, the golden case's)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=(0.05, 0.1, 0.2, 0.3))
    parser.add_argument("--nodes", nargs="+", default=("EasyCache", "LazyCache"))
    parser.add_argument("--cfg", type=float, default=7.5, help="guidance (1: one UNet input per step, no uncond)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 gives steadier CPU-time ratios on a busy machine)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from comfy_harness import add_golden_model, boot

    comfyui = boot(["--cpu"])
    golden_name = add_golden_model(comfyui)
    import torch
    from comfy_harness import TINY_A, call_node

    if args.threads:
        torch.set_num_threads(args.threads)
    from safetensors.torch import load_file

    golden = load_file(TINY_A / "case.safetensors")
    (model,) = call_node("CinemoModelLoader", model_name=golden_name, weight_dtype="default")
    height, width = args.latent
    first_frame = {"samples": torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(0)) * 5}
    positive, negative, latent = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=9,
        frames=args.frames, raw_motion_id=-1.0,
    )

    def sample(patched) -> tuple[torch.Tensor, int, float, float]:
        calls = []
        # conv_in sees the frames of every video of the call, the first frame included
        hook = patched.model.diffusion_model.conv_in.register_forward_pre_hook(
            lambda module, inputs: calls.append(inputs[0].shape[0] // args.frames))
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            (out,) = call_node(
                "CinemoSampler", model=patched, positive=positive, negative=negative, latent_image=latent,
                first_frame=first_frame, seed=3, steps=args.steps, cfg=args.cfg, sampler_name="ddim",
                scheduler="cinemo_ddim", dct_init=True, low_pass=0.23, noise_timestep=975,
            )
        finally:
            hook.remove()
        return out["samples"], sum(calls), time.perf_counter() - start, time.process_time() - cpu_start

    sample(model)  # warm-up: loads the model, first-call allocations
    reference, reference_calls, reference_seconds, reference_cpu = sample(model)
    rows = [("none", "-", reference_calls, reference_seconds, reference_cpu, 0.0)]
    for node in args.nodes:
        for threshold in args.thresholds:
            (patched,) = call_node(node, model=model, reuse_threshold=threshold, start_percent=0.15,
                                   end_percent=0.95, verbose=False)
            out, calls, seconds, cpu = sample(patched)
            difference = ((out - reference).abs().max() / reference.abs().max()).item()
            rows.append((node, f"{threshold:g}", calls, seconds, cpu, difference))

    print(f"{datetime.date.today()}, {platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, ComfyUI --cpu")
    print(f"tiny random Cinemo (tests/fixtures/tiny_a), {args.frames} frames, latent {height}x{width}, "
          f"{args.steps} DDIM steps, CFG {args.cfg:g}" + (" (a positive and a negative pass per step)" if args.cfg != 1 else ""))
    print("| cache | reuse_threshold | UNet passes | skipped | wall s | CPU s | speed-up (CPU time) | max rel. difference |")
    print("|---|---|---|---|---|---|---|---|")
    for node, threshold, calls, seconds, cpu, difference in rows:
        print(f"| {node} | {threshold} | {calls} | {reference_calls - calls} | {seconds:.1f} | {cpu:.1f} | "
              f"{reference_cpu / cpu:.2f}x | {difference:.1e} |")


if __name__ == "__main__":
    main()
