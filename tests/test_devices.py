"""Choosing the precision: bfloat16 on CPUs that compute it natively, float32 on the others (injected CPUs)."""

import pytest
import torch

from cinemo_core.model.devices import (
    CpuFeatures,
    choose_dtype,
    native_cpu_bf16,
    probe_cpu_features,
    read_cpuinfo_flags,
    resolve_dtype,
)

CPU = torch.device("cpu")


def features(flags=(), torch_flags=(), capability="AVX512", onednn=True, machine="x86_64"):
    return CpuFeatures(
        machine=machine,
        cpuinfo_flags=frozenset(flags),
        torch_bf16_flags=None if torch_flags is None else frozenset(torch_flags),
        aten_capability=capability,
        onednn=onednn,
    )


ZEN4 = features(flags={"avx2", "avx512f", "avx512_bf16"}, torch_flags={"avx512_bf16"})
SAPPHIRE_RAPIDS = features(flags={"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, torch_flags={"avx512_bf16", "amx_bf16"})
ZEN3 = features(flags={"avx2", "fma"}, torch_flags=set(), capability="AVX2")


@pytest.mark.parametrize(
    ("cpu", "expected", "evidence"),
    [
        (ZEN4, torch.bfloat16, "avx512_bf16"),
        (SAPPHIRE_RAPIDS, torch.bfloat16, "amx_bf16"),
        (features(flags={"amx_bf16"}, torch_flags=None), torch.bfloat16, "amx_bf16"),  # older torch: no probe
        (features(flags=(), torch_flags={"avx512_bf16"}), torch.bfloat16, "avx512_bf16"),  # no /proc/cpuinfo
        (ZEN3, torch.float32, "no AVX512-BF16 or AMX"),
        (features(flags=(), torch_flags=None), torch.float32, "no AVX512-BF16 or AMX"),  # nothing known
        (features(flags={"avx512_bf16"}, onednn=False), torch.float32, "no oneDNN"),
        (features(flags={"avx512_bf16"}, capability="AVX2"), torch.float32, "AVX2 kernels"),
        (features(flags={"bf16"}, machine="aarch64"), torch.float32, "only on x86"),
    ],
)
def test_auto_on_the_cpu_uses_bf16_only_where_it_is_native(cpu, expected, evidence):
    choice = choose_dtype("auto", CPU, cpu)
    assert choice.dtype == expected
    assert evidence in choice.reason and choice.reason.startswith("auto on the CPU")
    assert native_cpu_bf16(cpu)[0] == (expected == torch.bfloat16)


@pytest.mark.parametrize("cpu", [ZEN4, ZEN3])
def test_an_explicit_dtype_overrides_auto(cpu):
    assert choose_dtype("fp32", CPU, cpu).dtype == torch.float32
    assert choose_dtype("fp16", CPU, cpu).dtype == torch.float16
    bf16 = choose_dtype("bf16", CPU, cpu)
    assert bf16.dtype == torch.bfloat16 and bf16.reason.startswith("--dtype bf16")
    # asking for bf16 where it is emulated is allowed, and says so
    assert ("emulated" in bf16.reason) == (cpu is ZEN3)


def test_auto_on_a_gpu_is_fp16_whatever_the_cpu():
    assert choose_dtype("auto", torch.device("cuda"), ZEN4).dtype == torch.float16
    assert choose_dtype("auto", torch.device("mps"), ZEN3).dtype == torch.float16


def test_unknown_dtype_is_named():
    with pytest.raises(ValueError, match="Unknown dtype 'int8'"):
        choose_dtype("int8", CPU, ZEN3)


def test_cpuinfo_flags_are_read_from_every_processor(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD Ryzen 9 7950X\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: sysret_ss_attrs\n"
    )
    assert read_cpuinfo_flags(cpuinfo) == {"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    arm = tmp_path / "cpuinfo_arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert read_cpuinfo_flags(arm) == {"fp", "asimd", "bf16", "sve"}
    assert read_cpuinfo_flags(tmp_path / "missing") == frozenset()


def test_this_machine_is_probed_and_auto_follows_the_probe():
    probed = probe_cpu_features()
    assert probed.aten_capability == str(torch.backends.cpu.get_cpu_capability())
    native, _ = native_cpu_bf16(probed)
    assert resolve_dtype("auto", CPU) == (torch.bfloat16 if native else torch.float32)


@pytest.mark.parametrize("flags,expected", [(("avx512f", "avx512_bf16"), torch.bfloat16), (("avx512f",), torch.float32)])
def test_cpu_compute_dtype_is_the_one_decision_behind_auto(flags, expected):
    from cinemo_core.model.devices import cpu_compute_dtype

    cpu_features = features(flags)
    choice = cpu_compute_dtype(cpu_features)
    assert choice.dtype == expected
    assert choice.reason == f"auto on the CPU: {native_cpu_bf16(cpu_features)[1]}"
    assert choose_dtype("auto", CPU, cpu_features) == choice
