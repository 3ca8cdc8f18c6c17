"""The one door to ComfyUI's internals: every ComfyUI symbol the pack uses that is not ``comfy_api``.

Each entry says what it relies on; ``tests/test_comfy_compat.py`` pins each reliance with one test of the
same name, so a ComfyUI update that breaks one fails exactly that test. Other modules import ComfyUI only
from here (and ``comfy_api`` for the node schema).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Callable

import torch

import comfy.conds
import comfy.context_windows
import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.ops
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.supported_models_base
import comfy.utils
import folder_paths
import latent_preview
import node_helpers
from comfy.ldm.modules import attention as _attention
from comfy.ldm.modules.temporal_ae import VideoDecoder
from comfy_api.torch_helpers.torch_compile import TORCH_COMPILE_KWARGS

# --- base classes the Cinemo model is built from ----------------------------------------------------------

#: Subclassed: ``__init__(model_config, model_type, device=, unet_model=)`` builds ``unet_model(**unet_config,
#: dtype=, device=, operations=)``; ``extra_conds(**kwargs)`` gets ``noise``, ``device``, ``cross_attn``,
#: ``prompt_type`` and the conditioning's own keys; ``memory_required(input_shape, cond_shapes)``.
BaseModel = comfy.model_base.BaseModel
EPS_PREDICTION = comfy.model_base.ModelType.EPS
#: Subclassed: ``__init__(unet_config)``, ``set_inference_dtype(dtype, manual_cast_dtype)``,
#: class attributes ``sampling_settings``, ``latent_format``, ``supported_inference_dtypes``.
ModelConfig = comfy.supported_models_base.BASE
#: Subclassed: the SD-1.x latent format (``scale_factor`` 0.18215, ``latent_rgb_factors``); its
#: ``latent_dimensions`` and ``taesd_decoder_name`` attributes set the preview's layout and decoder.
SD15LatentFormat = comfy.latent_formats.SD15
#: Subclassed: ``set_sigmas(sigmas)`` replaces the schedule; ``sigma_max``, ``timestep(sigma)`` follow it.
ModelSamplingDiscrete = comfy.model_sampling.ModelSamplingDiscrete
EpsilonPrediction = comfy.model_sampling.EPS
#: The default layer namespace ``BaseModel`` passes as ``operations`` (Conv2d, Linear, GroupNorm, LayerNorm,
#: Embedding); the cast-on-the-fly variants (manual cast, fp8 storage) honour ``Embedding(input, out_dtype=)``.
default_operations = comfy.ops.disable_weight_init
#: Per-sample conditioning tensor (batched and sliced with its cond) and a per-call constant.
CONDRegular = comfy.conds.CONDRegular
CONDConstant = comfy.conds.CONDConstant
ModelPatcher = comfy.model_patcher.ModelPatcher
VAE = comfy.sd.VAE


# --- context windows and guidance patches -----------------------------------------------------------------

#: Subclassed: ``set_step(timestep, model_options)`` finds the step in ``transformer_options["sample_sigmas"]``
#: (uniform schedules need it); ``get_context_windows(model, x_in, model_options)`` returns the windows;
#: ``__init__(context_schedule, fuse_method, context_length, context_overlap, context_stride, closed_loop, dim)``.
ContextHandler = comfy.context_windows.IndexListContextHandler
#: Subclassed: ``get_tensor(full, device=None, dim=None)`` slices ``full`` along ``dim`` (the handler fetches
#: the per-sample timestep with ``dim=0``); ``index_list`` and ``dim`` attributes.
ContextWindow = comfy.context_windows.IndexListContextWindow


def context_schedule(name: str) -> Any:
    """A schedule of ``comfy.context_windows`` by its Combo name (``get_matching_context_schedule``)."""
    return comfy.context_windows.get_matching_context_schedule(name)


def context_fuse_method(name: str) -> Any:
    """A fuse method of ``comfy.context_windows`` by its Combo name (``get_matching_fuse_method``)."""
    return comfy.context_windows.get_matching_fuse_method(name)


def use_context_windows(model: Any, handler: Any) -> None:
    """Make ``calc_cond_batch`` evaluate ``model`` (a clone) window by window: ``model_options["context_handler"]``,
    and the PREPARE_SAMPLING wrapper that sizes the load-time memory estimate for one window
    (``create_prepare_sampling_wrapper``), as core Context Windows (Manual) does."""
    model.model_options["context_handler"] = handler
    comfy.context_windows.create_prepare_sampling_wrapper(model)


def add_post_cfg_function(model: Any, function: Callable) -> None:
    """``ModelPatcher.set_model_sampler_post_cfg_function``: ``function(args)`` gets ``args["denoised"]`` (x0
    after guidance, the whole latent) and returns the x0 the sampler steps with."""
    model.set_model_sampler_post_cfg_function(function)


# --- model building and memory ----------------------------------------------------------------------------

def load_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def offload_device() -> torch.device:
    return comfy.model_management.unet_offload_device()


def intermediate_device() -> torch.device:
    """Where node outputs live between nodes."""
    return comfy.model_management.intermediate_device()


def storage_dtype(state_dict: dict[str, torch.Tensor], supported: list[torch.dtype]) -> torch.dtype:
    """The weight dtype ComfyUI picks for this device and file (``unet_dtype(model_params=, supported_dtypes=,
    weight_dtype=)``, with ``comfy.utils.calculate_parameters`` / ``weight_dtype``)."""
    return comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(state_dict),
        supported_dtypes=supported,
        weight_dtype=comfy.utils.weight_dtype(state_dict),
    )


def manual_cast_dtype(weight_dtype: torch.dtype, device: torch.device, supported: list[torch.dtype]) -> torch.dtype | None:
    """The compute dtype for weights stored as ``weight_dtype`` (None: compute in the storage dtype)."""
    return comfy.model_management.unet_manual_cast(weight_dtype, device, supported)


def throw_if_interrupted() -> None:
    """Raises ComfyUI's interruption exception once the user pressed Cancel (or ``POST /interrupt``)."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def load_models(patchers: list, memory_required: int, force_full_load: bool) -> None:
    """``load_models_gpu(models, memory_required=, force_full_load=)``: make room and load."""
    comfy.model_management.load_models_gpu(patchers, memory_required=memory_required, force_full_load=force_full_load)


def has_easycache_wrapper(transformer_options: dict) -> bool:
    """Core EasyCache is among the ``DIFFUSION_MODEL`` wrappers of this model call (``get_all_wrappers``; its
    forward wrapper is ``easycache_forward_wrapper``, which reads ``transformer_options["uuids"]``)."""
    wrappers = comfy.patcher_extension.get_all_wrappers(
        comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options
    )
    return any(getattr(wrapper, "__name__", "") == "easycache_forward_wrapper" for wrapper in wrappers)


def run_diffusion_model_wrappers(function: Callable, owner: Any, transformer_options: dict, *args, **kwargs):
    """Run ``function`` inside the ``DIFFUSION_MODEL`` wrappers registered in ``transformer_options``
    (``WrapperExecutor.new_class_executor(fn, owner, wrappers).execute(*args)``), as core models do."""
    wrappers = comfy.patcher_extension.get_all_wrappers(
        comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options
    )
    return comfy.patcher_extension.WrapperExecutor.new_class_executor(function, owner, wrappers).execute(
        *args, **kwargs
    )


@dataclass(frozen=True)
class SamplingSetup:
    """What a sampling run of a MODEL will use, as far as our checks need it."""

    conds: dict  # {name: [cond dicts]}; an applied ControlNet / T2I-Adapter is under "control"
    sampler_functions: list  # every sampler cfg / pre-cfg / post-cfg / calc_cond_batch function
    transformer_options: dict
    flow_prediction: bool  # the model sampling predicts a flow (ModelSamplingSD3, ...), not noise
    compiled: bool  # TorchCompileModel will compile the diffusion model at the first step
    device: torch.device  # where the model runs
    easycache: bool  # core EasyCache wraps the diffusion model
    negative_pass: bool  # the negative (uncond) conditioning runs too: cfg is not 1, or a node keeps it at 1
    model_options: dict  # the guider's, as they are (a check that adapts them returns a changed copy)
    latent_shape: tuple  # the noise being sampled, [videos, C, frames, h, w] for Cinemo
    window_frames: int | None  # frames per context window (``model_options["context_handler"]``), or None
    memory_required: Callable  # the model's ``memory_required(input_shape)``: bytes of one step's activations


def add_sampling_check(patcher: Any, key: str, check: Callable[[SamplingSetup], dict | None]) -> None:
    """Run ``check`` before each sampling run of ``patcher`` and its clones: an ``OUTER_SAMPLE`` wrapper
    (``add_wrapper_with_key``), whose executor's ``class_obj`` is the guider with ``model_options``
    (``sampler_cfg_function``, ``sampler_pre_cfg_function``, ``sampler_post_cfg_function``,
    ``sampler_calc_cond_batch_function``, ``transformer_options``, and the settings ``set_torch_compile_wrapper``
    keeps under ``TORCH_COMPILE_KWARGS``), ``conds``, ``cfg`` and ``model_patcher`` (``get_all_wrappers``).
    ``args[0]`` of ``outer_sample`` is the noise (its shape is the latent's). When ``check`` returns model
    options, the run uses them (``CFGGuider.outer_sample`` reads
    ``self.model_options``); the guider's own are put back afterwards."""

    def wrapper(executor, *args, **kwargs):
        guider = executor.class_obj
        options = guider.model_options
        functions = [options.get("sampler_cfg_function"), options.get("sampler_calc_cond_batch_function")]
        functions += list(options.get("sampler_pre_cfg_function", ())) + list(options.get("sampler_post_cfg_function", ()))
        model_sampling = guider.model_patcher.get_model_object("model_sampling")
        adapted = check(SamplingSetup(
            conds=guider.conds, sampler_functions=[f for f in functions if f is not None],
            transformer_options=options.get("transformer_options", {}),
            flow_prediction=isinstance(model_sampling, comfy.model_sampling.CONST),
            compiled=options.get(TORCH_COMPILE_KWARGS) is not None, device=guider.model_patcher.load_device,
            easycache=any(getattr(wrapper, "__name__", "") == "easycache_forward_wrapper" for wrapper in
                          guider.model_patcher.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL)),
            negative_pass=not math.isclose(getattr(guider, "cfg", 1.0), 1.0)
            or bool(options.get("disable_cfg1_optimization", False)),
            model_options=options,
            latent_shape=tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else (),
            window_frames=getattr(options.get("context_handler"), "context_length", None),
            memory_required=guider.model_patcher.model.memory_required,
        ))
        if adapted is None:
            return executor(*args, **kwargs)
        guider.model_options = adapted
        try:
            return executor(*args, **kwargs)
        finally:
            guider.model_options = options

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, key, wrapper)


def add_sampled_latent_function(patcher: Any, key: str, function: Callable) -> None:
    """Let ``function(samples, latent_image, denoise_mask) -> samples`` finish every sampling run of ``patcher``
    and its clones: a ``SAMPLER_SAMPLE`` wrapper (``add_wrapper_with_key``) around ``KSAMPLER.sample``, whose
    arguments are ``(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)``
    with the latent and the prepared mask (``prepare_mask``: the noise's shape) in the model's space, and whose
    result is the sample before ``process_latent_out``."""

    def wrapper(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                disable_pbar=False):
        samples = executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        return function(samples, latent_image, denoise_mask)

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, key, wrapper)


def add_sampling_run_function(patcher: Any, key: str, prepare: Callable) -> None:
    """Let ``prepare(positive, model_options, model) -> finish | None`` set up every sampling run of ``patcher``
    and its clones, from a ``SAMPLER_SAMPLE`` wrapper like :func:`add_sampled_latent_function`'s.

    ``positive`` is the guider's processed positive conds (``guider.conds["positive"]``: each dict keeps the
    conditioning's own keys), ``model_options`` this run's copy (``extra_args["model_options"]``, made by
    ``create_model_options_clone``: a function added to its ``sampler_post_cfg_function`` list, replaced by a
    new list, applies to this run only), ``model`` the ``BaseModel`` (``process_latent_in``). ``finish(samples)``
    gets the sample in the model's space before ``process_latent_out``. Wrappers run in the order they were
    added, the first outermost: a finish added later runs earlier.
    """

    def wrapper(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                disable_pbar=False):
        finish = prepare(guider.conds.get("positive") or [], extra_args["model_options"], guider.inner_model)
        samples = executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        return samples if finish is None else finish(samples)

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, key, wrapper)


def post_cfg_functions(model_options: dict) -> list[Callable]:
    """The ``sampler_post_cfg_function`` list of ``model_options`` (empty if none)."""
    return list(model_options.get("sampler_post_cfg_function", []))


def with_post_cfg_function(model_options: dict, function: Callable) -> None:
    """Append ``function`` to ``model_options``' post-CFG functions (a new list: the patcher's stays as it was)."""
    model_options["sampler_post_cfg_function"] = [*post_cfg_functions(model_options), function]


def activation_memory_budget(device: torch.device) -> int:
    """Bytes a device can give to one step's activations at best, with every weight offloaded:
    ``get_total_memory(device)`` less ComfyUI's ``extra_reserved_memory()``."""
    return int(comfy.model_management.get_total_memory(device)) - int(comfy.model_management.extra_reserved_memory())


def closure_values(function: Any) -> dict[str, Any]:
    """The variables a closure captured, by name (``__code__.co_freevars`` with ``__closure__``): core patch
    nodes keep their widget values there (SelfAttentionGuidance's ``scale`` and ``blur_sigma``)."""
    code, cells = getattr(function, "__code__", None), getattr(function, "__closure__", None) or ()
    names = code.co_freevars if code is not None else ()
    values = {}
    for name, cell in zip(names, cells):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
    return values


def calc_cond_batch(model: Any, conds: list, x: torch.Tensor, sigma: torch.Tensor, model_options: dict) -> list:
    """``comfy.samplers.calc_cond_batch``: the model's denoised prediction for each conditioning list in
    ``conds`` (what a post-cfg function gets as ``args["uncond"]``), at ``x`` and ``sigma``."""
    return comfy.samplers.calc_cond_batch(model, conds, x, sigma, model_options)


def model_cond(conds: list | None, key: str) -> torch.Tensor | None:
    """The tensor a model's ``extra_conds`` put under ``key`` (a ``CONDRegular``) in the first entry of a
    processed conditioning list (``entry["model_conds"][key].cond``), or None."""
    entry = (conds or [None])[0]
    value = (entry or {}).get("model_conds", {}).get(key)
    return getattr(value, "cond", None)


def defining_node(function: Any) -> str | None:
    """The node class a patch function comes from: core nodes define them as closures in a method, so the
    qualified name starts with the class name (``SelfAttentionGuidance.execute.<locals>.post_cfg_function``);
    ComfyUI loads ``comfy_extras`` under file-path module names, so the module says less."""
    qualname = getattr(function, "__qualname__", "")
    return qualname.split(".", 1)[0] if ".<locals>." in qualname else None


# --- attention --------------------------------------------------------------------------------------------

def attention_kernel(device: torch.device, masked: bool) -> Callable:
    """ComfyUI's attention for the inputs at hand. Called as ``kernel(q, k, v, heads, mask=, skip_reshape=True,
    transformer_options=)`` with ``[B, heads, N, D]`` inputs, it returns ``[B, N, heads * D]`` on every path.
    Masked inputs (the temporal bias) are tiny per query: ``optimized_attention_for_device(mask=True,
    small_input=True)`` picks the kernel for them."""
    if not masked:
        return _attention.optimized_attention
    return _attention.optimized_attention_for_device(device, mask=True, small_input=True)


def attention_is_memory_efficient() -> bool:
    """False when ComfyUI's attention materialises score blocks (sub-quadratic, split or basic attention),
    which the step-memory estimate must count."""
    quadratic = (_attention.attention_sub_quad, _attention.attention_split, _attention.attention_basic)
    return _attention.optimized_attention not in quadratic


# --- sampling ---------------------------------------------------------------------------------------------

def sampler_names() -> list[str]:
    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    return list(comfy.samplers.KSampler.SCHEDULERS)


def scheduler_sigmas(model: Any, steps: int, sampler_name: str, scheduler: str) -> torch.Tensor:
    """``KSampler(model, steps=, device=, sampler=, scheduler=, denoise=1.0).sigmas``: the sampler matters, as
    some (dpm_2, uni_pc, ...) drop the penultimate sigma."""
    return comfy.samplers.KSampler(
        model, steps=steps, device=model.load_device, sampler=sampler_name, scheduler=scheduler, denoise=1.0
    ).sigmas


def fit_latent_channels(model: Any, latent: torch.Tensor) -> torch.Tensor:
    """``comfy.sample.fix_empty_latent_channels``: an all-zero latent with the wrong channel count is remade
    with the model's (as core samplers do)."""
    return comfy.sample.fix_empty_latent_channels(model, latent)


def sample_with_guidance(
    model: Any, positive: list, negative: list, cfg: float, noise: torch.Tensor, latent: torch.Tensor,
    sampler: str | Any, sigmas: torch.Tensor, seed: int, denoise_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """What ``SamplerCustomAdvanced`` with a ``CFGGuider`` does: ``CFGGuider(model).set_conds/set_cfg`` and
    ``sample(noise, latent, sampler, sigmas, denoise_mask=, callback=, disable_pbar=, seed=)`` with a SAMPLER
    (or one by name: ``sampler_object(name)``), previews and progress from
    ``latent_preview.prepare_callback(model, steps)``."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    if isinstance(sampler, str):
        sampler = comfy.samplers.sampler_object(sampler)
    return guider.sample(
        noise, latent, sampler, sigmas, denoise_mask=denoise_mask,
        callback=latent_preview.prepare_callback(model, sigmas.shape[-1] - 1),
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
    )


def custom_sampler(function: Callable) -> Any:
    """A SAMPLER running ``function(model, x, sigmas, extra_args=, callback=, disable=)`` as ComfyUI runs its
    k-diffusion samplers (``comfy.samplers.KSAMPLER``): ``model(x, sigma * ones, **extra_args)`` returns the
    denoised latent, ``x`` starts at the latent plus ``noise * sigmas[0]`` (EPS models, ``sigmas[0]`` below
    sigma_max), and ``callback({"x", "i", "sigma", "sigma_hat", "denoised"})`` drives progress and previews."""
    return comfy.samplers.KSAMPLER(function)


def conditioning_with(conditioning: list, values: dict) -> list:
    """A copy of a CONDITIONING with ``values`` set on every entry (``node_helpers.conditioning_set_values``)."""
    return node_helpers.conditioning_set_values(conditioning, values)


class ProgressBar:
    """The UI progress bar of the running node (``comfy.utils.ProgressBar(total).update(n)``)."""

    def __init__(self, total: int) -> None:
        self._bar = comfy.utils.ProgressBar(total)

    def update(self, done: int = 1) -> None:
        self._bar.update(done)


# --- files ------------------------------------------------------------------------------------------------

def models_dir() -> str:
    return folder_paths.models_dir


def register_model_folder(name: str, path: str, extensions: set[str]) -> None:
    """Add ``path`` to model folder ``name`` (created if new) in ``folder_paths.folder_names_and_paths``,
    a ``{name: ([paths], {extensions})}`` dict; paths users added in extra_model_paths.yaml are kept."""
    if name in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[name]
        if path not in paths:
            paths.append(path)
    else:
        folder_paths.folder_names_and_paths[name] = ([path], set(extensions))


def model_folder_paths(name: str) -> list[str]:
    """The directories of model folder ``name`` (``folder_paths.get_folder_paths``); none if unregistered."""
    if name not in folder_paths.folder_names_and_paths:
        return []
    return folder_paths.get_folder_paths(name)


# --- VAEs -------------------------------------------------------------------------------------------------

def has_temporal_decoder(vae: Any) -> bool:
    """True when ``VAE.first_stage_model.decoder`` is ComfyUI's ``VideoDecoder`` (SVD's temporal decoder), which
    ``comfy.sd.VAE(sd=)`` builds from SGM keys with ``decoder.mid.block_1.mix_factor``."""
    return isinstance(getattr(getattr(vae, "first_stage_model", None), "decoder", None), VideoDecoder)


def decode_as_one_clip(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Decode ``[F, C, h, w]`` latents as one clip with the temporal decoder, which takes the clip length from
    the batch (``first_stage_model.decode(z)``; passing ``timesteps=`` fails in 0.3.64, as the mid attention
    block takes no keywords), and post-process like ``VAE.decode`` (``process_output``, ``vae_dtype``,
    ``device``, ``output_device``) -> ``[F, 3, H, W]`` in 0..1."""
    decoded = vae.first_stage_model.decode(latents.to(device=vae.device, dtype=vae.vae_dtype))
    return vae.process_output(decoded.to(vae.output_device).float())


def load_vae_for_decoding(vae: Any, latent_shape: tuple, frames: int) -> None:
    """Load the VAE with room for decoding ``frames`` frames at once (``memory_used_decode`` is per frame)."""
    memory = vae.memory_used_decode(latent_shape, vae.vae_dtype) * frames
    load_models([vae.patcher], memory, vae.disable_offload)


def encode_images(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``VAE.encode(pixels)``: IMAGE ``[N, H, W, 3]`` in 0..1 -> unscaled latents (the posterior mean), in at
    least float32. ``VAE.encode`` computes in ``vae.vae_dtype`` (bf16 on recent NVIDIA cards); for the call,
    that attribute and every part of ``first_stage_model`` but its ``decoder`` are made float32, then restored
    (bf16/fp16 -> float32 -> bf16/fp16 is exact)."""
    dtype = vae.vae_dtype
    if dtype in (torch.float32, torch.float64):
        return vae.encode(pixels)
    load_models([vae.patcher], 0, vae.disable_offload)  # placed first, so that loading does not undo the cast
    parts = [module for name, module in vae.first_stage_model.named_children() if name != "decoder"]
    try:
        vae.vae_dtype = torch.float32
        for part in parts:
            part.to(torch.float32)
        return vae.encode(pixels)
    finally:
        for part in parts:
            part.to(dtype)
        vae.vae_dtype = dtype


def decode_images(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """``VAE.decode(latents)``: frame by frame for an image VAE -> IMAGE ``[N, H, W, 3]``."""
    return vae.decode(latents)


def vae_latent_layout(vae: Any) -> tuple[int, int]:
    """``(latent_channels, latent_dim)`` of a loaded VAE (``latent_dim`` 2 for image VAEs), after
    ``throw_exception_if_invalid()`` has rejected a VAE that failed to load."""
    vae.throw_exception_if_invalid()
    return vae.latent_channels, vae.latent_dim
