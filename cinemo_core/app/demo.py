"""A tiny random-weight Cinemo that runs anywhere, offline, with nothing downloaded.

It has the real architecture (the Cinemo UNet at ``CinemoUNetConfig.tiny()`` size, a diffusers
``AutoencoderKL`` with 8x downsampling and 4 latent channels, a transformers ``CLIPTextModel`` whose
width is the tiny UNet's cross-attention width, and a byte-level CLIP tokenizer built at run time)
so that the whole pipeline (preprocessing, encoding, DCTInit, DDIM with guidance, decoding, video
writing) is exercised exactly as with the released weights. The weights are random: the output
shows that everything runs, but its pictures and motion mean nothing.

``SAMPLE_IMAGE`` is a procedurally painted 512x320 landscape shipped with the package.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from ..settings import CLIP_TOKENS, LATENT_SCALE
from ..model.components import CinemoComponents, ImageEncoder, encode_dtype_for, move_module, quiet_library_output

SAMPLE_IMAGE: Path = Path(__file__).resolve().parent / "assets" / "sample.png"
DEMO_PROMPT = "a sailboat on a calm lake at sunset, gentle waves"
DEMO_SEED = 0
DEMO_NOTICE = (
    "DEMO MODE: using a tiny model with RANDOM weights (no download needed). It runs the complete Cinemo "
    "pipeline, but the pictures and the motion it produces are meaningless. For real animations download "
    "the weights (https://huggingface.co/maxin-cn/Cinemo) and pass --model."
)
_TEXT_WIDTH = 32
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (GPT-2 / CLIP convention)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def demo_vocabulary() -> dict[str, int]:
    """A merge-free CLIP vocabulary: every byte, every byte ending a word (``</w>``), and the two specials."""
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + [_BOS, _EOS]
    return {token: index for index, token in enumerate(tokens)}


def build_demo_tokenizer():
    """A CLIPTokenizer over :func:`demo_vocabulary` (one token per character), 77 tokens like CLIP's."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="cinemo-demo-tokenizer-") as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(demo_vocabulary()), encoding="utf-8")
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True, model_max_length=CLIP_TOKENS)


def build_demo_text_encoder(vocab_size: int, bos_id: int, eos_id: int):
    """A 2-layer CLIPTextModel of width 32 (the tiny UNet's cross-attention width), random weights."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=_TEXT_WIDTH,
        intermediate_size=4 * _TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CLIP_TOKENS,
        projection_dim=_TEXT_WIDTH,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return CLIPTextModel(config)


def build_demo_vae():
    """A small AutoencoderKL: 4 levels (8x downsampling), 4 latent channels, scaling factor 0.18215."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        scaling_factor=LATENT_SCALE,
    )


def build_demo_components(
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = DEMO_SEED,
) -> CinemoComponents:
    """Tiny random-weight components with the real architectures, identical for a given ``seed``.

    The global random state is left untouched.
    """
    from ..model.config import CinemoUNetConfig
    from ..model.unet import CinemoUNet3D

    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = CinemoUNet3D(CinemoUNetConfig.tiny())
        vae = build_demo_vae()
        tokenizer = build_demo_tokenizer()
        text_encoder = build_demo_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    image_encoder = ImageEncoder(vae, dtype=encode_dtype_for(device)).to(device)
    return CinemoComponents(
        unet=move_module(unet, device, dtype),
        vae=move_module(vae, device, dtype),
        image_encoder=image_encoder,
        text_encoder=move_module(text_encoder, device, dtype),
        tokenizer=tokenizer,
        vae_kind="kl",
        device=device,
        dtype=dtype,
        is_demo=True,
    )


def write_demo_model(folder: str | Path, *, seed: int = DEMO_SEED) -> Path:
    """Save the demo model as a folder in the released layout (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).

    Loading it with ``load_components`` (or ``cinemo-animate --model FOLDER``) gives the same weights as
    :func:`build_demo_components`: a small stand-in for the real download, to try the full loading path.
    """
    from safetensors.torch import save_file

    components = build_demo_components(seed=seed)
    root = Path(folder)
    unet_dir = root / "unet"
    unet_dir.mkdir(parents=True, exist_ok=True)
    (unet_dir / "config.json").write_text(json.dumps(components.unet.config.to_diffusers_config(), indent=2))
    # clone: the rotary buffer is one tensor shared by all blocks, which safetensors refuses to store
    state = {key: value.detach().clone().contiguous() for key, value in components.unet.state_dict().items()}
    save_file(state, str(unet_dir / "diffusion_pytorch_model.safetensors"))
    with quiet_library_output():
        components.vae.save_pretrained(root / "vae", safe_serialization=True)
        components.text_encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
        components.tokenizer.save_pretrained(root / "tokenizer")
    return root


#: The demo's motion transfer prompts: the source clip (the sample image, panned) and the edited look.
DEMO_SOURCE_PROMPT = DEMO_PROMPT
DEMO_TRANSFER_PROMPT = "a sailboat on a calm lake under blue moonlight, gentle waves"
#: The demo clip pans across this fraction of the sample image's width and height.
_PAN_WINDOW = 0.875


def demo_source_clip(num_frames: int) -> torch.Tensor:
    """A slow left-to-right pan over :data:`SAMPLE_IMAGE`: ``num_frames`` frames [F, H, W, 3] in 0..1.

    The window covers 7/8 of the image and slides over the remaining eighth of its width, so every
    frame has the image's aspect ratio and consecutive frames differ by a fraction of a pixel to a few.
    """
    from ..preprocess import load_image

    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}.")
    image = load_image(SAMPLE_IMAGE)[0]
    height, width = image.shape[:2]
    win_h, win_w = int(height * _PAN_WINDOW), int(width * _PAN_WINDOW)
    top = (height - win_h) // 2
    lefts = torch.linspace(0, width - win_w, num_frames).round().long().tolist()
    return torch.stack([image[top : top + win_h, left : left + win_w] for left in lefts])


def demo_edited_frame(first_frame: torch.Tensor) -> torch.Tensor:
    """A recoloured copy of an RGB frame [H, W, 3] (uint8 or 0..1; red and blue swapped: sunset turns to
    moonlight), as a [1, H, W, 3] image in 0..1."""
    if not isinstance(first_frame, torch.Tensor) or first_frame.dim() != 3 or first_frame.shape[-1] != 3:
        raise ValueError(f"first_frame must be an RGB frame [H, W, 3], got {getattr(first_frame, 'shape', None)!r}.")
    frame = first_frame.float() / 255.0 if first_frame.dtype == torch.uint8 else first_frame
    return frame.flip(-1).unsqueeze(0).contiguous()
