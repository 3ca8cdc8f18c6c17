"""Cinemagraphs: how far decoded still pixels are from still, without and with Cinemo Keep Still (not a test).

In an in-process ComfyUI (``--cpu``): a picture (a smooth 256x128 gradient) is encoded by Cinemo First Frame
Encode at 128x64, animated by Cinemo Sampler on the golden tiny UNet with Cinemo Conditioning's ``motion_mask``
(left half moves, right half still), turned into frames by Cinemo Residual To Frames and decoded twice: by core
VAE Decode with the stand-in SD VAE and by Cinemo Temporal VAE Decode with the stand-in temporal VAE (both
random-weight models of the real architectures, with the configurations and seeds of the test suite's stand-ins
in ``tests/comfy_models.py``, written here so that no test requirement is needed). Encoding uses the same VAE as decoding, as the shipped workflows do.

In the still pixels (the fitted mask is 0 there) it prints, over all frames, max and mean of
``|pixel - picture pixel|`` (the picture fitted as First Frame Encode fits it: what Keep Still puts back) and,
over frames 1.., of ``|pixel - the same pixel of decoded frame 0|`` (what shows as shimmer), then the same after
Cinemo Keep Still (0 by construction; the script checks it). Random VAE weights: the sizes say what the decoder's
receptive field and round trip do to cells whose residual is exactly 0, not how the real VAE looks.

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/cinemagraph_pixels.py [--frames 16 --steps 10]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="video frames (the first included)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--feather", type=int, default=8, help="Cinemo Keep Still's soft edge")
    args = parser.parse_args()

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    from comfy_harness import TINY_A, add_golden_model, boot, call_node

    comfyui = boot(["--cpu"])
    golden_name = add_golden_model(comfyui)
    import torch
    from safetensors.torch import load_file

    import folder_paths

    vae_folder = comfyui.models / "vae"
    vae_folder.mkdir(exist_ok=True)
    folder_paths.add_model_folder_path("vae", str(vae_folder), is_default=True)
    _write_stand_in_vaes(vae_folder)
    folder_paths.filename_list_cache.clear()
    golden = load_file(str(TINY_A / "case.safetensors"))
    (model,) = call_node("CinemoModelLoader", model_name=golden_name, weight_dtype="fp32")
    (sd_vae,) = call_node("VAELoader", vae_name=VAE_NAME)
    (temporal_vae,) = call_node("CinemoTemporalVAELoader", vae_name=TEMPORAL_VAE_NAME)
    decoders = {
        "core VAE Decode (SD VAE)": (sd_vae, lambda frames: call_node("VAEDecode", vae=sd_vae, samples=frames)[0]),
        "Cinemo Temporal VAE Decode": (temporal_vae, lambda frames: call_node(
            "CinemoTemporalVAEDecode", vae=temporal_vae, samples=frames, frames_per_clip=16, chunk_size=14)[0]),
    }

    y, x = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 256), indexing="ij")
    picture = torch.stack([x, y, (x + y) / 2], dim=-1)[None]  # [1, 128, 256, 3]
    mask = torch.zeros(1, 64, 128)
    mask[:, :, :64] = 1.0  # the left half moves
    still_mask = _fitted_mask(mask)

    print(f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, golden tiny UNet, "
          f"{args.frames} frames, {args.steps} steps, 128x64, mask: left half moves")
    print("| decoder | still pixels vs the picture, max / mean | vs decoded frame 0, max / mean | "
          "after Cinemo Keep Still |")
    print("|---|---|---|---|")
    for label, (vae, decode) in decoders.items():
        (first_frame,) = call_node("CinemoFirstFrameEncode", image=picture, vae=vae, width=128, height=64)
        positive, negative, latent = call_node(
            "CinemoConditioning", positive=[[golden["encoder_hidden_states"], {}]],
            negative=[[golden["negative_encoder_hidden_states"], {}]], first_frame=first_frame, intensity=0,
            frames=args.frames, raw_motion_id=float(golden["motion_bucket_id"].item()), motion_mask=mask,
        )
        (residual,) = call_node("CinemoSampler", model=model, positive=positive, negative=negative,
                                latent_image=latent, first_frame=first_frame, seed=3, steps=args.steps, cfg=7.5,
                                sampler_name="ddim", scheduler="cinemo_ddim", dct_init=True, low_pass=0.23,
                                noise_timestep=975)
        (frames,) = call_node("CinemoResidualToFrames", residual=residual, first_frame=first_frame)
        with torch.inference_mode():
            decoded = decode(frames).float()
            (kept,) = call_node("CinemoKeepStill", images=decoded, picture=picture, motion_mask=mask,
                                invert_mask=False, feather=args.feather)
        reference = _fitted_picture(picture)
        figures = []
        for images in (decoded, kept):
            still = images[:, still_mask]  # [frames, pixels, 3]
            to_picture = (still - reference[still_mask]).abs()
            to_first = (still[1:] - still[:1]).abs()
            figures.append((to_picture.max().item(), to_picture.mean().item(), to_first.max().item(),
                            to_first.mean().item()))
        assert figures[1] == (0.0, 0.0, 0.0, 0.0), figures[1]
        a = figures[0]
        print(f"| {label} | {a[0]:.3f} / {a[1]:.4f} | {a[2]:.3f} / {a[3]:.4f} | 0 / 0 (bit-identical) |")


VAE_NAME = "sd_vae_random.safetensors"
TEMPORAL_VAE_NAME = "temporal_vae_random"


def _write_stand_in_vaes(folder: Path) -> None:
    """A random SD-1.x AutoencoderKL (one file) and an SVD-sized temporal VAE (diffusers folder), fp16."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from safetensors.torch import save_file

    torch.manual_seed(2)
    sd_vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
        latent_channels=4, norm_num_groups=32, sample_size=512,
    )
    save_file({key: value.half().contiguous() for key, value in sd_vae.state_dict().items()}, str(folder / VAE_NAME))
    torch.manual_seed(5)
    temporal = AutoencoderKLTemporalDecoder(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=2, latent_channels=4,
    )
    temporal.half().save_pretrained(folder / TEMPORAL_VAE_NAME, safe_serialization=True)


def _fitted_mask(mask):
    from cinemo_core.sampling.still import fit_mask

    return fit_mask(mask, 128, 64)[0] == 0


def _fitted_picture(picture):
    import warnings

    from cinemo_core.preprocess import fit_image

    warnings.simplefilter("ignore")  # the off-size note
    return ((fit_image(picture, 128, 64) + 1) / 2).clamp(0, 1).movedim(1, -1)[0]


if __name__ == "__main__":
    main()
