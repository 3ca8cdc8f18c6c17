"""torch.compile on the CPU: compile time, steady step time, and whether it pays off for one clip (not a test).

Two hosts, each eager and compiled (inductor), every run in a fresh process:

* **standalone**: the golden tiny UNet (tests/fixtures/tiny_a) in ``sample_residual`` (DDIM, CFG 7.5),
  compiled with ``cinemo_core.app.torch_compile.compile_unet``, i.e. what ``cinemo-animate --compile`` does;
* **comfyui**: the same model through Cinemo Model Loader + Cinemo Sampler, compiled with core
  **TorchCompileModel** (backend inductor), in an in-process ComfyUI (``--cpu``; needs COMFYUI_PATH).

"cold" compiles with an empty inductor cache (a first run); "warm" is the next process with the same
cache (the second run of a session on the same machine). The first step of a compiled run includes the
compilation. A 50-step clip costs ``first step + 49 x steady step``, compared with 50 eager steps.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/torch_compile.py --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_PREFIX = "RESULT "


class Clock:
    """Wall and CPU time of every step (this process's CPU time: steadier on a shared machine)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def start(self) -> None:
        self.marks = [(time.perf_counter(), time.process_time())]

    def step(self, *_) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))

    def result(self) -> dict:
        wall = [b[0] - a[0] for a, b in zip(self.marks, self.marks[1:])]
        cpu = [b[1] - a[1] for a, b in zip(self.marks, self.marks[1:])]
        return {"first_s": wall[0], "steady_s": statistics.median(wall[1:]), "steps": len(wall),
                "steady_cpu_s": statistics.median(cpu[1:])}


def _conditioning(spec: dict):
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(HERE))
    from comfy_harness import TINY_A

    golden = load_file(TINY_A / "case.safetensors")
    h, w = spec["latent"]
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(1, 4, h, w, generator=generator) * 5
    noise = torch.randn(1, 4, spec["frames"] - 1, h, w, generator=generator)
    return golden, first, noise


def worker_standalone(spec: dict) -> dict:
    import torch

    from cinemo_core import load_unet
    from cinemo_core.sampling.sampler import sample_residual
    from cinemo_core.app.torch_compile import compile_unet

    sys.path.insert(0, str(HERE))
    from comfy_harness import TINY_A

    golden, first, noise = _conditioning(spec)
    unet = load_unet(TINY_A)
    model = compile_unet(unet) if spec["compiled"] else unet
    clock = Clock()
    with torch.inference_mode():
        clock.start()
        sample_residual(model, noise, first[:, :, None] * 0.18215, golden["encoder_hidden_states"],
                        golden["negative_encoder_hidden_states"], 90.0, steps=spec["steps"], guidance_scale=7.5,
                        callback=clock.step)
    return clock.result()


def worker_comfyui(spec: dict) -> dict:
    sys.path.insert(0, str(HERE))
    from comfy_harness import add_golden_model, boot

    comfyui = boot(["--cpu"])
    name = add_golden_model(comfyui)
    import torch
    from comfy_harness import call_node

    import comfy.utils

    torch.set_num_threads(spec["threads"] or torch.get_num_threads())
    golden, first, _ = _conditioning(spec)
    (model,) = call_node("CinemoModelLoader", model_name=name, weight_dtype="default")
    if spec["compiled"]:
        (model,) = call_node("TorchCompileModel", model=model, backend="inductor")
    first_frame = {"samples": first}
    positive, negative, latent = call_node(
        "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=9,
        frames=spec["frames"], raw_motion_id=-1.0,
    )
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    clock = Clock()
    comfy.utils.set_progress_bar_global_hook(lambda *args, **kwargs: clock.step())
    try:
        clock.start()
        call_node("CinemoSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                  first_frame=first_frame, seed=0, steps=spec["steps"], cfg=7.5, sampler_name="ddim",
                  scheduler="cinemo_ddim", dct_init=True, low_pass=0.23, noise_timestep=975)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    return clock.result()


WORKERS = {"standalone": worker_standalone, "comfyui": worker_comfyui}


def run(host: str, compiled: bool, spec: dict, cache: Path) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if spec["threads"]:
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    job = json.dumps({**spec, "compiled": compiled})
    done = subprocess.run([sys.executable, __file__, "--worker", host, "--spec", job], capture_output=True,
                          text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-1:] or [f"exit {done.returncode}"]
        return {"error": tail[0]}
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", nargs="+", choices=WORKERS, default=list(WORKERS))
    parser.add_argument("--steps", type=int, default=6, help="steps per run (the first one compiles)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--latent", type=int, nargs=2, default=(8, 16), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--eager-only", action="store_true", help="only the eager runs (seconds, not minutes)")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.spec)
        if spec["threads"]:
            import torch

            torch.set_num_threads(spec["threads"])
        print(RESULT_PREFIX + json.dumps(WORKERS[args.worker](spec)), flush=True)
        return

    spec = {"steps": args.steps, "frames": args.frames, "latent": list(args.latent), "threads": args.threads}
    hosts = [h for h in args.hosts if h != "comfyui" or os.environ.get("COMFYUI_PATH")]
    rows = []
    for host in hosts:
        with tempfile.TemporaryDirectory(prefix="cinemo-inductor-cache-") as cache:
            eager = run(host, False, spec, Path(cache))
            skipped = {"error": "not run (--eager-only)"}
            cold = skipped if args.eager_only else run(host, True, spec, Path(cache))
            warm = skipped if args.eager_only else run(host, True, spec, Path(cache))
        rows.append((host, eager, cold, warm))

    import torch

    print(f"{datetime.date.today()}, {platform.machine()} {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads or torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"tiny Cinemo (tests/fixtures/tiny_a), {args.frames} frames, latent {args.latent[0]}x{args.latent[1]}, "
          f"CFG 7.5 (batch 2), {args.steps} steps per run")
    print("| host | run | first step, s | steady step, s | steady step, CPU s | 50-step clip, s | vs eager |")
    print("|---|---|---|---|---|---|---|")
    for host, eager, cold, warm in rows:
        if "error" in eager:
            print(f"| {host} | eager | failed: {eager['error']} | | | | |")
            continue
        eager_clip = 50 * eager["steady_s"]
        print(f"| {host} | eager | {eager['first_s']:.2f} | {eager['steady_s']:.3f} | {eager['steady_cpu_s']:.3f} | "
              f"{eager_clip:.1f} | 1.00x |")
        for label, result in (("compiled, cold cache", cold), ("compiled, warm cache", warm)):
            if "error" in result:
                print(f"| {host} | {label} | failed: {result['error']} | | | | |")
                continue
            clip = result["first_s"] + 49 * result["steady_s"]
            print(f"| {host} | {label} | {result['first_s']:.1f} | {result['steady_s']:.3f} | "
                  f"{result['steady_cpu_s']:.3f} | {clip:.1f} | {eager_clip / clip:.2f}x |")


if __name__ == "__main__":
    main()
