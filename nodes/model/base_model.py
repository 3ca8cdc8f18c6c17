"""Cinemo as a native ComfyUI model: a ``BaseModel`` whose UNet denoises the motion residual.

The sampled LATENT is the residual ``[N, 4, F - 1, h, w]``; the first frame and the raw motion id travel in
the conditioning (``FIRST_FRAME_KEY``, ``MOTION_ID_KEY``) and become ordinary per-sample conds, so ComfyUI
batches them with their own cond or uncond and nothing depends on the order of the two in a batch.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ...cinemo_core.model.checkpoint import CheckpointError, prepare_unet_state_dict
from ...cinemo_core.model.config import CinemoUNetConfig
from ...cinemo_core.model.devices import CpuFeatures
from ...cinemo_core.finite import check_model_output
from ...cinemo_core.model.memory import step_memory_bytes
from ...cinemo_core.model.unet import CinemoUNet3D
from ...cinemo_core.settings import CLIP_TOKENS
from ..comfy_compat import (
    EPS_PREDICTION,
    BaseModel,
    CONDConstant,
    CONDRegular,
    ModelPatcher,
    add_sampled_latent_function,
    add_sampling_run_function,
    add_sampling_check,
    attention_is_memory_efficient,
    default_operations,
    load_device,
    manual_cast_dtype,
    offload_device,
    run_diffusion_model_wrappers,
    storage_dtype,
    throw_if_interrupted,
)
from ...cinemo_core.sampling.still import keep_still
from ..latents import check_residual_matches_first_frame
from .attention import ComfyAttention
from .cpu_precision import cpu_model_dtypes
from .end_frame import prepare_end_frame
from .config import SUPPORTED_COMPUTE_DTYPES, CinemoModelConfig, CinemoModelSampling
from .patches import ComfyPatchHooks, check_sampling_setup, run_passes_separately

#: Conditioning keys Cinemo Conditioning sets and ``CinemoModel.extra_conds`` reads.
FIRST_FRAME_KEY = "cinemo_first_frame"
MOTION_ID_KEY = "cinemo_motion_id"
#: CLIP's positions per prompt chunk, for the memory estimate when no prompt is known yet.


def _with_float_embeddings(operations: Any) -> Any:
    """``operations`` whose Embedding returns float32 even when its weight is stored as fp8.

    ComfyUI's cast-on-the-fly Embedding keeps the stored dtype unless given ``out_dtype``, and an fp8 lookup
    is not supported on every backend.
    """

    class Embedding(operations.Embedding):
        def forward(self, input: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
            dtype = out_dtype or torch.float32  # the weight-init-free Embedding (no manual cast) ignores out_dtype
            return super().forward(input, out_dtype=dtype).to(dtype)

    return type(f"Cinemo{operations.__name__}", (operations,), {"Embedding": Embedding})


class CinemoDiffusionModel(CinemoUNet3D):
    """The UNet with the constructor and ``forward`` signature ``BaseModel`` expects; ``DIFFUSION_MODEL``
    wrappers from ``transformer_options`` run around it and its patches inside it, as for core models."""

    def __init__(
        self,
        cinemo_config: CinemoUNetConfig,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        operations: Any = None,
        **sd1_description: Any,
    ) -> None:
        # sd1_description: the SD-1.x keys of unet_config (model_channels, ...), derived from cinemo_config
        attention = ComfyAttention()
        super().__init__(
            cinemo_config,
            operations=_with_float_embeddings(operations if operations is not None else default_operations),
            attention=attention,
            dtype=dtype,
            device=device,
        )
        self.comfy_attention = attention
        # the hooks of each forward during one CinemoModel.apply_model (None outside one: nothing is kept)
        self.patch_hooks: list[ComfyPatchHooks] | None = None

    def non_finite_patch(self) -> str | None:
        """The patch that first turned finite values into NaN or infinity during this model call."""
        return next((found for hooks in self.patch_hooks or () if (found := hooks.non_finite_patch())), None)

    def forward(self, x, timesteps, context=None, control=None, transformer_options=None, **kwargs):
        transformer_options = {} if transformer_options is None else transformer_options
        separately = run_passes_separately(self.forward, x, transformer_options, timesteps, context, control, **kwargs)
        if separately is not None:  # core EasyCache on positive + negative: one pass per call (patches.py)
            return separately
        return run_diffusion_model_wrappers(
            self._forward, self, transformer_options, x, timesteps, context, control, transformer_options, **kwargs
        )

    def _forward(self, x, timesteps, context=None, control=None, transformer_options=None, **kwargs):
        if control is not None:
            raise ValueError(
                "A ControlNet reached the Cinemo UNet. ControlNet residuals are made for the latents of frames, "
                "while Cinemo denoises a motion residual relative to the first frame; remove the Apply ControlNet "
                "node."
            )
        transformer_options = {} if transformer_options is None else transformer_options
        hooks = ComfyPatchHooks(transformer_options, model_channels=self.config.block_out_channels[0])
        if self.patch_hooks is not None:
            self.patch_hooks.append(hooks)
        self.comfy_attention.options = transformer_options
        try:
            return super().forward(x, timesteps, context, hooks=hooks, **kwargs)
        finally:
            self.comfy_attention.options = {}


class CinemoModel(BaseModel):
    """Epsilon prediction of the motion residual, conditioned on the first frame."""

    def __init__(self, model_config: CinemoModelConfig, device: torch.device | None = None) -> None:
        super().__init__(model_config, EPS_PREDICTION, device=device, unet_model=CinemoDiffusionModel)
        self.model_sampling = CinemoModelSampling(model_config)

    @property
    def cinemo_config(self) -> CinemoUNetConfig:
        return self.model_config.cinemo_config

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
        # every model call is a place to stop, whatever sampler loop calls us and whether it reports progress
        throw_if_interrupted()
        self.diffusion_model.patch_hooks = []
        try:
            out = super().apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
            check_model_output(out, x=x, context=c_crossattn, base_content=kwargs.get("base_content"),
                               patch_cause=self.diffusion_model.non_finite_patch)
        finally:
            self.diffusion_model.patch_hooks = None
        return out

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
        check_residual_matches_first_frame(kwargs["noise"].shape, first_frame.shape, residual_name="latent_image",
                                           first_frame_name=f"the first frame in the {which} conditioning")
        context = kwargs.get("cross_attn")
        expected_dim = self.cinemo_config.cross_attention_dim
        if context is not None and context.shape[-1] != expected_dim:
            raise ValueError(
                f"The {which} text embeddings have {context.shape[-1]} channels, but this Cinemo model expects "
                f"{expected_dim} (CLIP ViT-L/14). Encode the prompt with CLIPLoader type 'stable_diffusion' "
                "and the CLIP-L text encoder."
            )
        base = self.process_latent_in(first_frame.to(device=kwargs["device"], dtype=torch.float32)).unsqueeze(2)
        out["base_content"] = CONDRegular(base)
        # a constant, not a tensor: BaseModel would round float tensors to the compute dtype (fp16 or bf16)
        out["motion_ids"] = CONDConstant(float(motion_id))
        return out

    def extra_conds_shapes(self, **kwargs):
        # lets ComfyUI's load-time memory estimate see the prompt length
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
        tokens = max([shape[1] for shape in context_shapes if len(shape) == 3] or [CLIP_TOKENS])
        batch, _, frames, height, width = (int(size) for size in input_shape)
        return step_memory_bytes(
            self.cinemo_config, batch, frames, height, width, dtype,
            context_tokens=tokens, memory_efficient_attention=attention_is_memory_efficient(),
        )


def build_model_patcher(
    state_dict: dict[str, torch.Tensor],
    config: CinemoUNetConfig | None = None,
    *,
    weight_dtype: torch.dtype | None = None,
    source: str = "<state dict>",
    cpu_features: CpuFeatures | None = None,
) -> ModelPatcher:
    """A Cinemo MODEL from a state dict in any published layout (unwrapped, identified and checked here).

    Args:
        state_dict: the weights (consumed).
        config: the architecture (None: inferred from the weights).
        weight_dtype: storage dtype (None: what ComfyUI picks for this device and file, as core loaders do);
            fp8 weights are computed in ComfyUI's manual-cast dtype.
        source: where the weights came from, for error messages.
        cpu_features: what the CPU computes natively, when ComfyUI runs on the CPU (None: this machine's);
            see ``cpu_precision.cpu_model_dtypes``.

    Raises:
        CheckpointError: the weights are not a complete Cinemo UNet (``NotACinemoUNetError`` names the model).
    """
    config, state_dict = prepare_unet_state_dict(state_dict, config, source=source)
    device = load_device()
    if device.type == "cpu":
        weight_dtype, cast_dtype = cpu_model_dtypes(weight_dtype, cpu_features)
    else:
        if weight_dtype is None:
            weight_dtype = storage_dtype(state_dict, SUPPORTED_COMPUTE_DTYPES)
        cast_dtype = manual_cast_dtype(weight_dtype, device, SUPPORTED_COMPUTE_DTYPES)
    model_config = CinemoModelConfig(config)
    model_config.set_inference_dtype(weight_dtype, cast_dtype)
    model = CinemoModel(model_config, device=offload_device())
    missing, unexpected = model.diffusion_model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:  # prepare_unet_state_dict guarantees the key set; this guards the adapter
        raise CheckpointError(f"{source}: weights did not load (missing {missing[:5]}, unexpected {unexpected[:5]}).")
    patcher = ModelPatcher(model, load_device=device, offload_device=offload_device())
    add_sampling_check(patcher, "cinemo_sampling_check", check_sampling_setup)
    add_sampled_latent_function(patcher, "cinemo_keep_masked_residual", keep_masked_residual)
    # added after the mask's wrapper, so it finishes first: still cells are 0 on the end frame too (the mask wins)
    add_sampling_run_function(patcher, "cinemo_end_frame",
                              functools.partial(prepare_end_frame, first_frame_key=FIRST_FRAME_KEY))
    return patcher


def keep_masked_residual(samples: torch.Tensor, latent_image: torch.Tensor | None,
                         denoise_mask: torch.Tensor | None) -> torch.Tensor:
    """The finished residual is exactly the given latent where the LATENT's ``noise_mask`` is 0.

    ComfyUI's inpainting keeps the latent in the *denoised* prediction at every step, which is exact for
    schedules that end at sigma 0; Cinemo's official DDIM ends at a non-zero sigma, so the kept region would
    still hold that last noise (up to 0.22 on the tiny model). Blending the finished sample the same way is
    what a schedule ending at 0 would have given there, and leaves unmasked runs untouched. This is what keeps
    Cinemo Conditioning's motion_mask still under every sampler, context windows and loops included.
    """
    if denoise_mask is None or latent_image is None:
        return samples
    return keep_still(samples, denoise_mask.to(samples), latent_image.to(samples))
