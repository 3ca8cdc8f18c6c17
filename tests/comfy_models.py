"""Stand-in model files in the real formats, generated at test time, for the ComfyUI node tests.

Laid out under the booted ComfyUI's temporary ``models/`` folder:

* ``cinemo/tiny_a/unet/``: the golden tiny Cinemo UNet (diffusers folder, cross-attention width 32);
* ``cinemo/tiny_clip_l.safetensors``: a tiny random Cinemo UNet with cross-attention width 768 (CLIP-L),
  for graphs that encode text with a real CLIP-L text encoder;
* ``text_encoders/clip_l_random.safetensors``: a random CLIP ViT-L/14 text encoder (Hugging Face
  ``CLIPTextModel`` keys, fp16) that ``CLIPLoader`` (type ``stable_diffusion``) loads, and the same without
  the ``text_model.`` key prefix (as transformers 5 re-saves it), which loads with missing weights;
* ``vae/sd_vae_random.safetensors``: a random SD-1.x ``AutoencoderKL`` (diffusers keys, fp16);
* ``diffusion_models/sd15_stand_in.safetensors``: a small random UNet that ComfyUI detects as SD 1.5;
* wrong files in ``cinemo/`` for the loader's error messages: an SD checkpoint (original LDM layout), an
  SD VAE and an AnimateDiff motion module (their key layouts, with small tensors);
* ``diffusers/cinemo_golden`` (a Cinemo folder) and ``diffusers/not_cinemo`` (an SD UNet folder);
* ``vae/workflow_test_temporal_vae``: a random SVD-sized temporal VAE (diffusers folder, fp16);
* ``input/cinemo_test.png``: a small test image; ``input/workflow_test_reference.mp4``: a moving 6-frame clip.

Everything is random: the tests check plumbing and numerics against the golden data, not image quality.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_case import TINY_A
from PIL import Image
from safetensors.torch import save_file

GOLDEN_NAME = "tiny_a"
CLIP_CINEMO_NAME = "tiny_clip_l.safetensors"
CLIP_L_NAME = "clip_l_random.safetensors"
#: The same encoder re-saved without the ``text_model.`` key prefix (as transformers 5 saves it).
CLIP_L_NO_PREFIX_NAME = "clip_l_no_text_model_prefix.safetensors"
VAE_NAME = "sd_vae_random.safetensors"
SD15_UNET_NAME = "sd15_stand_in.safetensors"
TEMPORAL_VAE_NAME = "workflow_test_temporal_vae"
IMAGE_NAME = "cinemo_test.png"
REFERENCE_VIDEO_NAME = "workflow_test_reference.mp4"
WRONG_FILES = {
    "sd15_checkpoint.safetensors": "a Stable Diffusion checkpoint in the original (LDM) format",
    "sd_vae.safetensors": "a VAE",
    "animatediff_motion_module.safetensors": "an AnimateDiff motion module",
}


@dataclass(frozen=True)
class ComfyModels:
    """Names of the generated files, as ComfyUI's loaders list them."""

    golden: str = GOLDEN_NAME
    clip_cinemo: str = CLIP_CINEMO_NAME
    clip_l: str = CLIP_L_NAME
    clip_l_no_prefix: str = CLIP_L_NO_PREFIX_NAME
    vae: str = VAE_NAME
    sd15_unet: str = SD15_UNET_NAME
    image: str = IMAGE_NAME


def _save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: (v.to(dtype) if dtype and v.is_floating_point() else v).contiguous().clone() for k, v in tensors.items()},
              str(path))


def write_golden_cinemo(models: Path) -> None:
    shutil.copytree(TINY_A / "unet", models / "cinemo" / GOLDEN_NAME / "unet")
    shutil.copytree(TINY_A / "unet", models / "diffusers" / "cinemo_golden" / "unet")


def write_clip_cinemo(models: Path) -> None:
    from cinemo_core import CinemoUNet3D, CinemoUNetConfig

    torch.manual_seed(0)
    unet = CinemoUNet3D(CinemoUNetConfig.tiny().replace(cross_attention_dim=768))  # torch's default random init
    _save(unet.state_dict(), models / "cinemo" / CLIP_CINEMO_NAME, torch.float16)


def write_clip_l(models: Path) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
    )
    torch.manual_seed(1)
    state = CLIPTextModel(config).state_dict()
    state = {(k if k.startswith("text_model.") else f"text_model.{k}"): v for k, v in state.items()}
    state.pop("text_model.embeddings.position_ids", None)
    _save(state, models / "text_encoders" / CLIP_L_NAME, torch.float16)
    _save({key.removeprefix("text_model."): value for key, value in state.items()},
          models / "text_encoders" / CLIP_L_NO_PREFIX_NAME, torch.float16)


def write_sd_vae(models: Path) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(2)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
        latent_channels=4, norm_num_groups=32, sample_size=512,
    )
    path = models / "vae" / VAE_NAME
    _save(vae.state_dict(), path, torch.float16)
    return path


def write_sd15_unet(models: Path) -> None:
    """A one-level UNet with SD 1.5's detection keys (320 channels, CLIP-L context): ComfyUI loads it as SD15."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    torch.manual_seed(3)
    unet = UNetModel(
        image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
        transformer_depth=[1], transformer_depth_output=[1, 1], transformer_depth_middle=1,
        num_heads=8, context_dim=768, use_linear_in_transformer=False, use_spatial_transformer=True,
    )
    with torch.no_grad():  # comfy.ops layers skip initialisation
        for parameter in unet.parameters():
            parameter.normal_(0.0, 0.02)
    _save(unet.state_dict(), models / "diffusion_models" / SD15_UNET_NAME, torch.float16)


def write_wrong_files(models: Path, sd_vae: Path) -> None:
    small = torch.zeros(4, 4)  # cloned per key: safetensors refuses shared storage
    _save({
        "model.diffusion_model.input_blocks.0.0.weight": small,
        "model.diffusion_model.out.2.weight": small,
        "first_stage_model.decoder.conv_in.weight": small,
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": small,
    }, models / "cinemo" / "sd15_checkpoint.safetensors")
    shutil.copy(sd_vae, models / "cinemo" / "sd_vae.safetensors")
    _save({
        f"down_blocks.{i}.motion_modules.{j}.temporal_transformer.{part}": small
        for i in range(4) for j in range(2) for part in ("norm.weight", "proj_in.weight", "proj_out.weight")
    }, models / "cinemo" / "animatediff_motion_module.safetensors")
    not_cinemo = models / "diffusers" / "not_cinemo" / "unet"
    not_cinemo.mkdir(parents=True)
    (not_cinemo / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768}))
    _save({"conv_in.weight": small}, not_cinemo / "diffusion_pytorch_model.safetensors")


def write_image(input_dir: Path) -> None:
    y, x = np.mgrid[0:48, 0:80]
    rgb = np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(input_dir / IMAGE_NAME)


def write_temporal_vae(models: Path) -> None:
    from diffusers import AutoencoderKLTemporalDecoder

    folder = models / "vae" / TEMPORAL_VAE_NAME
    if folder.exists():
        return
    torch.manual_seed(5)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=2, latent_channels=4,
    )
    vae.half().save_pretrained(folder, safe_serialization=True)


def write_reference_clip(input_dir: Path) -> None:
    import av

    with av.open(str(input_dir / REFERENCE_VIDEO_NAME), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        y, x = np.mgrid[0:48, 0:64]
        for t in range(6):
            rgb = np.stack([(x * 4 + t * 20) % 256, y * 5, (x + y + t * 9) % 256], axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def lay_out_models(models: Path, input_dir: Path) -> ComfyModels:
    """Write every stand-in once per ComfyUI session (later calls reuse them)."""
    marker = models / ".cinemo_stand_ins"
    if not marker.exists():
        for folder in ("diffusion_models", "diffusers", "text_encoders", "vae", "cinemo"):
            (models / folder).mkdir(parents=True, exist_ok=True)
        write_golden_cinemo(models)
        write_clip_cinemo(models)
        write_clip_l(models)
        vae = write_sd_vae(models)
        write_sd15_unet(models)
        write_wrong_files(models, vae)
        write_image(input_dir)
        marker.touch()
        import folder_paths

        folder_paths.filename_list_cache.clear()
    return ComfyModels()


@pytest.fixture(scope="session")
def comfy_models(comfyui) -> ComfyModels:
    """The stand-in models, laid out in the session's ComfyUI."""
    return lay_out_models(comfyui.models, comfyui.input)


def stand_in_files(models: ComfyModels) -> dict[tuple[str, str], str]:
    """{(node type, input): stand-in file name} for every file a shipped workflow names."""
    return {
        ("CinemoModelLoader", "model_name"): models.clip_cinemo,
        ("CLIPLoader", "clip_name"): models.clip_l,
        ("VAELoader", "vae_name"): models.vae,
        ("CinemoTemporalVAELoader", "vae_name"): TEMPORAL_VAE_NAME,
        ("LoadImage", "image"): models.image,
        ("LoadVideo", "file"): REFERENCE_VIDEO_NAME,
    }


@pytest.fixture(scope="session")
def workflow_inputs(comfyui, comfy_models) -> dict[tuple[str, str], str]:
    """The temporal VAE and the reference clip besides the session's stand-ins; the files a workflow names."""
    write_temporal_vae(comfyui.models)
    write_reference_clip(comfyui.input)
    import folder_paths

    folder_paths.filename_list_cache.clear()
    return stand_in_files(comfy_models)


def call_node(class_type: str, **inputs):
    """Run one node's function in the booted ComfyUI (V3 or V1) and return its outputs as a tuple.

    For inputs no node can produce from a prompt (the golden case's 32-wide text embeddings); graphs go
    through ``comfyui.run``.
    """
    import nodes

    node_class = nodes.NODE_CLASS_MAPPINGS[class_type]
    if hasattr(node_class, "define_schema"):
        result = node_class.execute(**inputs)
        return tuple(getattr(result, "args", result))  # a few V3 nodes (HyperTile) return a plain tuple
    return tuple(getattr(node_class(), node_class.FUNCTION)(**inputs))


def golden_conditioning(golden: dict[str, torch.Tensor], frames: int = 8, model=None):
    """The golden case as Cinemo Conditioning outputs: (positive, negative, residual latent, first frame)."""
    first_frame = {"samples": golden["base_content"][:, :, 0] / 0.18215}
    inputs = {"model": model} if model is not None else {}
    positive, negative, latent = call_node(
        "CinemoConditioning",
        positive=[[golden["encoder_hidden_states"], {}]],
        negative=[[golden["negative_encoder_hidden_states"], {}]],
        first_frame=first_frame, intensity=0, frames=frames,
        raw_motion_id=float(golden["motion_bucket_id"].item()), **inputs,
    )
    return positive, negative, latent, first_frame


@pytest.fixture(scope="session")
def golden_model(comfy_models):
    """The golden tiny Cinemo UNet as a ComfyUI MODEL (fp32 weights), through our loader node."""
    return call_node("CinemoModelLoader", model_name=comfy_models.golden, weight_dtype="fp32")[0]


def pack_module(relative: str):
    """A module of our pack as ComfyUI loaded it (its package name is derived from the pack's path)."""
    import importlib

    import nodes

    loader_module = nodes.NODE_CLASS_MAPPINGS["CinemoModelLoader"].__module__  # "<pack>.nodes.model.loader"
    return importlib.import_module(f"{loader_module.rsplit('.', 3)[0]}.{relative}")
