"""How ComfyUI sees a Cinemo model: its latent format, noise schedule and dtypes."""

from __future__ import annotations

import torch

from ...cinemo_core.model.config import CinemoUNetConfig
from ...cinemo_core.sampling.schedule import BETA_END, BETA_START, NUM_TRAIN_TIMESTEPS, CinemoSchedule
from ..comfy_compat import EpsilonPrediction, ModelConfig, ModelSamplingDiscrete, SD15LatentFormat

SUPPORTED_COMPUTE_DTYPES = [torch.float16, torch.bfloat16, torch.float32]


class CinemoLatentFormat(SD15LatentFormat):
    """SD-1.x VAE latents (scale 0.18215) arranged as video ``[N, 4, F, h, w]``.

    TAESD decodes 4-D latents only, so previews use Latent2RGB of the first residual frame instead.
    """

    latent_dimensions = 3

    def __init__(self) -> None:
        super().__init__()
        self.taesd_decoder_name = None


def latent_scale() -> float:
    """The factor that takes LATENT values to the model's space (0.18215)."""
    return float(CinemoLatentFormat().scale_factor)


def sd1_unet_description(config: CinemoUNetConfig) -> dict:
    """The architecture in the ``unet_config`` keys of ComfyUI's SD-1.x UNet, which model-patch nodes read
    (FreeU scales the blocks with ``model_channels * 2`` and ``* 4`` channels)."""
    base = config.block_out_channels[0]
    return {
        "model_channels": base,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "context_dim": config.cross_attention_dim,
        "channel_mult": [channels // base for channels in config.block_out_channels],
        "num_res_blocks": [config.layers_per_block] * len(config.block_out_channels),
        "num_heads": config.num_attention_heads,
        "num_head_channels": -1,
        "use_linear_in_transformer": False,
    }


class CinemoModelConfig(ModelConfig):
    """ComfyUI's description of the model: latent format, sampling settings, dtypes."""

    unet_config: dict = {}
    unet_extra_config: dict = {}
    latent_format = CinemoLatentFormat
    sampling_settings = {
        "beta_schedule": "sqrt_linear",  # ComfyUI's name for diffusers' "linear"
        "linear_start": BETA_START,
        "linear_end": BETA_END,
        "timesteps": NUM_TRAIN_TIMESTEPS,
    }
    supported_inference_dtypes = SUPPORTED_COMPUTE_DTYPES
    memory_usage_factor = 1.0  # unused: CinemoModel.memory_required traces the real cost

    def __init__(self, config: CinemoUNetConfig) -> None:
        super().__init__({"cinemo_config": config, **sd1_unet_description(config)})

    @property
    def cinemo_config(self) -> CinemoUNetConfig:
        return self.unet_config["cinemo_config"]

    def process_unet_state_dict_for_saving(self, state_dict: dict) -> dict:
        """Core ModelSave writes the released checkpoint's plain keys, which Cinemo Model Loader reads back."""
        return state_dict


class CinemoModelSampling(ModelSamplingDiscrete, EpsilonPrediction):
    """Epsilon prediction on the official schedule, with the official float32 sigmas.

    ``ModelSamplingDiscrete`` would compute the same schedule in float64; the official cumulative alphas are
    float32 (diffusers), and using them keeps our scheduler's timesteps identical to the official ones.
    """

    def __init__(self, model_config: CinemoModelConfig | None = None) -> None:
        super().__init__(model_config)
        self.set_sigmas(CinemoSchedule().all_sigmas())
