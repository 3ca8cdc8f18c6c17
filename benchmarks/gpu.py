"""Side-by-side GPU benchmark: the official Cinemo code, this package standalone, and this package in ComfyUI.

One command measures, in one run on one CUDA device, the paper's settings (16 frames at 512x320, 50
DDIM steps, CFG 7.5 with cond and uncond batched) for each implementation and weight dtype:

* **official**: maxin-cn/Cinemo's own ``VideoGenPipeline`` and ``UNet3DConditionModel`` (spatial and cross
  attention through diffusers' default processor, i.e. PyTorch SDPA; its temporal attention is its own
  ``baddbmm`` + softmax), fp16 and bf16 weights. Give the fetched repository's folder with ``--official``
  (keep it outside this project; never commit it) and, if its diffusers-0.24-era code needs its own
  environment, that environment's Python with ``--official-python``. It runs ``--official-steps`` steps
  (default 10) and its 50-step time is extrapolated from the median step (marked ``*``).
* **standalone**: ``cinemo_core``'s UNet and DDIM loop (``sample_residual``), PyTorch SDPA, fp16 and bf16.
* **comfyui**: Cinemo Model Loader + Cinemo Sampler in an in-process ComfyUI started with
  ``--use-pytorch-cross-attention`` (SDPA), fp16, bf16 and fp8_e4m3fn weights (``COMFYUI_PATH``).

Every implementation runs in its own process (its own peak-memory count and, for the official code, its
own Python). Weights are **random** at the official config (911 M parameters): speed and memory do not
depend on the values. Measured: seconds per step (median), the 50-step sampling loop (text encoding and
VAE decoding are not included), the weights' GPU memory and the peak (``torch.cuda.max_memory_allocated``).

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/gpu.py --official /scratch/Cinemo [--official-python /scratch/venv/bin/python]
    python benchmarks/gpu.py --dry-run --official /scratch/Cinemo     # the same code on the CPU, tiny model, 2 steps

About 5 minutes on an H100-class GPU (most of it process start-up and weight set-up).
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
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCHEDULER_CONFIG = REPO / "tests" / "fixtures" / "tiny_a" / "scheduler" / "scheduler_config.json"
IMPLEMENTATIONS = ("official", "standalone", "comfyui")
DTYPES = {"official": ("fp16", "bf16"), "standalone": ("fp16", "bf16"), "comfyui": ("fp16", "bf16", "fp8_e4m3fn")}
RESULT_PREFIX = "RESULT "
OFFICIAL_FILES = ("models/unet.py", "pipelines/pipeline_videogen.py")


# ----------------------------------------------------------------------------- shared by the workers

def _torch_dtype(name: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_gb(device: str) -> float:
    """Peak GPU memory allocated by torch; on the CPU the process's peak resident memory (whole process)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


def _weights_gb(module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**30


class StepClock:
    """Wall time of every sampling step, from a per-step callback (synchronising the device first)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.marks: list[float] = []

    def start(self) -> None:
        _sync(self.device)
        self.marks = [time.perf_counter()]
        self.cpu = [time.process_time()]

    def step(self, *_: Any) -> None:
        _sync(self.device)
        self.marks.append(time.perf_counter())
        self.cpu.append(time.process_time())

    @property
    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def _result(spec: dict, impl: str, dtype: str, clock: StepClock, weights_gb: float | None, note: str = "") -> dict:
    steps = clock.steps
    if len(steps) != spec["run_steps"]:
        raise RuntimeError(f"{impl} {dtype}: {len(steps)} step callbacks for {spec['run_steps']} steps")
    median = statistics.median(steps[1:] or steps)  # the first step includes one-time set-up
    clip = sum(steps) + median * (spec["steps"] - len(steps))
    # CPU time of this process per step: steadier than wall time on a shared CPU (not meaningful on a GPU)
    cpu_steps = [b - a for a, b in zip(clock.cpu, clock.cpu[1:])]
    return {
        "cpu_step_s": statistics.median(cpu_steps[1:] or cpu_steps),
        "impl": impl, "dtype": dtype, "steps_run": len(steps), "step_s": median, "first_step_s": steps[0],
        "clip_s": clip, "extrapolated": len(steps) < spec["steps"], "weights_gb": weights_gb,
        "peak_gb": _peak_memory_gb(spec["device"]), "note": note,
    }


def _inputs(spec: dict, dtype, cross_attention_dim: int):
    """Random first-frame latent, x_T, prompt and negative-prompt embeddings (seeded)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    h, w = spec["height"] // 8, spec["width"] // 8
    shape = (1, 4, spec["frames"] - 1, h, w)
    latents = torch.randn(shape, generator=generator)
    base = torch.randn(1, 4, 1, h, w, generator=generator)
    context = torch.randn(1, 77, cross_attention_dim, generator=generator)
    negative = torch.randn(1, 77, cross_attention_dim, generator=generator)
    device = spec["device"]
    return tuple(t.to(device=device, dtype=dtype) for t in (latents, base, context, negative))


def _emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- workers

def _official_compatibility_shims() -> None:
    """Names the official code imports that newer libraries dropped (nothing else is changed).

    transformers 5 removed ``CLIPFeatureExtractor`` (an alias of ``CLIPImageProcessor`` since 4.27); the
    official pipeline only imports it for a type hint.
    """
    import transformers

    if not hasattr(transformers, "CLIPFeatureExtractor"):
        processor = transformers.CLIPImageProcessor
        # transformers' lazy module may replace itself in sys.modules on first use: set it where imports look
        sys.modules["transformers"].CLIPFeatureExtractor = processor


def run_official(spec: dict) -> None:
    """The official pipeline (its own UNet, DDIMScheduler and denoising loop) with random weights."""
    import torch

    _official_compatibility_shims()
    sys.path[:0] = [spec["official"], str(Path(spec["official"]) / "pipelines")]
    from diffusers import AutoencoderKL, DDIMScheduler
    from models.unet import UNet3DConditionModel
    from pipeline_videogen import VideoGenPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    device = spec["device"]
    config = json.loads(Path(spec["unet_config"]).read_text())
    for name in spec["dtypes"]:
        dtype = _torch_dtype(name)
        _reset_memory(device)
        with torch.device(device):
            unet = UNet3DConditionModel.from_config(config).to(dtype).eval()
        weights_gb = _weights_gb(unet)
        scheduler = DDIMScheduler.from_pretrained(
            spec["scheduler_dir"], subfolder="scheduler", beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
        )
        # only the UNet loop is measured: a small VAE (for the 8x scale factor) and text encoder (for its dtype)
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(8, 8, 8, 8), norm_num_groups=8)
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                    num_attention_heads=1))
        pipeline = VideoGenPipeline(vae=vae, text_encoder=text_encoder, tokenizer=None, unet=unet,
                                    scheduler=scheduler).to(device=device, dtype=dtype)
        latents, base, context, negative = _inputs(spec, dtype, config["cross_attention_dim"])
        clock = StepClock(device)
        clock.start()
        pipeline(
            prompt_embeds=context, negative_prompt_embeds=negative, latents=latents, base_content=base,
            video_length=spec["frames"] - 1, height=spec["height"], width=spec["width"],
            num_inference_steps=spec["run_steps"], guidance_scale=spec["cfg"], motion_bucket_id=90,
            output_type="latents", callback=clock.step, callback_steps=1,
        )
        _emit(_result(spec, "official", name, clock, weights_gb))
        del pipeline, unet


def _random_unet(config, dtype, device: str):
    sys.path.insert(0, str(HERE))
    from unet_forward import random_unet

    return random_unet(config, dtype, device)


def run_standalone(spec: dict) -> None:
    """This package's UNet and DDIM loop."""
    import torch

    from cinemo_core.model.config import CinemoUNetConfig
    from cinemo_core.sampling.sampler import sample_residual

    device = spec["device"]
    config = CinemoUNetConfig.from_diffusers_config(json.loads(Path(spec["unet_config"]).read_text()))
    for name in spec["dtypes"]:
        dtype = _torch_dtype(name)
        _reset_memory(device)
        unet = _random_unet(config, dtype, device)
        weights_gb = _weights_gb(unet)
        latents, base, context, negative = _inputs(spec, dtype, config.cross_attention_dim)
        clock = StepClock(device)
        with torch.inference_mode():
            clock.start()
            sample_residual(unet, latents, base, context, negative, 90.0, steps=spec["run_steps"],
                            guidance_scale=spec["cfg"], callback=clock.step)
        _emit(_result(spec, "standalone", name, clock, weights_gb))
        del unet


def run_comfyui(spec: dict) -> None:
    """Cinemo Model Loader (weight_dtype) + Cinemo Sampler (DDIM, official schedule, DCTInit) in ComfyUI."""
    sys.path.insert(0, str(HERE))
    from comfy_harness import boot

    device = spec["device"]
    comfyui = boot(["--cpu"] if device == "cpu" else ["--use-pytorch-cross-attention"])
    import torch
    from comfy_harness import call_node
    from safetensors.torch import save_file

    import comfy.model_management
    import comfy.utils

    from cinemo_core.model.config import CinemoUNetConfig

    config = CinemoUNetConfig.from_diffusers_config(json.loads(Path(spec["unet_config"]).read_text()))
    unet = _random_unet(config, torch.float16, device)
    weights_file = comfyui.models / "cinemo" / "random_official.safetensors"
    save_file({k: v.detach().clone().contiguous().cpu() for k, v in unet.state_dict().items()}, str(weights_file))
    del unet
    import folder_paths

    folder_paths.filename_list_cache.clear()
    for name in spec["dtypes"]:
        comfy.model_management.unload_all_models()
        _reset_memory(device)
        (model,) = call_node("CinemoModelLoader", model_name=weights_file.name, weight_dtype=name)
        comfy.model_management.load_models_gpu([model])
        weights_gb = _weights_gb(model.model.diffusion_model)
        latents, base, context, negative = _inputs(spec, torch.float32, config.cross_attention_dim)
        first_frame = {"samples": base[:, :, 0].cpu() / 0.18215}
        positive, negative_cond, latent = call_node(
            "CinemoConditioning", positive=[[context.cpu(), {}]], negative=[[negative.cpu(), {}]],
            first_frame=first_frame, intensity=9, frames=spec["frames"], raw_motion_id=-1.0,
        )
        clock = StepClock(device)
        comfy.utils.set_progress_bar_global_hook(lambda value, total, *rest, **kw: clock.step())
        try:
            clock.start()
            call_node("CinemoSampler", model=model, positive=positive, negative=negative_cond, latent_image=latent,
                      first_frame=first_frame, seed=0, steps=spec["run_steps"], cfg=spec["cfg"], sampler_name="ddim",
                      scheduler="cinemo_ddim", dct_init=True, low_pass=0.23, noise_timestep=975)
        finally:
            comfy.utils.set_progress_bar_global_hook(None)
        cast = model.model.manual_cast_dtype
        note = f"computes in {str(cast).replace('torch.', '')}" if cast is not None else ""
        _emit(_result(spec, "comfyui", name, clock, weights_gb, note))
        del model


WORKERS: dict[str, Callable[[dict], None]] = {
    "official": run_official, "standalone": run_standalone, "comfyui": run_comfyui,
}


# ----------------------------------------------------------------------------- the command

def check_official(folder: str | None) -> str | None:
    """The official checkout's folder, checked (None when not given)."""
    if folder is None:
        return None
    root = Path(folder).expanduser().resolve()
    if root == REPO or REPO in root.parents:
        raise SystemExit(f"--official {folder}: keep the official code outside this project (it must not be committed).")
    missing = [name for name in OFFICIAL_FILES if not (root / name).is_file()]
    if missing:
        raise SystemExit(f"--official {folder}: not a maxin-cn/Cinemo checkout ({', '.join(missing)} missing). "
                         "Fetch https://github.com/maxin-cn/Cinemo into a folder outside this project.")
    return str(root)


def build_spec(args: argparse.Namespace, scratch: Path) -> dict:
    from cinemo_core.model.config import CinemoUNetConfig

    config = CinemoUNetConfig.tiny() if args.dry_run else CinemoUNetConfig.official()
    unet_config = scratch / "unet_config.json"
    # the official pipeline compares sample_size with 64 when it is built; 64 is SD-1.x's (only a default size)
    unet_config.write_text(json.dumps({**config.to_diffusers_config(), "sample_size": 64}))
    scheduler_dir = scratch / "scheduler_root"
    (scheduler_dir / "scheduler").mkdir(parents=True)
    (scheduler_dir / "scheduler" / "scheduler_config.json").write_text(SCHEDULER_CONFIG.read_text())
    width, height = (64, 64) if args.dry_run else args.size
    return {
        "device": args.device, "frames": 3 if args.dry_run else args.frames, "threads": args.threads,
        "width": width, "height": height, "steps": 2 if args.dry_run else args.steps, "cfg": args.cfg,
        "official_steps": 2 if args.dry_run else args.official_steps,
        "our_steps": 2 if args.dry_run else (args.run_steps or args.steps), "unet_config": str(unet_config),
        "scheduler_dir": str(scheduler_dir), "official": args.official,
    }


def run_worker(impl: str, dtype: str, spec: dict, python: str, timeout: float) -> tuple[list[dict], str | None]:
    """Run one implementation and dtype in its own process (its own peak memory); returns results and an error."""
    spec = {**spec, "dtypes": [dtype], "run_steps": spec["official_steps"] if impl == "official" else spec["our_steps"]}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [python, str(Path(__file__).resolve()), "--worker", impl, "--spec", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        done = subprocess.CompletedProcess(command, -1, expired.stdout or "", f"timed out after {timeout:.0f} s")
    results = [json.loads(line[len(RESULT_PREFIX):]) for line in (done.stdout or "").splitlines()
               if line.startswith(RESULT_PREFIX)]
    error = None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
        error = lines[-1] if lines else f"exit status {done.returncode}"
    return results, error


def _gb(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: list[dict], errors: dict[str, str], spec: dict) -> str:
    official = {r["dtype"]: r for r in results if r["impl"] == "official"}
    lines = [
        f"| implementation | weights | s / step | {spec['steps']}-step loop, s | vs official | weights GiB | "
        f"peak GiB ({'GPU allocated' if spec['device'] == 'cuda' else 'process RSS'}) | note |"
        + (" CPU s / step |" if spec["device"] == "cpu" else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if spec["device"] == "cpu" else ""),
    ]
    for r in results:
        reference = official.get(r["dtype"])
        ratio = f"{reference['clip_s'] / r['clip_s']:.2f}x" if reference and r["impl"] != "official" else "-"
        star = "*" if r["extrapolated"] else ""
        lines.append(f"| {r['impl']} | {r['dtype']} | {r['step_s']:.3f} | {r['clip_s']:.1f}{star} | {ratio} | "
                     f"{_gb(r['weights_gb'])} | {_gb(r['peak_gb'])} | {r['note']} |"
                     + (f" {r['cpu_step_s']:.3f} |" if spec["device"] == "cpu" else ""))
    for where, error in errors.items():
        impl, _, dtype = where.partition(" ")
        lines.append(f"| {impl} | {dtype or '-'} | - | - | - | - | - | not run: {error} |")
    lines.append(f"\n`vs official`: the official loop's time / this one's (same weights dtype). `*`: only "
                 f"{spec['official_steps']} (official) / {spec['our_steps']} (this package) steps measured, the rest "
                 "extrapolated from the median step.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", metavar="DIR", help="a maxin-cn/Cinemo checkout outside this project")
    parser.add_argument("--official-python", metavar="PYTHON", default=sys.executable,
                        help="the Python to run the official code with (default: this one)")
    parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--official-steps", type=int, default=10, help="steps the official code runs (extrapolated)")
    parser.add_argument("--run-steps", type=int, default=None,
                        help="steps this package runs (default: all of --steps; fewer are extrapolated, for CPU runs)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=lambda text: tuple(int(v) for v in text.split("x")), default=(512, 320),
                        metavar="WxH")
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same comparison on the CPU at a size you choose (e.g. --size 128x64)")
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "fp16", "bf16", "fp8_e4m3fn"),
                        help="weight dtypes to run (default: fp16 and bf16, and fp8_e4m3fn in ComfyUI)")
    parser.add_argument("--threads", type=int, help="torch threads in every implementation (CPU runs)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per implementation")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same code on the CPU: tiny model, 3 frames at 64x64, 2 steps")
    parser.add_argument("--json-out", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # cinemo_core from this checkout when it is not installed

    if args.worker:
        spec = json.loads(args.spec)
        if spec.get("threads"):
            import torch

            torch.set_num_threads(spec["threads"])
        WORKERS[args.worker](spec)
        return 0

    import torch

    if args.dry_run:
        args.device = "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; use --dry-run to run the same code on the CPU.", file=sys.stderr)
        return 2
    args.official = check_official(args.official)
    impls = [impl for impl in IMPLEMENTATIONS if impl in args.only]
    errors: dict[str, str] = {}
    if "official" in impls and not args.official:
        impls.remove("official")
        errors["official"] = "no --official DIR given"
    if "comfyui" in impls and not os.environ.get("COMFYUI_PATH"):
        impls.remove("comfyui")
        errors["comfyui"] = "COMFYUI_PATH is not set"

    results: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cinemo-gpu-bench-") as scratch:
        spec = build_spec(args, Path(scratch))
        for impl in impls:
            python = args.official_python if impl == "official" else sys.executable
            for dtype in args.dtypes or DTYPES[impl]:
                if dtype not in DTYPES[impl] and dtype != "fp32":
                    errors[f"{impl} {dtype}"] = f"{impl} has no {dtype} weights"
                    continue
                found, error = run_worker(impl, dtype, spec, python, args.timeout)
                results.extend(found)
                if error:
                    errors[f"{impl} {dtype}"] = error
                    failed.append(impl)

    if args.device == "cuda":
        device = torch.cuda.get_device_name()
    else:
        from cinemo_core.model.devices import native_cpu_bf16, probe_cpu_features

        threads = args.threads or torch.get_num_threads()
        device = (f"CPU {platform.machine()} {torch.backends.cpu.get_cpu_capability()}, {threads} threads "
                  f"({native_cpu_bf16(probe_cpu_features())[1]})")
    kind = "DRY RUN (tiny model, CPU)" if args.dry_run else "official config, random weights"
    print(f"{datetime.date.today()}, {device}, torch {torch.__version__}, {kind}: {spec['frames']} frames at "
          f"{spec['width']}x{spec['height']}, {spec['steps']} DDIM steps, CFG {spec['cfg']:g}")
    print(format_table(results, errors, spec))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"spec": spec, "device": device, "results": results,
                                                   "errors": errors}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
