"""Real trl runs through `uft run` on a tiny local model: nothing mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures import preference_rows, sft_rows, write_jsonl

from unified_ft.cli import main

pytestmark = pytest.mark.integration


def _spec(tmp_path: Path, model: Path, name: str, **overrides) -> Path:
    write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    write_jsonl(tmp_path / "pref.jsonl", preference_rows())
    spec = {
        "name": name,
        "model": {"path": str(model)},
        "template": "chatml",
        "adapter": {"type": "lora", "r": 4, "alpha": 8},
        "data": {"train": [{"path": "sft.jsonl", "format": "alpaca"}], "eval_split": 0.2, "max_length": 64},
        "training": {"max_steps": 8, "learning_rate": 5.0e-3, "per_device_batch_size": 4, "logging_steps": 1},
        "evaluation": {"enabled": False},
    }
    spec.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("loss") is not None]


def test_lora_sft_run_then_second_run_never_overwrites(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model, "sft")
    runs = tmp_path / "runs"
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    run_dir = runs / "sft" / "trl"
    manifest = _manifest(run_dir)
    assert manifest["status"] == "succeeded" and manifest["exit_code"] == 0
    assert manifest["versions"]["trl"] and manifest["data_sha256"] and manifest["train_rows"] == 19
    losses = _losses(run_dir)
    assert len(losses) == 8 and all(loss > 0 for loss in losses)
    assert losses[-1] < losses[0], f"loss did not fall: {losses}"

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(base, run_dir / "adapter")
    assert tuned.peft_config["default"].r == 4 and tuned.peft_config["default"].lora_alpha == 8

    first_manifest = (run_dir / "manifest.json").read_bytes()
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    assert (runs / "sft-2" / "trl" / "manifest.json").exists()
    assert (run_dir / "manifest.json").read_bytes() == first_manifest


def test_dpo_run(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model, "dpo", method={"name": "dpo", "beta": 0.1},
                 data={"train": [{"path": "pref.jsonl", "format": "preference"}], "max_length": 64},
                 training={"max_steps": 4, "learning_rate": 1.0e-3, "per_device_batch_size": 2})
    assert main(["run", str(spec), "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "dpo" / "trl"
    assert _manifest(run_dir)["status"] == "succeeded"
    assert len(_losses(run_dir)) == 4
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    config = yaml.safe_load((run_dir / "native" / "config.yaml").read_text())
    assert config["trainer"]["beta"] == 0.1 and config["method"] == "dpo"


def test_ejected_native_folder_runs_with_trl_alone(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model, "eject", training={"max_steps": 2})
    out = tmp_path / "native"
    assert main(["translate", str(spec), "--backend", "trl", "-o", str(out)]) == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "train.py", "config.yaml"], cwd=out, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "output" / "final" / "adapter_config.json").exists()


def test_crashed_framework_is_recorded_as_failed_with_the_log_tail(tmp_path, capsys):
    empty_model = tmp_path / "not-a-model"  # passes uft's check (a config.json), crashes transformers
    empty_model.mkdir()
    (empty_model / "config.json").write_text("{}", encoding="utf-8")
    spec = _spec(tmp_path, empty_model, "crash")
    assert main(["run", str(spec), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    manifest = _manifest(tmp_path / "runs" / "crash" / "trl")
    assert manifest["status"] == "failed" and manifest["exit_code"] == 1
    assert manifest["error_tail"] and "last lines of" in err and "Traceback" not in err.split("last lines of")[0]
