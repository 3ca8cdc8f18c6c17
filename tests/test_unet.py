"""The Cinemo UNet computes what the official implementation computes."""

import json
import math
import types

import pytest
import torch
from golden_case import FIXTURES, relative_error, run_unet
from torch import nn

from cinemo_core import CinemoUNet3D, CinemoUNetConfig
from cinemo_core.model.layers.attention import RotaryEmbedding, relative_position_buckets


def test_golden_forward_fp32(tiny_unet, golden):
    out = run_unet(tiny_unet, golden)
    assert out.shape == golden["out"].shape
    assert out.dtype == torch.float32
    assert relative_error(out, golden["out"]) <= 1e-5


def test_batch_of_two_equals_two_batches_of_one(tiny_unet, golden):
    sample = torch.stack([golden["sample"][0], golden["sample"][0].flip(-1) * 0.5])
    context = torch.cat([golden["encoder_hidden_states"], golden["negative_encoder_hidden_states"]])
    base = torch.cat([golden["base_content"], -golden["base_content"]])
    timesteps = torch.tensor([741, 20])
    motion = torch.tensor([8.0, 95.0])
    with torch.inference_mode():
        both = tiny_unet(sample, timesteps, context, base_content=base, motion_ids=motion)
        singles = [
            tiny_unet(sample[i : i + 1], timesteps[i : i + 1], context[i : i + 1], base_content=base[i : i + 1], motion_ids=motion[i : i + 1])
            for i in range(2)
        ]
    for i in range(2):
        assert relative_error(both[i : i + 1], singles[i]) <= 1e-5
    assert relative_error(singles[0], singles[1]) > 1e-2  # the two samples really differ


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_close_to_fp32(tiny_a_dir, golden, dtype):
    from cinemo_core import load_unet

    unet = load_unet(tiny_a_dir, dtype=dtype)
    assert unet.dtype == dtype
    out = run_unet(unet, golden, dtype=dtype)
    assert out.dtype == dtype
    error = relative_error(out, golden["out"])
    print(f"{dtype}: relative error vs golden fp32 = {error:.2e}")
    assert torch.isfinite(out).all()
    assert error <= 5e-2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_channels_last_activations_change_only_the_rounding(tiny_a_dir, golden, dtype):
    """Half precision on the CPU runs channels-last (the fast layout there); the contiguous path it replaces
    gives the same result up to rounding, and both stay as close to the fp32 golden."""
    from cinemo_core import load_unet

    unet = load_unet(tiny_a_dir, dtype=dtype)
    outputs = {}
    for channels_last in (True, False):
        unet.channels_last = channels_last
        outputs[channels_last] = run_unet(unet, golden, dtype=dtype)
    half_ulp = 2.0 ** -(8 if dtype == torch.bfloat16 else 11)
    assert relative_error(outputs[True], outputs[False]) <= 8 * half_ulp
    assert all(relative_error(out, golden["out"]) <= 5e-2 for out in outputs.values())


def test_channels_last_is_the_default_only_for_half_precision_on_the_cpu():
    from cinemo_core.model.layers.layout import activation_format

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert activation_format(cpu, torch.bfloat16) == activation_format(cpu, torch.float16) == torch.channels_last
    assert activation_format(cpu, torch.float32) == activation_format(cuda, torch.bfloat16) == torch.contiguous_format
    assert activation_format(cpu, torch.float32, channels_last=True) == torch.channels_last


@pytest.mark.parametrize("timestep", [741, 741.0, torch.tensor(741), torch.tensor([741.0])])
def test_timestep_forms_agree(tiny_unet, golden, timestep):
    with torch.inference_mode():
        out = tiny_unet(
            golden["sample"], timestep, golden["encoder_hidden_states"],
            base_content=golden["base_content"], motion_ids=8,
        )
    assert relative_error(out, golden["out"]) <= 1e-5


def test_host_keyword_arguments_are_ignored(tiny_unet, golden):
    with torch.inference_mode():
        out = tiny_unet(
            golden["sample"], golden["timestep"], context=golden["encoder_hidden_states"],
            base_content=golden["base_content"], motion_ids=golden["motion_bucket_id"],
            control=None, transformer_options={"cond_or_uncond": [1]},
        )
    assert relative_error(out, golden["out"]) <= 1e-5


def test_official_config_has_the_released_keys_and_shapes():
    expected = json.loads((FIXTURES / "cinemo_unet_full_keys.json").read_text())
    state = CinemoUNet3D(CinemoUNetConfig.official(), device="meta").state_dict()
    assert len(expected) == 834
    assert {key: list(value.shape) for key, value in state.items()} == expected
    assert sum(math.prod(shape) for shape in expected.values()) == sum(v.numel() for v in state.values()) == 911_092_996


def test_injected_attention_receives_every_call_and_the_position_bias(tiny_a_dir, golden):
    from cinemo_core import load_unet

    calls = []

    def recording_attention(q, k, v, attn_mask=None):
        calls.append((q.shape, None if attn_mask is None else attn_mask.shape))
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)

    unet = load_unet(tiny_a_dir, attention=recording_attention)
    out = run_unet(unet, golden)
    assert relative_error(out, golden["out"]) <= 1e-5
    # the tiny model has 10 transformers (3 down x 1 layer, 1 mid, 3 up x 2 layers), each with self-,
    # cross- and temporal attention; only the temporal one carries the (1, heads, frames, frames) bias
    assert len(calls) == 10 * 3
    temporal = [mask for _, mask in calls if mask is not None]
    assert len(temporal) == 10 and all(mask == (1, 1, 8, 8) for mask in temporal)


def test_layers_come_from_the_operations_namespace():
    made = []

    def recorded(base):
        class Recorded(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                made.append(self)

        return Recorded

    ops = types.SimpleNamespace(**{name: recorded(getattr(nn, name)) for name in ("Linear", "Conv2d", "GroupNorm", "LayerNorm", "Embedding")})
    unet = CinemoUNet3D(CinemoUNetConfig.tiny(), operations=ops, device="meta")
    parametrised = [m for m in unet.modules() if any(True for _ in m.parameters(recurse=False))]
    assert parametrised and all(m in made for m in parametrised)


def test_relative_position_buckets_match_the_official_table():
    buckets = relative_position_buckets(16, num_buckets=32, max_distance=32)
    assert buckets[0].tolist() == [0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 25, 25, 26, 26, 27, 27]
    assert buckets[15].tolist() == [11, 11, 10, 10, 9, 9, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_rotary_embedding_is_a_complex_rotation_of_the_first_channels():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 5, 40, dtype=torch.float64)
    rotated = RotaryEmbedding(32)(x)
    pairs = torch.view_as_complex(x[..., :32].reshape(3, 2, 5, 16, 2).contiguous())
    freqs = 10000.0 ** (-torch.arange(0, 32, 2, dtype=torch.float64) / 32)
    angle = torch.arange(5, dtype=torch.float64)[:, None] * freqs[None, :]
    expected = torch.view_as_real(pairs * torch.polar(torch.ones_like(angle), angle)).reshape(3, 2, 5, 32)
    assert torch.allclose(rotated[..., :32], expected, atol=1e-6)
    assert torch.equal(rotated[..., 32:], x[..., 32:])


def test_mismatched_first_frame_is_rejected(tiny_unet, golden):
    with pytest.raises(ValueError, match="base_content must have shape"):
        tiny_unet(golden["sample"], 741, golden["encoder_hidden_states"], base_content=golden["base_content"][..., :8], motion_ids=8)


def test_official_output_at_16_frames_batch_2_and_an_odd_latent_size(tiny_unet):
    """Official output at sizes the golden case lacks: 16 frames, batch 2 with different conditions, 9x13."""
    from golden_case import FIXTURES
    from safetensors.torch import load_file

    case = load_file(FIXTURES / "official_tiny_a_16frames_9x13.safetensors")
    with torch.inference_mode():
        out = tiny_unet(
            case["sample"], case["timestep"], case["encoder_hidden_states"],
            base_content=case["base_content"], motion_ids=case["motion_bucket_id"],
        )
    assert out.shape == (2, 4, 15, 9, 13)
    assert relative_error(out, case["out"]) <= 1e-5


class RecordingHooks:
    """Every hook call: (name, block, transformer-block index) and the shape it got."""

    def __init__(self):
        self.calls = []
        self.block = None

    def __getattr__(self, name):
        from cinemo_core.model.layers.hooks import UNetHooks

        default = getattr(UNetHooks(), name)

        def hook(*args):
            if name == "block_started":
                self.block = args
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else tuple(a) for a in args
                      if isinstance(a, (torch.Tensor, torch.Size))]
            self.calls.append((name, self.block, shapes[0] if shapes else None))
            return default(*args)

        return hook


def test_hooks_number_blocks_as_sd1_does():
    """With two layers per level, the layout of SD 1.x: its transformers sit in input blocks 1, 2, 4, 5, 7, 8,
    the middle block and output blocks 3 to 11 (the block ids SD-1.x attention patches are written for)."""
    torch.manual_seed(0)
    unet = CinemoUNet3D(CinemoUNetConfig.tiny().replace(layers_per_block=2))
    hooks = RecordingHooks()
    with torch.inference_mode():
        unet(torch.randn(1, 4, 3, 8, 8), 500, torch.randn(1, 5, 32), base_content=torch.randn(1, 4, 1, 8, 8),
             motion_ids=90, hooks=hooks)
    names = [name for name, _, _ in hooks.calls]
    attention_blocks = [block for name, block, _ in hooks.calls if name == "attention"]
    self_attention = attention_blocks[::2]
    assert self_attention == [("input", i) for i in (1, 2, 4, 5, 7, 8)] + [("middle", 0)] + [
        ("output", i) for i in range(3, 12)]
    assert [block for name, block, _ in hooks.calls if name == "block_started"] == [
        ("input", i) for i in range(12)] + [("middle", 0)] + [("output", i) for i in range(12)]
    assert names.count("input_block_finished") == names.count("skip_kept") == 12
    assert names.count("output_block_inputs") == 12 and names.count("middle_block_finished") == 1
    assert names[:2] == ["unet_started", "time_embedding"]
    assert hooks.calls[0][2] == (4, 4, 8, 8)  # the frame batch: 1 clip x (first frame + 3 residual frames)
    # SD-1.x's output block 2 (the end of the lowest level) upsamples: the next block gets the doubled size
    sizes = {block: shape for name, block, shape in hooks.calls if name == "output_block_inputs"}
    assert sizes[("output", 2)][-2:] == (1, 1) and sizes[("output", 3)][-2:] == (2, 2)
