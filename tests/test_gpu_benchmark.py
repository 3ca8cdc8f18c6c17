"""benchmarks/gpu.py: ``--dry-run`` runs the GPU benchmark's own code on the CPU (tiny model) and reports every row."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu.py"


def run_benchmark(*args, env=None):
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=900)


def check_rows(report, impl, dtypes):
    rows = {r["dtype"]: r for r in report["results"] if r["impl"] == impl}
    assert sorted(rows) == sorted(dtypes)
    for row in rows.values():
        assert row["steps_run"] == report["spec"]["steps"] == 2
        assert 0 < row["step_s"] <= row["clip_s"]
        assert row["clip_s"] == pytest.approx(row["first_step_s"] + row["step_s"])  # 2 steps: the sum, nothing extrapolated
        assert not row["extrapolated"]
        assert row["peak_gb"] > row["weights_gb"] > 0  # on the CPU: the worker process's peak RSS


def test_dry_run_of_the_standalone_package(tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    done = run_benchmark("--dry-run", "--json-out", out, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["spec"]["device"] == "cpu"
    check_rows(report, "standalone", ["fp16", "bf16"])
    assert report["errors"] == {"official": "no --official DIR given", "comfyui": "COMFYUI_PATH is not set"}
    assert "DRY RUN" in done.stdout and "| standalone | bf16 |" in done.stdout
    assert "not run: no --official DIR given" in done.stdout


def test_dry_run_through_comfyui(tmp_path):
    from comfyui_harness import SKIP_REASON, comfyui_path

    if comfyui_path() is None:
        pytest.skip(SKIP_REASON)
    # benchmarks need only the package and ComfyUI: a ComfyUI environment without pytest runs them
    blocker = tmp_path / "no_pytest"
    blocker.mkdir()
    (blocker / "pytest.py").write_text("raise ImportError('pytest is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "report.json"
    done = run_benchmark("--dry-run", "--only", "comfyui", "--json-out", out, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    check_rows(report, "comfyui", ["fp16", "bf16", "fp8_e4m3fn"])
    assert "comfyui" not in report["errors"]


@pytest.mark.parametrize("where", ["empty", "inside"])
def test_official_folder_is_checked_first(tmp_path, where):
    folder = tmp_path / "not_cinemo" if where == "empty" else REPO / "benchmarks"
    folder.mkdir(exist_ok=True)
    done = run_benchmark("--dry-run", "--official", folder)
    assert done.returncode != 0
    expected = "not a maxin-cn/Cinemo checkout" if where == "empty" else "outside this project"
    assert expected in done.stderr and "--official" in done.stderr
