"""Real unsloth runs on its CPU path through `uft run --backend unsloth`, in its own uv environment, judged by
the shared evaluation; the ejected folder run with unsloth alone; DPO, ORPO and KTO on the CPU; its hidden
defaults checked in what it did. Nothing mocked. (unsloth beside trl on one spec: the bake-off fixture.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from fixtures import kto_rows, preference_rows, sft_rows, write_jsonl

from unified_ft import envs
from unified_ft.backends.unsloth import RECIPE
from unified_ft.cli import main

pytestmark = pytest.mark.integration


def _spec(tmp_path: Path, model: Path, name: str, **overrides) -> Path:
    write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    write_jsonl(tmp_path / "pref.jsonl", preference_rows())
    write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8, "target_modules": "all-linear"},
            "data": {"train": [{"path": "sft.jsonl", "format": "alpaca"}], "eval_split": 0.2, "max_length": 64},
            "training": {"max_steps": 4, "learning_rate": 5.0e-3, "per_device_batch_size": 2,
                         "gradient_checkpointing": True},
            "evaluation": {"max_new_tokens": 4, "forgetting": None}}
    spec.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_lora_sft_on_unsloth_is_judged_and_does_what_the_spec_says(tmp_path, tiny_model, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(_spec(tmp_path, tiny_model, "sft")), "--backend", "unsloth", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "spec vs what unsloth did" in out and "DIFFERS" not in out
    run_dir = runs / "sft" / "unsloth"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    versions = manifest["versions"]
    assert manifest["status"] == "succeeded" and versions["unsloth"] == "2026.10.9"
    assert versions["torch_build"].startswith(envs.choose_lock(RECIPE).build)
    assert "unsloth 2026.10.9: no gpu found" in (run_dir / "logs" / "stdout.log").read_text().lower()
    effective = json.loads((run_dir / "effective.json").read_text())
    # unsloth's own defaults would be alpha 16, its offloaded checkpointing and the fused AdamW on CPU
    assert effective["adapter"]["alpha"] == 8 and effective["adapter"]["r"] == 4
    assert effective["gradient_checkpointing"] is True and effective["optimizer"]["name"] == "adamw_torch"
    assert sorted(effective["adapter"]["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    first = effective["samples"]["first_step"][0]
    assert 0 < sum(first["label_mask"]) == first["supervised_tokens"] < first["tokens"]  # assistant tokens only
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["tuned"]["loss"] < report["base"]["loss"]
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


def test_ejected_folder_runs_with_unsloth_alone(tmp_path, tiny_model):
    out = tmp_path / "native"
    assert main(["translate", str(_spec(tmp_path, tiny_model, "eject")), "--backend", "unsloth", "-o", str(out),
                 "--check"]) == 0
    python = envs.env_python(envs.create_env(RECIPE))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "UFT_"))}
    done = subprocess.run([str(python), "train.py", "unsloth_job.json"], cwd=out, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((out / "output" / "final" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8
    events = [json.loads(line) for line in (out / "output" / "trainer_log.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end" and events[-1]["global_step"] == 4


@pytest.mark.parametrize("method,fmt", [("dpo", "preference"), ("kto", "unpaired")])
def test_preference_methods_train_on_unsloths_cpu_path(method, fmt, tmp_path, tiny_model):
    path = "pref.jsonl" if fmt == "preference" else "kto.jsonl"
    spec = _spec(tmp_path, tiny_model, method, method=method, evaluation={"enabled": False},
                 data={"train": [{"path": path, "format": fmt}], "max_length": 64},
                 training={"max_steps": 2, "per_device_batch_size": 2})
    assert main(["run", str(spec), "--backend", "unsloth", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / method / "unsloth"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    trainer = json.loads((run_dir / "probe" / "observed.json").read_text())["trainer"]
    assert any(f"{method.upper()}Trainer" in name for name in trainer)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


@pytest.mark.gpu
def test_qlora_on_a_4bit_base_on_unsloths_gpu_path(tmp_path, tiny_model):
    """What the CPU path cannot do: a 4-bit NF4 base (bitsandbytes) with LoRA on it, bf16 compute."""
    from unified_ft.plan import detect_gpu

    if not detect_gpu():
        pytest.skip("needs a CUDA GPU (run through the device machine when one is lent)")
    spec = _spec(tmp_path, tiny_model, "qlora", evaluation={"enabled": False},
                 adapter={"type": "qlora", "bits": 4, "r": 4, "alpha": 8, "target_modules": "all-linear"},
                 training={"max_steps": 2, "per_device_batch_size": 2, "precision": "bf16"})
    assert main(["run", str(spec), "--backend", "unsloth", "--runs-dir", str(tmp_path / "runs")]) == 0
    effective = json.loads((tmp_path / "runs" / "qlora" / "unsloth" / "effective.json").read_text())
    assert effective["precision"]["quantization"]["load_in_4bit"] is True
    assert effective["precision"]["compute"] == "bf16"
