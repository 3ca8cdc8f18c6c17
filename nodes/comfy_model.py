"""Cinemo as a native ComfyUI model: a ``BaseModel`` subclass wrapped in a ``ModelPatcher``.

What the MODEL socket carries is an ordinary ComfyUI ``ModelPatcher``, so core ``KSampler``,
``SamplerCustomAdvanced``, every core sampler and scheduler, LoRA-style weight patches, object patches,
progress, previews and ComfyUI's memory management (low-VRAM partial loading, fp8 weight storage) work:

* layers come from ``comfy.ops`` (picked by ``BaseModel`` from the weight and compute dtypes), and
  attention goes through ComfyUI's optimised attention (xformers / sage / flash / PyTorch SDPA /
  sub-quadratic / split, including ``transformer_options["optimized_attention_override"]``);
* sampling is epsilon prediction on the diffusers ``linear`` schedule (betas 1e-4..0.02, which ComfyUI
  calls ``sqrt_linear``); the sigmas are the official float32 ones (``cinemo_core.schedule``);
* ``memory_required`` is the traced peak of one step (``cinemo_core.memory``) for the batch, frame
  count, latent size, text length, compute dtype and attention kernel at hand.

Latents, in ComfyUI's convention (unscaled, raw VAE space; the sampler multiplies by 0.18215 itself):

* the sampled LATENT is the **motion residual** ``[N, 4, F - 1, h, w]`` (N videos, F - 1 generated frames);
* the first frame travels in the conditioning (key ``cinemo_first_frame``, ``[N or 1, 4, h, w]``) with
  the raw motion id (``cinemo_motion_id``); ``extra_conds`` turns them into the UNet's ``base_content``
  ``[N, 4, 1, h, w]`` (scaled) and ``motion_ids`` ``[N]``. Both are ordinary per-sample conds that
  ComfyUI batches together with their own cond or uncond, so nothing depends on the order of cond and
  uncond in a batch (``transformer_options["cond_or_uncond"]``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.ops
import comfy.patcher_extension
import comfy.supported_models_base
import comfy.utils
from comfy.ldm.modules import attention as comfy_attention

from ..cinemo_core.checkpoint import CheckpointError, prepare_unet_state_dict
from ..cinemo_core.config import CinemoUNetConfig
from ..cinemo_core.memory import step_memory_bytes
from ..cinemo_core.schedule import BETA_END, BETA_START, NUM_TRAIN_TIMESTEPS, CinemoSchedule
from ..cinemo_core.unet import CinemoUNet3D
from .init_noise import DiffusedNoise, noise_for_first_sigma
from .latents import check_residual_matches_first_frame

#: Conditioning keys our Conditioning node sets and ``CinemoModel.extra_conds`` reads.
FIRST_FRAME_KEY = "cinemo_first_frame"
MOTION_ID_KEY = "cinemo_motion_id"
#: The key under which the noise-space wrapper is registered on the ModelPatcher.
NOISE_WRAPPER_KEY = "cinemo_diffused_noise"
SUPPORTED_COMPUTE_DTYPES = [torch.float16, torch.bfloat16, torch.float32]


class CinemoLatentFormat(comfy.latent_formats.SD15):
    """SD-1.x VAE latents (scale 0.18215) arranged as video ``[N, 4, F, h, w]``.

    TAESD previews are disabled because TAESD decodes 4-D latents only; previews use Latent2RGB of the
    first residual frame (the motion residual, so a mostly grey image where things move).
    """

    latent_dimensions = 3

    def __init__(self) -> None:
        super().__init__()
        self.taesd_decoder_name = None


class CinemoModelConfig(comfy.supported_models_base.BASE):
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
        super().__init__({"cinemo_config": config})

    @property
    def cinemo_config(self) -> CinemoUNetConfig:
        return self.unet_config["cinemo_config"]

    def process_unet_state_dict_for_saving(self, state_dict: dict) -> dict:
        """Core ModelSave writes the released checkpoint's plain keys, which Cinemo Model Loader reads back."""
        return state_dict


class CinemoModelSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    """Epsilon prediction on the official schedule, with the official (float32) sigmas.

    ``ModelSamplingDiscrete`` would compute the same schedule in float64; the cumulative alphas of the
    official sampler are float32 (diffusers), and using them keeps ``ddim_uniform``, our scheduler and the
    model's sigma-to-timestep lookup identical to the official timesteps.
    """

    def __init__(self, model_config: CinemoModelConfig | None = None) -> None:
        super().__init__(model_config)
        self.set_sigmas(CinemoSchedule().all_sigmas())


class ComfyAttention:
    """Adapts ComfyUI's attention kernels to the ``scaled_dot_product_attention`` signature the UNet uses.

    Called with ``[B, heads, N, D]`` tensors; returns the same layout. Unmasked (spatial and cross)
    attention uses ``optimized_attention``. The temporal attention passes an additive bias
    ``[heads, F, F]``; it is tiny per query (F = 16) but has a huge batch, so it goes to the kernel
    ComfyUI picks for small masked inputs. ``options`` holds the current ``transformer_options`` so that
    attention overrides registered by other nodes apply.
    """

    def __init__(self) -> None:
        self.options: dict = {}

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        heads = q.shape[1]
        if attn_mask is None:
            kernel = comfy_attention.optimized_attention
        else:
            kernel = comfy_attention.optimized_attention_for_device(q.device, mask=True, small_input=True)
            if attn_mask.ndim == 3:  # [heads, F, F] -> [1, heads, F, F]: ComfyUI reads 3-D masks as [batch, F, F]
                attn_mask = attn_mask.unsqueeze(0)
        # ComfyUI's kernels honour skip_output_reshape only on some paths (attention_pytorch ignores it when
        # it splits a batch above SDP_BATCH_LIMIT), so take the [B, N, heads * D] layout they always support
        out = kernel(q, k, v, heads, mask=attn_mask, skip_reshape=True, transformer_options=self.options)
        return out.unflatten(-1, (heads, -1)).transpose(1, 2)


def _with_float_embeddings(operations: Any) -> Any:
    """``operations`` whose Embedding returns float32 even when its weight is stored as fp8.

    ComfyUI's cast-on-the-fly Embedding keeps the stored dtype unless it is given ``out_dtype`` (its own
    text encoders pass one); an fp8 lookup is not supported on every backend.
    """

    class Embedding(operations.Embedding):
        def forward(self, input: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
            return super().forward(input, out_dtype=out_dtype or torch.float32)

    return type(f"Cinemo{operations.__name__}", (operations,), {"Embedding": Embedding})


class CinemoDiffusionModel(CinemoUNet3D):
    """The UNet with the constructor and ``forward`` signature ``BaseModel`` expects.

    ``forward(x, timesteps, context, control, transformer_options, base_content=..., motion_ids=...)``;
    ``DIFFUSION_MODEL`` wrappers from ``transformer_options`` run around it, as for core models.
    """

    def __init__(
        self,
        cinemo_config: CinemoUNetConfig,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        operations: Any = None,
    ) -> None:
        attention = ComfyAttention()
        super().__init__(
            cinemo_config,
            operations=_with_float_embeddings(operations if operations is not None else comfy.ops.disable_weight_init),
            attention=attention,
            dtype=dtype,
            device=device,
        )
        self.comfy_attention = attention

    def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
        return comfy.patcher_extension.WrapperExecutor.new_class_executor(
            self._forward,
            self,
            comfy.patcher_extension.get_all_wrappers(
                comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options
            ),
        ).execute(x, timesteps, context, control, transformer_options, **kwargs)

    def _forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
        self.comfy_attention.options = transformer_options
        try:
            return super().forward(x, timesteps, context, **kwargs)
        finally:
            self.comfy_attention.options = {}


class CinemoModel(comfy.model_base.BaseModel):
    """Cinemo's ``BaseModel``: epsilon prediction of the motion residual, conditioned on the first frame."""

    def __init__(self, model_config: CinemoModelConfig, device: torch.device | None = None) -> None:
        super().__init__(model_config, comfy.model_base.ModelType.EPS, device=device, unet_model=CinemoDiffusionModel)
        self.model_sampling = CinemoModelSampling(model_config)

    @property
    def cinemo_config(self) -> CinemoUNetConfig:
        return self.model_config.cinemo_config

    def apply_model(self, *args, **kwargs):
        # every model call is a place to stop: an interrupt ends the run within one step, whatever sampler
        # loop calls us and whether or not it reports progress
        comfy.model_management.throw_exception_if_processing_interrupted()
        return super().apply_model(*args, **kwargs)

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        which = kwargs.get("prompt_type") or "conditioning"
        first_frame = kwargs.get(FIRST_FRAME_KEY)
        motion_id = kwargs.get(MOTION_ID_KEY)
        if first_frame is None or motion_id is None:
            raise ValueError(
                f"The {which} conditioning given to the sampler carries no Cinemo first frame. Send both the "
                "positive and the negative conditioning through the 'Cinemo Conditioning' node and use its "
                "outputs for sampling."
            )
        if kwargs.get("area") is not None:
            raise ValueError(
                f"The {which} conditioning has an area set (ConditioningSetArea...). Cinemo animates whole frames "
                "from a whole first frame; remove the area nodes between Cinemo Conditioning and the sampler."
            )
        noise = kwargs["noise"]
        check_residual_matches_first_frame(noise.shape, first_frame.shape, residual_name="latent_image",
                                           first_frame_name=f"the first frame in the {which} conditioning")
        context = kwargs.get("cross_attn")
        expected_dim = self.cinemo_config.cross_attention_dim
        if context is not None and context.shape[-1] != expected_dim:
            raise ValueError(
                f"The {which} text embeddings have {context.shape[-1]} channels, but this Cinemo model expects "
                f"{expected_dim} (CLIP ViT-L/14). Encode the prompt with CLIPLoader type 'stable_diffusion' "
                "and the CLIP-L text encoder."
            )
        device = kwargs["device"]
        base = self.process_latent_in(first_frame.to(device=device, dtype=torch.float32)).unsqueeze(2)
        out["base_content"] = comfy.conds.CONDRegular(base)
        # a constant, not a tensor: BaseModel would round float tensors to the compute dtype (fp16 or bf16)
        out["motion_ids"] = comfy.conds.CONDConstant(float(motion_id))
        return out

    def extra_conds_shapes(self, **kwargs):
        # lets ComfyUI's load-time memory estimate see the prompt length (77 tokens per CLIP chunk)
        out = super().extra_conds_shapes(**kwargs)
        context = kwargs.get("cross_attn")
        if context is not None:
            out["c_crossattn"] = list(context.shape)
        return out

    def memory_required(self, input_shape, cond_shapes={}):  # noqa: B006
        if len(input_shape) != 5:
            return super().memory_required(input_shape, cond_shapes=cond_shapes)
        dtype = self.manual_cast_dtype or self.get_dtype()
        context_shapes = cond_shapes.get("c_crossattn") or []
        tokens = max([shape[1] for shape in context_shapes if len(shape) == 3] or [77])
        batch, _, frames, height, width = (int(size) for size in input_shape)
        # sub-quadratic, split and basic attention materialise blocks of scores; the others do not
        efficient = comfy_attention.optimized_attention not in (
            comfy_attention.attention_sub_quad, comfy_attention.attention_split, comfy_attention.attention_basic
        )
        return step_memory_bytes(
            self.cinemo_config, batch, frames, height, width, dtype,
            context_tokens=tokens, memory_efficient_attention=bool(efficient),
        )


def is_cinemo_model(model: Any) -> bool:
    """True for a ModelPatcher (MODEL) that wraps a Cinemo model."""
    return isinstance(getattr(model, "model", None), CinemoModel)


def describe_model(model: Any) -> str:
    """A short name for what a MODEL socket holds (for error messages)."""
    inner = getattr(model, "model", None)
    if inner is None:
        return f"a {type(model).__name__}"
    config = getattr(inner, "model_config", None)
    config_name = type(config).__name__ if config is not None else "unknown"
    return f"a {config_name} model ({type(inner).__name__})"


def require_cinemo_model(model: Any, input_name: str) -> None:
    """Raise ``ValueError`` naming ``input_name`` unless ``model`` is a Cinemo MODEL."""
    if not is_cinemo_model(model):
        raise ValueError(
            f"{input_name}: got {describe_model(model)}, not a Cinemo model. Load the Cinemo UNet with "
            "'Cinemo Model Loader' and connect its MODEL here (checkpoint loaders give image models such as SD 1.5)."
        )


def _scale_diffused_noise(executor: Callable, noise: torch.Tensor, latent_image: torch.Tensor, sampler: Any,
                          sigmas: torch.Tensor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: turn a DDPM-space x_T (our NOISE) into what ComfyUI's noise scaling expects."""
    if isinstance(noise, DiffusedNoise):
        noise = noise.as_subclass(torch.Tensor)
        if sigmas.shape[-1] > 1:
            model_sampling = executor.class_obj.model_patcher.get_model_object("model_sampling")
            noise = noise_for_first_sigma(noise, float(sigmas[0]), float(model_sampling.sigma_max))
    return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)


def build_model_patcher(
    state_dict: dict[str, torch.Tensor],
    config: CinemoUNetConfig | None = None,
    *,
    weight_dtype: torch.dtype | None = None,
    source: str = "<state dict>",
) -> comfy.model_patcher.ModelPatcher:
    """A Cinemo MODEL from a state dict in any published layout (unwrapped, identified and checked here).

    Args:
        state_dict: the weights (consumed).
        config: the architecture (None: inferred from the weights).
        weight_dtype: storage dtype of the weights (None: what ComfyUI picks for this device and file, as
            core loaders do); fp8 dtypes are stored as fp8 and computed in ComfyUI's manual-cast dtype.
        source: where the weights came from, for error messages.

    Raises:
        CheckpointError: the weights are not a complete Cinemo UNet (``NotACinemoUNetError`` names the model).
    """
    config, state_dict = prepare_unet_state_dict(state_dict, config, source=source)
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    if weight_dtype is None:
        weight_dtype = comfy.model_management.unet_dtype(
            model_params=comfy.utils.calculate_parameters(state_dict),
            supported_dtypes=SUPPORTED_COMPUTE_DTYPES,
            weight_dtype=comfy.utils.weight_dtype(state_dict),
        )
    manual_cast = comfy.model_management.unet_manual_cast(weight_dtype, load_device, SUPPORTED_COMPUTE_DTYPES)
    model_config = CinemoModelConfig(config)
    model_config.set_inference_dtype(weight_dtype, manual_cast)
    model = CinemoModel(model_config, device=offload_device)
    missing, unexpected = model.diffusion_model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:  # prepare_unet_state_dict guarantees the key set; this guards the adapter
        raise CheckpointError(f"{source}: weights did not load (missing {missing[:5]}, unexpected {unexpected[:5]}).")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, NOISE_WRAPPER_KEY, _scale_diffused_noise
    )
    return patcher

