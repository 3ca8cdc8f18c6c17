"""The released Cinemo model folder (``unet/``, ``vae/`` or ``vae_temporal_decoder/``, ``text_encoder/``,
``tokenizer/``): finding its parts, loading them from local files, and the VAE and text-encoder steps.

Numerics follow the official sampler: the first frame is encoded in float64 as a posterior *sample*; the
temporal decoder decodes 14 frames per call (``num_frames`` = the chunk's length).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
from einops import rearrange
from torch import nn

from ..settings import HF_REPO_ID, HF_URL, LATENT_SCALE, OFFICIAL_DECODE_CHUNK, WEIGHT_SUFFIXES

#: Frames the temporal decoder decodes at once, as in the official code.
#: Frames the plain (per-frame) VAE decodes per call; only bounds memory.
PLAIN_DECODE_CHUNK = 8

VaeKind = Literal["temporal", "kl"]
VaeChoice = Literal["auto", "temporal", "kl"]
VAE_CHOICES: tuple[str, ...] = ("auto", "temporal", "kl")



class ModelFolderError(FileNotFoundError):
    """The model folder is missing, or lacks one of the parts the pipeline needs."""


class ComponentLoadError(RuntimeError):
    """A part of the model folder is present but could not be loaded (damaged or of the wrong kind)."""


@contextlib.contextmanager
def quiet_library_output() -> Iterator[None]:
    """Silence diffusers / transformers info chatter and progress bars while loading; restore afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = (diffusers_logging.get_verbosity(), transformers_logging.get_verbosity())
    bars = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(saved[0])
        transformers_logging.set_verbosity(saved[1])
        if bars:
            transformers_logging.enable_progress_bar()


def download_hint(folder: str | os.PathLike[str]) -> str:
    """How to get the released weights into ``folder``."""
    return (
        f"Download the released weights from Hugging Face ({HF_URL}), e.g.\n"
        f"    hf download {HF_REPO_ID} --local-dir {folder}\n"
        "and pass that folder with --model."
    )


@dataclass(frozen=True)
class ModelPart:
    """One sub-folder of the released model folder and what makes it complete."""

    folder: str
    description: str
    required_files: tuple[tuple[str, ...], ...]  # each inner tuple: any one of these names
    needs_weights: bool


UNET_PART = ModelPart("unet", "the Cinemo 3D UNet", (("config.json",),), True)
VAE_TEMPORAL_PART = ModelPart(
    "vae_temporal_decoder", "the SVD temporal-decoder VAE, AutoencoderKLTemporalDecoder", (("config.json",),), True
)
VAE_KL_PART = ModelPart("vae", "the SD-1.4 VAE, AutoencoderKL", (("config.json",),), True)
TEXT_ENCODER_PART = ModelPart("text_encoder", "the CLIP ViT-L/14 text encoder, CLIPTextModel", (("config.json",),), True)
TOKENIZER_PART = ModelPart(
    "tokenizer", "the CLIP tokenizer", (("vocab.json", "tokenizer.json"), ("merges.txt", "tokenizer.json")), False
)
#: Every part of the released folder, by its sub-folder's name.
MODEL_PARTS: dict[str, ModelPart] = {
    part.folder: part for part in (UNET_PART, VAE_TEMPORAL_PART, VAE_KL_PART, TEXT_ENCODER_PART, TOKENIZER_PART)
}


def part_problem(root: Path, part: ModelPart) -> str | None:
    """None when ``root/part.folder`` looks complete, else a one-line description of what is missing."""
    folder = root / part.folder
    if not folder.is_dir():
        return f"{part.folder}/ is missing ({part.description})"
    missing = [" or ".join(names) for names in part.required_files if not any((folder / n).is_file() for n in names)]
    if part.needs_weights and not any(
        p.is_file() and p.name.lower().endswith(WEIGHT_SUFFIXES) for p in folder.iterdir()
    ):
        missing.append("a weights file (" + ", ".join(f"*{s}" for s in WEIGHT_SUFFIXES[:2]) + ")")
    if missing:
        return f"{part.folder}/ ({part.description}) has no " + "; no ".join(dict.fromkeys(missing))
    return None


@dataclass(frozen=True)
class ModelFiles:
    """Where each part of a released-layout model folder is."""

    root: Path
    unet: Path
    vae: Path
    vae_kind: VaeKind
    text_encoder: Path
    tokenizer: Path


def locate_model_files(folder: str | os.PathLike[str], vae: VaeChoice = "auto") -> ModelFiles:
    """Check a model folder in the released layout and say where each part is.

    Args:
        folder: the downloaded ``maxin-cn/Cinemo`` folder.
        vae: ``"temporal"`` (``vae_temporal_decoder/``, the official default), ``"kl"`` (``vae/``) or
            ``"auto"`` (the temporal decoder when present, else ``vae/``).

    Raises:
        ModelFolderError: naming every missing part and where the weights come from.
        ValueError: for an unknown ``vae`` choice.
    """
    if vae not in VAE_CHOICES:
        raise ValueError(f"vae must be one of {', '.join(VAE_CHOICES)}, got {vae!r}.")
    root = Path(folder).expanduser()
    if not root.exists():
        raise ModelFolderError(f"The model folder '{root}' does not exist.\n{download_hint(root)}")
    if not root.is_dir():
        raise ModelFolderError(
            f"The model path '{root}' is a file; expected the model folder holding unet/, vae_temporal_decoder/ "
            f"(or vae/), text_encoder/ and tokenizer/.\n{download_hint(root)}"
        )
    problems = [p for p in (part_problem(root, UNET_PART),) if p]
    vae_part: ModelPart | None = None
    if vae == "auto":
        temporal_problem = part_problem(root, VAE_TEMPORAL_PART)
        kl_problem = part_problem(root, VAE_KL_PART)
        if temporal_problem is None:
            vae_part = VAE_TEMPORAL_PART
        elif kl_problem is None:
            vae_part = VAE_KL_PART
        else:
            problems.append(f"{temporal_problem}, and {kl_problem}; one of the two VAEs is needed")
    else:
        candidate = VAE_TEMPORAL_PART if vae == "temporal" else VAE_KL_PART
        problem = part_problem(root, candidate)
        if problem:
            problems.append(problem)
        else:
            vae_part = candidate
    problems += [p for p in (part_problem(root, TEXT_ENCODER_PART), part_problem(root, TOKENIZER_PART)) if p]
    if problems or vae_part is None:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ModelFolderError(f"The model folder '{root}' is incomplete:\n{listing}\n{download_hint(root)}")
    return ModelFiles(
        root=root,
        unet=root / UNET_PART.folder,
        vae=root / vae_part.folder,
        vae_kind="temporal" if vae_part is VAE_TEMPORAL_PART else "kl",
        text_encoder=root / TEXT_ENCODER_PART.folder,
        tokenizer=root / TOKENIZER_PART.folder,
    )


class ImageEncoder(nn.Module):
    """The encoder half of a VAE (encoder + quant conv): image -> posterior mean and log-variance."""

    def __init__(self, vae: nn.Module, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(vae.encoder).to(dtype)
        quant = getattr(vae, "quant_conv", None)
        self.quant_conv = copy.deepcopy(quant).to(dtype) if quant is not None else None
        self.requires_grad_(False).eval()

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moments = self.encoder(pixels.to(self.dtype))
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # the clamp of diffusers' DiagonalGaussianDistribution


@dataclass
class CinemoComponents:
    """Everything :func:`cinemo_core.app.pipeline.animate` needs, on one device.

    Attributes:
        unet: the Cinemo UNet (``forward(x, timesteps, context, base_content, motion_ids)``).
        vae: diffusers ``AutoencoderKLTemporalDecoder`` or ``AutoencoderKL`` in the compute dtype (decoding).
        image_encoder: a float64 copy of the VAE encoder (float32 where float64 is unsupported, e.g. MPS).
        text_encoder: transformers ``CLIPTextModel``.
        tokenizer: transformers ``CLIPTokenizer``.
        vae_kind: ``"temporal"`` or ``"kl"``.
        device, dtype: where and in which precision UNet, text encoder and VAE decoder run.
        is_demo: True for the random-weight demo model.
    """

    unet: nn.Module
    vae: nn.Module
    image_encoder: ImageEncoder
    text_encoder: nn.Module
    tokenizer: object
    vae_kind: VaeKind
    device: torch.device
    dtype: torch.dtype
    is_demo: bool = False

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", LATENT_SCALE) or LATENT_SCALE)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each axis (8 for the released VAEs)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)


def move_module(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``module.to(device, dtype)`` in eval mode without gradients.

    Uses ``torch.nn.Module.to`` directly: diffusers' override logs a spurious float32 warning on every cast.
    """
    return nn.Module.to(module, device=device, dtype=dtype).eval().requires_grad_(False)


def encode_dtype_for(device: torch.device) -> torch.dtype:
    """float64 (as the official code encodes) unless the device has no float64 (MPS): then float32."""
    return torch.float32 if device.type == "mps" else torch.float64


def check_compatible(unet: nn.Module, vae: nn.Module, text_encoder: nn.Module, source: str) -> None:
    """Raise ``ComponentLoadError`` when the parts do not fit together (channels, text width)."""
    unet_config = getattr(unet, "config", None)
    if unet_config is None:
        return
    latent = int(vae.config.latent_channels)
    if latent != unet_config.in_channels:
        raise ComponentLoadError(
            f"{source}: the VAE has {latent} latent channels but the UNet expects {unet_config.in_channels}; "
            "the vae/ and unet/ folders come from different models."
        )
    hidden = int(text_encoder.config.hidden_size)
    if hidden != unet_config.cross_attention_dim:
        raise ComponentLoadError(
            f"{source}: the text encoder outputs {hidden}-dim embeddings but the UNet's cross-attention expects "
            f"{unet_config.cross_attention_dim}; the text_encoder/ folder is not CLIP ViT-L/14 as released."
        )


def load_components(
    folder: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    vae: VaeChoice = "auto",
) -> CinemoComponents:
    """Load a released-layout model folder (local files only; nothing is downloaded).

    Raises:
        ModelFolderError: a part is missing (the message names it and where the weights come from).
        ComponentLoadError: a part is present but cannot be loaded or does not fit the others.
    """
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPTextModel, CLIPTokenizer

    from .checkpoint import load_unet

    files = locate_model_files(folder, vae=vae)
    device = torch.device(device)

    def _load(what: Path, loader):
        try:
            return loader()
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
            raise ComponentLoadError(
                f"Could not load {what.name}/ from '{what}': {error}\n"
                f"The folder may be damaged or from another model; re-download it from {HF_URL}."
            ) from error

    unet = _load(files.unet, lambda: load_unet(files.unet, dtype=dtype, device=device))
    vae_class = AutoencoderKLTemporalDecoder if files.vae_kind == "temporal" else AutoencoderKL
    with quiet_library_output():
        # float32 first, so that the float64 encoder copy comes from full-precision weights (like the official)
        vae_model = _load(
            files.vae, lambda: vae_class.from_pretrained(
                files.vae, local_files_only=True, torch_dtype=torch.float32, use_safetensors=_has_safetensors(files.vae)
            )
        )
        text_encoder = _load(
            files.text_encoder, lambda: CLIPTextModel.from_pretrained(
                files.text_encoder, local_files_only=True, use_safetensors=_has_safetensors(files.text_encoder)
            )
        )
        tokenizer = _load(
            files.tokenizer, lambda: CLIPTokenizer.from_pretrained(files.tokenizer, local_files_only=True)
        )
    image_encoder = ImageEncoder(vae_model, dtype=encode_dtype_for(device)).to(device)
    vae_model = move_module(vae_model, device, dtype)
    text_encoder = move_module(text_encoder, device, dtype)
    check_compatible(unet, vae_model, text_encoder, str(files.root))
    return CinemoComponents(
        unet=unet,
        vae=vae_model,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        vae_kind=files.vae_kind,
        device=device,
        dtype=dtype,
    )


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder: nn.Module, prompts: Sequence[str]) -> torch.Tensor:
    """CLIP last hidden states ``[len(prompts), 77, hidden]`` in the text encoder's dtype and device.

    Like the official pipeline: padded to 77 tokens with truncation, no attention mask. A tokenizer may claim
    more (ComfyUI's ``sd1_tokenizer`` says 8192); the text encoder's positions are the limit. A warning names
    any prompt that was cut.
    """
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}.")
    positions = getattr(getattr(text_encoder, "config", None), "max_position_embeddings", None)
    max_length = min(int(tokenizer.model_max_length), int(positions or tokenizer.model_max_length))
    tokens = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    for prompt in prompts:
        length = len(tokenizer(prompt, truncation=False)["input_ids"])
        if length > max_length:
            warnings.warn(
                f"The prompt {prompt[:40]!r}... has {length} tokens; CLIP reads only the first {max_length}, "
                "the rest is ignored.",
                stacklevel=2,
            )
    device = next(text_encoder.parameters()).device
    return text_encoder(tokens.input_ids.to(device)).last_hidden_state


@torch.no_grad()
def encode_image(
    image_encoder: ImageEncoder,
    pixels: torch.Tensor,
    *,
    scaling_factor: float = LATENT_SCALE,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Encode images in [-1, 1] to scaled first-frame latents ``[B, C, 1, h, w]`` (encoder dtype).

    A posterior sample ``mean + std * eps`` (eps drawn from ``generator``, on the generator's device, in
    the encoder's dtype) times ``scaling_factor``, as the official ``prepare_image``.
    """
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be [B, 3, H, W] in [-1, 1], got {list(pixels.shape)}.")
    device = next(image_encoder.parameters()).device
    mean, logvar = image_encoder(pixels.to(device))
    std = torch.exp(0.5 * logvar)
    gen_device = generator.device if generator is not None else device
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=gen_device).to(device)
    return ((mean + std * eps) * scaling_factor).unsqueeze(2)


def _has_safetensors(folder: Path) -> bool | None:
    """True when the folder has safetensors weights (then only those are read); None lets the library choose."""
    return True if any(Path(folder).glob("*.safetensors")) else None


def _to_uint8(video: torch.Tensor, vae_kind: VaeKind) -> torch.Tensor:
    """[-1, 1] -> uint8 as each official decode path does (the plain VAE path rounds, the temporal one floors).

    The arithmetic runs in the decoder's dtype like the official code (fp16 there), except bfloat16, whose
    8-bit mantissa cannot hold 0..255 steps exactly.
    """
    if video.dtype == torch.bfloat16:
        video = video.float()
    if vae_kind == "temporal":
        return ((video / 2.0 + 0.5).clamp(0, 1) * 255).to(torch.uint8)
    return ((video / 2.0 + 0.5) * 255).add_(0.5).clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def decode_video(
    vae: nn.Module,
    base: torch.Tensor,
    residual: torch.Tensor,
    *,
    vae_kind: VaeKind,
    scaling_factor: float = LATENT_SCALE,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Decode a first-frame latent and motion residuals to uint8 frames ``[B, 1 + R, H, W, 3]`` (on CPU).

    Frame 0 is ``base / s``, frame ``i`` is ``base / s + residual_i / s`` (``s`` = ``scaling_factor``). The
    temporal decoder decodes ``chunk_size`` frames at a time (default 14, official) with ``num_frames`` set to
    the chunk's length; the plain VAE decodes frame by frame (in batches of ``PLAIN_DECODE_CHUNK``).
    """
    if base.dim() != 5 or base.shape[2] != 1:
        raise ValueError(f"base must be [B, C, 1, h, w], got {list(base.shape)}.")
    if residual.dim() != 5 or residual.shape[:2] != base.shape[:2] or residual.shape[3:] != base.shape[3:]:
        raise ValueError(f"residual {list(residual.shape)} does not match base {list(base.shape)}.")
    if vae_kind not in ("temporal", "kl"):
        raise ValueError(f"vae_kind must be 'temporal' or 'kl', got {vae_kind!r}.")
    chunk = chunk_size or (OFFICIAL_DECODE_CHUNK if vae_kind == "temporal" else PLAIN_DECODE_CHUNK)
    parameter = next(vae.parameters())
    base = base.to(device=parameter.device, dtype=parameter.dtype) / scaling_factor
    residual = residual.to(device=parameter.device, dtype=parameter.dtype) / scaling_factor
    latents = rearrange(torch.cat([base, base + residual], dim=2), "b c f h w -> b f c h w")
    videos = []
    for sample in latents:
        pieces = []
        for start in range(0, sample.shape[0], chunk):
            z = sample[start : start + chunk]
            if vae_kind == "temporal":
                decoded = vae.decode(z, num_frames=z.shape[0]).sample
            else:
                decoded = vae.decode(z).sample
            pieces.append(_to_uint8(decoded, vae_kind).cpu())
        videos.append(rearrange(torch.cat(pieces), "f c h w -> f h w c"))
    return torch.stack(videos).contiguous()
