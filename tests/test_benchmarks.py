"""The benchmark scripts stay runnable: each parses its arguments, and gpu.py refuses clearly without CUDA.

They are not tests themselves (they time things); these only catch a script that no longer starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("script", ["startup.py", "overhead.py", "data.py", "gpu.py"])
def test_each_benchmark_parses_its_arguments(script):
    done = _run(script, "--help")
    assert done.returncode == 0, done.stderr
    assert "goal" in done.stdout.lower() or "gpu" in done.stdout.lower()


def test_gpu_dry_run_writes_a_valid_spec_of_the_real_shape_job(tmp_path):
    done = _run("gpu.py", "--dry-run", "-o", str(tmp_path), "--backends", "trl,swift", "--steps", "7")
    assert done.returncode == 0, done.stderr
    assert f"bakeoff {tmp_path / 'gpu-bench.yaml'} --backends trl,swift" in done.stdout
    spec = yaml.safe_load((tmp_path / "gpu-bench.yaml").read_text())
    assert spec["training"]["max_steps"] == 7 and spec["training"]["precision"] == "bf16"
    assert spec["evaluation"] == {"enabled": False}
    assert len((tmp_path / "train.jsonl").read_text().splitlines()) == 7 * 8 + 64
    from unified_ft.specfile import load_spec

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert load_spec(tmp_path / "gpu-bench.yaml").adapter.r == 16


def test_gpu_dry_run_defaults_to_all_five_backends_and_offers_qlora(tmp_path):
    done = _run("gpu.py", "--dry-run", "-o", str(tmp_path), "--adapter", "qlora")
    assert done.returncode == 0, done.stderr
    assert "--backends trl,llamafactory,swift,unsloth,colossalai" in done.stdout
    adapter = yaml.safe_load((tmp_path / "gpu-bench.yaml").read_text())["adapter"]
    assert adapter["type"] == "qlora" and adapter["bits"] == 4


def test_gpu_benchmark_refuses_without_cuda(tmp_path):
    from unified_ft.plan import detect_gpu

    if detect_gpu():
        pytest.skip("this machine has a CUDA GPU")
    done = _run("gpu.py", "-o", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "--dry-run" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing built or written before refusing
