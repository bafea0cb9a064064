"""Data parallelism for real on CPU (gloo): a 2-process run through `uft run` trains like a 1-process run with
the same global batch, the framework itself saw 2 processes, and only rank 0 wrote the standard outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import same_rows, write_jsonl

from unified_ft.cli import main

pytestmark = pytest.mark.integration


def _run(folder: Path, model: Path, name: str, processes: int, per_device: int) -> Path:
    write_jsonl(folder / "chats.jsonl", same_rows(16))
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": "chats.jsonl", "format": "messages"}], "max_length": 64},
            "training": {"max_steps": 3, "per_device_batch_size": per_device, "learning_rate": 1.0e-3, "seed": 7},
            "evaluation": {"enabled": False}, "distributed": {"processes_per_node": processes}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--backend", "trl", "--runs-dir", str(folder / "runs")]) == 0
    return folder / "runs" / name / "trl"


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]


def test_trl_two_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_model):
    one = _run(tmp_path, tiny_model, "one", processes=1, per_device=2)
    two = _run(tmp_path, tiny_model, "two", processes=2, per_device=1)

    manifest = json.loads((two / "manifest.json").read_text())
    command = manifest["command"]
    assert "accelerate.commands.launch" in command and command[command.index("--num_processes") + 1] == "2"
    batch = json.loads((two / "effective.json").read_text())["batch"]
    assert (batch["processes"], batch["per_device"], batch["effective"]) == (2, 1, 2)  # as trl's trainer saw it

    single, double = _losses(one), _losses(two)
    assert [s for s, _ in double] == [1, 2, 3]  # one row per step: rank 1 wrote no metrics of its own
    for (_, a), (_, b) in zip(single, double, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
    log = (two / "native" / "output" / "trainer_log.jsonl").read_text().splitlines()
    assert sum('"event": "start"' in line for line in log) == 1
    adapter = json.loads((two / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4
