"""Which dtype the Cinemo MODEL computes in on the CPU, per weight_dtype and ComfyUI switch (not a test).

For every ``weight_dtype`` of Cinemo Model Loader, plain and followed by core **ModelComputeDtype**
(bf16), it loads the golden tiny model, runs the golden forward through ComfyUI's ``apply_model`` and
prints the stored weight dtype, ComfyUI's manual-cast dtype, the dtype the first convolution really
receives (a forward hook; ComfyUI's cast-on-the-fly layers cast the weights to it) and the relative
error against the official fp32 output. Each ComfyUI command line runs in its own process, since
ComfyUI reads its switches once.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/comfy_compute_dtype.py
    COMFYUI_PATH=... python benchmarks/comfy_compute_dtype.py --switches="--cpu --bf16-unet"   # one command line
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

SWITCH_SETS = ("--cpu", "--cpu --bf16-unet", "--cpu --fp16-unet", "--cpu --fp32-unet", "--cpu --force-fp16",
               "--cpu --force-fp32")
WEIGHT_DTYPES = ("default", "fp32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2")
COMPUTE_PATCHES = (None, "bf16")


def short(dtype) -> str:
    return "-" if dtype is None else str(dtype).replace("torch.", "")


def measure(switches: str) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from comfy_harness import add_golden_model, boot

    comfyui = boot(shlex.split(switches))
    golden_name = add_golden_model(comfyui)
    import torch
    from comfy_harness import TINY_A, call_node, relative_error
    from safetensors.torch import load_file

    import comfy.model_management

    golden = load_file(TINY_A / "case.safetensors")
    rows = []
    for weight_dtype in WEIGHT_DTYPES:
        for patch in COMPUTE_PATCHES:
            (patcher,) = call_node("CinemoModelLoader", model_name=golden_name, weight_dtype=weight_dtype)
            if patch is not None:
                (patcher,) = call_node("ModelComputeDtype", model=patcher, dtype=patch)
            comfy.model_management.load_models_gpu([patcher])
            model = patcher.model
            seen = []
            hook = model.diffusion_model.conv_in.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
            sigma = model.model_sampling.sigmas[int(golden["timestep"])].reshape(1)
            x = golden["sample"] * (1 + sigma**2).sqrt()
            with torch.inference_mode():
                denoised = model.apply_model(x, sigma, c_crossattn=golden["encoder_hidden_states"],
                                             base_content=golden["base_content"], motion_ids=golden["motion_bucket_id"])
            hook.remove()
            eps = (x - denoised) / sigma
            rows.append({
                "switches": switches,
                "weight_dtype": weight_dtype,
                "ModelComputeDtype": patch or "-",
                "stored": short(model.diffusion_model.conv_in.weight.dtype),
                "manual_cast": short(model.manual_cast_dtype),
                "computes_in": short(seen[0]),
                "error_vs_fp32_golden": relative_error(eps.float(), golden["out"]),
            })
            comfy.model_management.unload_all_models()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", help="one ComfyUI command line to measure (default: each of SWITCH_SETS)")
    parser.add_argument("--json", action="store_true", help="print JSON rows (used between processes)")
    args = parser.parse_args()
    if args.switches is not None:
        rows = measure(args.switches)
        if args.json:
            print("ROWS " + json.dumps(rows))
            return
    else:
        rows = []
        for switches in SWITCH_SETS:
            done = subprocess.run([sys.executable, __file__, f"--switches={switches}", "--json"], capture_output=True,
                                  text=True, check=True)
            line = [text for text in done.stdout.splitlines() if text.startswith("ROWS ")][-1]
            rows.extend(json.loads(line[5:]))
    import torch

    print(f"ComfyUI at {os.environ.get('COMFYUI_PATH')}, torch {torch.__version__}, {platform.machine()} "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print("| ComfyUI switches | weight_dtype | + ModelComputeDtype | stored | manual cast | computes in | error vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| `{row['switches']}` | {row['weight_dtype']} | {row['ModelComputeDtype']} | {row['stored']} | "
              f"{row['manual_cast']} | {row['computes_in']} | {row['error_vs_fp32_golden']:.1e} |")


if __name__ == "__main__":
    main()
