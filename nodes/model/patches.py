"""ComfyUI's model patches applied at the Cinemo UNet's hook points, with ComfyUI's bookkeeping.

Cinemo's UNet has the SD-1.x block layout, so the ``transformer_options`` patches and ``patches_replace`` of
core nodes (FreeU, PAG, ToMe, HyperTile...) and attention-replacing packs apply where ComfyUI's SD-1.x UNet
applies them, numbered as its blocks are. Frames are folded into the batch inside the UNet, so a patch sees
what it sees on an SD-1.x UNet run over frames: activations ``[(B F), C, H, W]`` with F counting the first
frame, tokens ``[(B F), N, C]``, one text context per frame, ``original_shape`` ``[(B F), C, h, w]``.
What has no place in this model fails with a message naming it rather than being ignored.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ...cinemo_core.model.layers.hooks import AttentionKind, Stage, UNetHooks
from ...cinemo_core.model.memory import check_step_fits
from ..comfy_compat import SamplingSetup, activation_memory_budget, defining_node, has_easycache_wrapper
from .sag import adapt_self_attention_guidance

#: ``transformer_options["patches"]`` kinds applied, with the call each gets.
SUPPORTED_PATCHES = (
    "emb_patch",  # emb = p(emb, model_channels, transformer_options), before the motion embedding is added
    "input_block_patch",  # h = p(h, transformer_options), before the skip is kept
    "input_block_patch_after_skip",  # h = p(h, transformer_options)
    "middle_block_patch",  # h = p(h, transformer_options), after the middle block
    "output_block_patch",  # h, skip = p(h, skip, transformer_options)
    "attn1_patch",  # n, context, value = p(n, context, value, extra_options)
    "attn1_output_patch",  # n = p(n, extra_options)
    "middle_patch",  # x = p(x, extra_options), after the self-attention residual
    "attn2_patch",
    "attn2_output_patch",
)
#: ``transformer_options["patches_replace"]`` kinds applied: ``{kind: {(block, id[, index]): fn(q, k, v, extra)}}``.
SUPPORTED_REPLACEMENTS = ("attn1", "attn2")
_NOT_EXTRA_OPTIONS = ("patches", "patches_replace")


def describe_patch(patch: Any) -> str:
    """The function or object behind a patch as its qualified name, which starts with the node class for
    patches made in a node's ``execute``/``patch`` method (``SkipLayerGuidanceDiT.execute.<locals>.skip``)."""
    name = getattr(patch, "__qualname__", None) or type(patch).__qualname__
    module = getattr(patch, "__module__", None) or type(patch).__module__ or ""
    return f"{name} (from {module.rsplit('/', 1)[-1].rsplit('.', 1)[-1]})" if module else name


def _all_finite(values: Any) -> torch.Tensor | None:
    """A 0-dim bool tensor, True when every tensor in ``values`` is finite; computed without a device sync."""
    tensors = [v for v in (values if isinstance(values, (tuple, list)) else (values,)) if isinstance(v, torch.Tensor)]
    if not tensors:
        return None
    return torch.stack([torch.isfinite(t).all().to(tensors[0].device) for t in tensors]).all()


def _first_patch(value: Any) -> Any:
    if isinstance(value, dict):
        return next(iter(value.values()), None)
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def check_patches_are_supported(transformer_options: dict) -> None:
    """Raise ``ValueError`` naming the first patch kind the Cinemo UNet has no place for."""
    for group, supported in (("patches", SUPPORTED_PATCHES), ("patches_replace", SUPPORTED_REPLACEMENTS)):
        for kind, value in (transformer_options.get(group) or {}).items():
            if kind in supported or not value:
                continue
            raise ValueError(
                f"The MODEL carries a '{kind}' {group} entry ({describe_patch(_first_patch(value))}), which the "
                f"Cinemo UNet has no place for: it is an SD-1.x-style UNet (down, middle and up blocks of ResNets "
                f"and transformers), not a DiT or another architecture. Remove the node that adds it. Supported: "
                f"{', '.join(SUPPORTED_PATCHES)}, and attention replacements {', '.join(SUPPORTED_REPLACEMENTS)}."
            )


def run_passes_separately(
    forward: Callable, x: torch.Tensor, transformer_options: dict, *args: Any, **kwargs: Any
) -> torch.Tensor | None:
    """With core EasyCache on a batched model call (positive and negative as one batch), ``forward`` once per
    pass, each with its own ``uuids`` and ``cond_or_uncond``; None when the call needs no split.

    ComfyUI 0.3.64's EasyCache keeps a cached change per pass but adds every pass's change to the whole batch on
    a skipped step; given one pass per call it adds each pass's own. Tensors batched like ``x`` in ``args`` and
    ``kwargs`` are split with it.
    """
    uuids = list(transformer_options.get("uuids") or ())
    passes = len(uuids)
    if passes < 2 or x.shape[0] % passes or not has_easycache_wrapper(transformer_options):
        return None
    size = x.shape[0] // passes
    cond_or_uncond = list(transformer_options.get("cond_or_uncond") or [None] * passes)

    def part(value: Any, index: int) -> Any:
        batched = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == x.shape[0]
        return value[index * size : (index + 1) * size] if batched else value

    outputs = []
    for index in range(passes):
        options = dict(transformer_options, uuids=[uuids[index]], cond_or_uncond=[cond_or_uncond[index]])
        outputs.append(forward(
            part(x, index), *(part(a, index) for a in args), transformer_options=options,
            **{key: part(value, index) for key, value in kwargs.items()},
        ))
    return torch.cat(outputs)


class ComfyPatchHooks(UNetHooks):
    """Runs the patches of one model call's ``transformer_options`` and keeps its keys as ComfyUI's UNet does
    (``original_shape``, ``transformer_index``, ``block``, ``block_index``, ``activations_shape``)."""

    def __init__(self, transformer_options: dict, model_channels: int) -> None:
        check_patches_are_supported(transformer_options)
        self.options = transformer_options
        self.patches: dict[str, list[Callable]] = transformer_options.get("patches") or {}
        self.replacements: dict[str, dict] = transformer_options.get("patches_replace") or {}
        self.model_channels = model_channels
        self._extra: dict | None = None
        self._heads_from: nn.Module | None = None
        # (patch, kind, where, shape, inputs finite, outputs finite) per call: flags stay on the device and are
        # read only when the UNet's output is not finite, to name the patch that made it so
        self._trace: list[tuple[Any, str, Any, list[int], torch.Tensor | None, torch.Tensor | None]] = []

    def _call(self, kind: str, patch: Callable, *args: Any) -> Any:
        """``patch(*args)``, noting whether it turned finite tensors into NaN or infinity."""
        before = _all_finite(args)  # before the call: patches such as FreeU's change their input in place
        result = patch(*args)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        shape = list(first.shape) if first is not None else []
        self._trace.append((patch, kind, self.options.get("block"), shape, before, _all_finite(result)))
        return result

    def non_finite_patch(self) -> str | None:
        """The first patch call of this forward whose inputs were finite and whose outputs were not, described."""
        for patch, kind, block, shape, before, after in self._trace:
            if before is not None and after is not None and bool(before) and not bool(after):
                where = f" in {block[0]} block {block[1]}" if block else ""
                return f"the model patch {describe_patch(patch)} ({kind}{where}, on {shape})"
        return None

    def _apply(self, kind: str, value: torch.Tensor) -> torch.Tensor:
        for patch in self.patches.get(kind, ()):
            value = self._call(kind, patch, value, self.options)
        return value

    def unet_started(self, frames_shape: torch.Size) -> None:
        self.options["original_shape"] = list(frames_shape)
        self.options["transformer_index"] = 0

    def time_embedding(self, emb: torch.Tensor) -> torch.Tensor:
        for patch in self.patches.get("emb_patch", ()):
            emb = self._call("emb_patch", patch, emb, self.model_channels, self.options)
        return emb

    def block_started(self, stage: Stage, index: int) -> None:
        self.options["block"] = (stage, index)

    def input_block_finished(self, h: torch.Tensor) -> torch.Tensor:
        return self._apply("input_block_patch", h)

    def skip_kept(self, h: torch.Tensor) -> torch.Tensor:
        return self._apply("input_block_patch_after_skip", h)

    def middle_block_finished(self, h: torch.Tensor) -> torch.Tensor:
        return self._apply("middle_block_patch", h)

    def output_block_inputs(self, h: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for patch in self.patches.get("output_block_patch", ()):
            h, skip = self._call("output_block_patch", patch, h, skip, self.options)
        return h, skip

    def transformer_started(self, shape: torch.Size) -> None:
        self.options["activations_shape"] = list(shape)

    def transformer_block_started(self, index: int) -> None:
        self.options["block_index"] = index
        self._extra = None

    def transformer_finished(self) -> None:
        if "transformer_index" in self.options:
            self.options["transformer_index"] += 1

    def _extra_options(self) -> dict:
        """ComfyUI's ``extra_options``: the call's options without the patches, with the attention's head
        layout; one dict per transformer block, shared by its patches."""
        if self._extra is None:
            extra = {key: value for key, value in self.options.items() if key not in _NOT_EXTRA_OPTIONS}
            heads = self._heads_from.heads
            extra["n_heads"] = heads
            extra["dim_head"] = self._heads_from.to_q.out_features // heads
            extra["attn_precision"] = None
            self._extra = extra
        return self._extra

    def _replacement(self, kind: str) -> Callable | None:
        replacements = self.replacements.get(kind)
        block = self.options.get("block")
        if not replacements or block is None:
            return None
        in_block = (block[0], block[1], self.options.get("block_index", 0))
        return replacements.get(in_block) or replacements.get(block)

    def attention(
        self,
        kind: AttentionKind,
        module: nn.Module,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_repeats: int = 1,
    ) -> torch.Tensor:
        self._heads_from = module
        name = "attn1" if kind == "self" else "attn2"
        before = self.patches.get(f"{name}_patch", ())
        after = self.patches.get(f"{name}_output_patch", ())
        replacement = self._replacement(name)
        if not before and not after and replacement is None:
            return module(x, context, context_repeats)

        extra = self._extra_options()
        if context is not None and context_repeats > 1:
            context = context.repeat_interleave(context_repeats, dim=0)  # ComfyUI's layout: a context per frame
        value = None
        if before:
            if context is None:
                context = x
            value = context
            for patch in before:
                x, context, value = self._call(f"{name}_patch", patch, x, context, value, extra)
        if replacement is not None:
            context = x if context is None else context
            value = context if value is None else value
            attended = self._call(
                f"{name} replacement", replacement, module.to_q(x), module.to_k(context), module.to_v(value), extra
            )
            out = module.to_out[0](attended)
        else:
            out = module(x, context, value=value)
        for patch in after:
            out = self._call(f"{name}_output_patch", patch, out, extra)
        return out

    def self_attention_added(self, x: torch.Tensor) -> torch.Tensor:
        for patch in self.patches.get("middle_patch", ()):
            x = self._call("middle_patch", patch, x, self._extra_options())
        return x


_SKIP_LAYERS = (
    "Skip Layer Guidance (SkipLayerGuidanceDiT, SkipLayerGuidanceDiTSimple, SkipLayerGuidanceSD3)",
    "it skips layers of DiT models (SD3, Flux...), and Cinemo is a UNet",
)
_VIDEO_CFG = (
    "it ramps the guidance over the batch, which holds SVD's frames but Cinemo's videos (a clip's frames are "
    "inside one sample); set cfg on the sampler instead"
)
#: Core nodes whose sampler functions cannot work on Cinemo: the class defining them -> (what to call it, why).
INCOMPATIBLE_NODES = {
    "SkipLayerGuidanceDiT": _SKIP_LAYERS,
    "SkipLayerGuidanceDiTSimple": _SKIP_LAYERS,
    "VideoLinearCFGGuidance": ("VideoLinearCFGGuidance", _VIDEO_CFG),
    "VideoTriangleCFGGuidance": ("VideoTriangleCFGGuidance", _VIDEO_CFG),
    "RenormCFG": (
        "RenormCFG", "it is made for Lumina 2 and combines the denoised outputs as that model's raw prediction"
    ),
}


def check_sampling_setup(setup: SamplingSetup) -> dict | None:
    """What cannot work with Cinemo, found before the first step. Raises ``ValueError`` naming the node.

    Returns the model options to sample with instead of the guider's (core Self-Attention Guidance swapped for
    Cinemo's, ``sag.py``), or None to keep them.
    """
    for name, entries in setup.conds.items():
        if any(entry.get("control") is not None for entry in entries or ()):
            raise ValueError(
                f"The {name} conditioning carries a ControlNet (or T2I-Adapter, from an Apply ControlNet node). "
                "ControlNets add residuals made for the latents of frames, but the Cinemo UNet denoises a motion "
                "residual relative to the first frame, so they cannot apply. Remove the Apply ControlNet node "
                "between Cinemo Conditioning and the sampler."
            )
    for function in setup.sampler_functions:
        node = defining_node(function)
        if node in INCOMPATIBLE_NODES:
            name, reason = INCOMPATIBLE_NODES[node]
            raise ValueError(f"{name} cannot run on Cinemo: {reason}. Remove that node from the MODEL's path.")
    if setup.flow_prediction:
        raise ValueError(
            "The MODEL's sampling was set to flow matching (ModelSamplingSD3, ModelSamplingAuraFlow, "
            "ModelSamplingFlux or ModelSamplingLTXV), but Cinemo predicts noise (eps). Remove that node, or use "
            "ModelSamplingDiscrete with 'eps'."
        )
    if setup.compiled and setup.device.type == "cpu":
        raise ValueError(
            "TorchCompileModel on the CPU: it does not pay off for Cinemo there (measured on the tiny test model: "
            "the first step compiles for 4.5 minutes, and the compiled steps were no faster than without it, "
            "because ComfyUI's CPU attention asks for free memory at each call, which splits the model into ~60 "
            "graphs), so the first step would seem to hang. Remove the TorchCompileModel node when running on the CPU."
        )
    check_patches_are_supported(setup.transformer_options)
    check_memory(setup)
    return adapt_self_attention_guidance(setup.model_options)


def check_memory(setup: SamplingSetup) -> None:
    """Refuse a run whose single pass (one conditioning, the whole batch of videos) cannot fit on the device
    even with every weight offloaded, with the estimate and what to change (``StepTooLargeError``)."""
    if len(setup.latent_shape) != 5:
        return
    videos, channels, frames, height, width = setup.latent_shape
    check_step_fits(
        lambda f, h, w: setup.memory_required([videos, channels, f, h, w]), frames, height, width,
        activation_memory_budget(setup.device), videos=videos, window_frames=setup.window_frames,
        device=str(setup.device),
    )
