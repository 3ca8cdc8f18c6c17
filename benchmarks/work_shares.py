"""What share of a guided forward each exact saving of issue 19 (part 3) could remove (not a test).

Times, inside one forward of the full-size UNet on random weights (cond and uncond batched, as CFG runs it):

* the work before the first cross-attention (``conv_in``, the first ResNet, the first transformer's norm,
  ``proj_in`` and self-attention): its inputs are the same for the positive and the negative pass, so one of
  the two could be skipped;
* per-forward constants: the text keys and values of every cross-attention (the same over all steps), the
  relative-position bias and the rotary tables of every temporal attention;
* the non-finite check every UNet call ends with (``cinemo_core.finite.check_model_output``).

Module times come from forward hooks (the CPU runs one operator at a time, so they add up); the best of
``--repeats`` forwards is kept for each.

    python benchmarks/work_shares.py --latent 20 32 --dtype bf16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unet_forward import DTYPES, cpu_name, random_unet  # noqa: E402

from cinemo_core import CinemoUNetConfig  # noqa: E402
from cinemo_core.finite import check_model_output  # noqa: E402


def shared_prefix(unet) -> list[torch.nn.Module]:
    """The modules before the first cross-attention, whose inputs are the same for cond and uncond."""
    block = unet.down_blocks[0]
    transformer = block.attentions[0]
    first = transformer.transformer_blocks[0]
    return [unet.conv_in, unet.time_embedding, unet.add_embedding, block.resnets[0], transformer.norm,
            transformer.proj_in, first.norm1, first.attn1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent", type=int, nargs=2, default=(20, 32), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--dtype", choices=DTYPES, default="bf16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    height, width = args.latent
    unet = random_unet(CinemoUNetConfig.official(), dtype, "cpu")
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, args.frames - 1, height, width, generator=generator).to(dtype)
    base = torch.randn(2, 4, 1, height, width, generator=generator).to(dtype)
    context = torch.randn(2, 77, 768, generator=generator).to(dtype)

    groups: dict[str, list[torch.nn.Module]] = {"before the first cross-attention": shared_prefix(unet)}
    groups["text keys and values (cross-attention to_k, to_v)"] = [
        m for name, m in unet.named_modules() if name.endswith(("attn2.to_k", "attn2.to_v"))
    ]
    groups["relative-position bias (temporal attention)"] = [
        m for name, m in unet.named_modules() if name.endswith("time_rel_pos_bias")
    ]
    rotary = [m for name, m in unet.named_modules() if name.endswith("rotary_emb")]
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}

    def timed(group: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda m, a: started.__setitem__(id(m), time.perf_counter()))
        module.register_forward_hook(
            lambda m, a, o: spent.__setitem__(group, spent[group] + time.perf_counter() - started[id(m)])
        )

    for group, modules in groups.items():
        for module in modules:
            timed(group, module)
    tables = "rotary tables (cos, sin, pair index)"
    for module in rotary:
        original = module.tables

        def counted(*a, original=original):
            start = time.perf_counter()
            out = original(*a)
            spent[tables] += time.perf_counter() - start
            return out

        module.tables = counted

    best: dict[str, float] = {}
    check_seconds = []
    with torch.inference_mode():
        unet(x, 981, context, base_content=base, motion_ids=90.0)
        for _ in range(args.repeats):
            spent.clear()
            start = time.perf_counter()
            eps = unet(x, 981, context, base_content=base, motion_ids=90.0)
            spent["whole forward"] = time.perf_counter() - start
            start = time.perf_counter()
            check_model_output(eps, x=x, context=context, base_content=base)
            check_seconds.append(time.perf_counter() - start)
            for key, value in spent.items():
                best[key] = min(best.get(key, float("inf")), value)
    whole = best.pop("whole forward")
    best["non-finite check of the output (after the forward)"] = min(check_seconds)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, load {os.getloadavg()}")
    print(f"case: official config, cond + uncond batched (batch 2), {args.frames} frames at latent {height}x{width}, "
          f"{args.dtype}; whole forward {whole:.3f} s (best of {args.repeats})")
    for key, value in best.items():
        print(f"{key:<56} {value * 1e3:>9.2f} ms {value / whole:>8.3%}")
    shared = best["before the first cross-attention"]
    print(f"one pass of the shared work skipped: {shared / 2 / whole:.2%} of the forward")


if __name__ == "__main__":
    main()
