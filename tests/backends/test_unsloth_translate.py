"""Golden files for the unsloth translator (unsloth_job.json, the data), reviewed like code; unsloth's own
defaults written out; the runner's guard against unsloth's silent changes.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fixtures import check_golden

from unified_ft.backends.unsloth import RUNNER, UnslothBackend, run_env, unsloth_job
from unified_ft.errors import CapabilityError, SpecError
from unified_ft.launch import prepare_data
from unified_ft.plugin import check_capabilities, gpu_problems
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "unsloth"
SPECS = ["sft-lora", "dpo-lora", "pt-full", "qlora-sft", "orpo-dora"]


def _translate(spec, tmp_path: Path):
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves without a GPU
    return UnslothBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")


@pytest.mark.parametrize("name", SPECS)
def test_reference_spec_translation_matches_golden(name, tmp_path):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    check_capabilities(spec, UnslothBackend(), has_gpu=True)  # every one of these runs on unsloth
    job = _translate(spec, tmp_path)
    check_golden(GOLDEN / name / "unsloth_job.json", (job.native_dir / "unsloth_job.json").read_text(encoding="utf-8"))
    check_golden(GOLDEN / name / "train.jsonl", (job.native_dir / "train.jsonl").read_text(encoding="utf-8"))
    assert (job.native_dir / "train.py").read_text() == RUNNER.read_text()
    assert {p.name for p in job.files} >= {"train.py", "unsloth_job.json", "chat_tokens.py", "runner_support.py"}
    assert job.argv[1:] == ["train.py", "unsloth_job.json"]


def test_simpo_is_refused_naming_the_method(tmp_path):
    with pytest.raises(CapabilityError, match="method.simpo"):
        check_capabilities(load_spec(ROOT / "specs" / "simpo-lora.yaml"), UnslothBackend(), has_gpu=True)


def test_every_setting_unsloth_defaults_differently_is_written(tmp_path):
    spec = load_spec(ROOT / "specs" / "sft-lora.yaml")
    spec.training.precision = "fp32"
    job = unsloth_job(spec, has_eval=False)
    model, peft = job["model"], job["peft"]
    # unsloth would load a 4-bit base in bf16, swap the hub id for its own copy, "fix" the tokenizer, checkpoint
    # in its offloaded mode, seed 3407, alpha 16
    assert model["load_in_4bit"] is False and model["load_in_8bit"] is False and model["dtype"] == "float32"
    assert model["use_exact_model_name"] is True and model["fix_tokenizer"] is False
    assert model["use_gradient_checkpointing"] is True and peft["use_gradient_checkpointing"] is True
    assert model["random_state"] == spec.training.seed == peft["random_state"]
    assert peft["lora_alpha"] == spec.adapter.alpha and peft["r"] == spec.adapter.r
    assert peft["loftq_config"] == {} and peft["bias"] == "none" and peft["init_lora_weights"] == "pissa_niter_16"
    assert model["max_seq_length"] == spec.data.max_length == job["trainer"]["max_length"]
    assert job["trainer"]["optim"] == "adamw_torch" and job["environment"]["UNSLOTH_DISABLE_STATISTICS"] == "1"


def _local_spec(tmp_path, model_type: str | None, **overrides):
    model = tmp_path / "m"
    model.mkdir(exist_ok=True)
    if model_type:
        (model / "config.json").write_text(json.dumps({"model_type": model_type}))
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "hi", "input": "", "output": "yo"}) + "\n")
    spec = {"name": "t", "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "target_modules": "all-linear"},
            "data": {"train": [{"path": str(tmp_path / "d.jsonl"), "format": "alpaca"}]},
            "training": {"precision": "fp32"}, **overrides}
    return validate_spec_dict(spec)


def test_all_linear_is_spelled_out_for_a_known_family_and_refused_for_an_unknown_one(tmp_path):
    job = unsloth_job(_local_spec(tmp_path, "qwen2"), has_eval=False)
    assert job["peft"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]
    assert job["environment"]["HF_HUB_OFFLINE"] == "1"  # a local model never reaches for the hub
    with pytest.raises(SpecError, match="adapter.target_modules"):
        unsloth_job(_local_spec(tmp_path, "fancy_new_arch"), has_eval=False)


def test_qlora_and_packing_need_a_gpu_at_run_but_translate_anywhere(tmp_path):
    spec = _local_spec(tmp_path, "qwen2", adapter={"type": "qlora", "bits": 8}, data={
        "train": [{"path": str(tmp_path / "d.jsonl"), "format": "alpaca"}], "packing": True})
    needs = {p.where for p in gpu_problems(spec, UnslothBackend())}
    assert needs == {"adapter.type: qlora", "data.packing: true"}
    job = unsloth_job(spec, has_eval=False)
    assert job["model"]["load_in_8bit"] is True and job["model"]["load_in_4bit"] is False


def test_backend_options_reach_the_trainer_but_never_override_the_spec(tmp_path):
    job = unsloth_job(_local_spec(tmp_path, "qwen2", backend_options={"unsloth": {"neftune_noise_alpha": 5}}), False)
    assert job["trainer"]["neftune_noise_alpha"] == 5 and job["passthrough"] == ["neftune_noise_alpha"]
    with pytest.raises(SpecError, match="backend_options.unsloth.learning_rate"):
        unsloth_job(_local_spec(tmp_path, "qwen2", backend_options={"unsloth": {"learning_rate": 1}}), False)


def test_a_cpu_build_on_a_gpu_host_hides_cuda_so_unsloth_takes_its_cpu_path(monkeypatch):
    monkeypatch.setenv("UFT_TORCH_BUILD", "cpu")
    monkeypatch.setattr("unified_ft.envs.detected_gpus", lambda: (("NVIDIA H200", "580.1"),))
    assert run_env()["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setattr("unified_ft.envs.detected_gpus", lambda: ())
    assert "CUDA_VISIBLE_DEVICES" not in run_env()


def _runner():
    spec = importlib.util.spec_from_file_location("uft_unsloth_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runner_puts_back_the_optimizer_unsloth_swapped_and_stops_on_a_dropped_precision(capsys):
    runner = _runner()
    args = SimpleNamespace(optim="adamw_torch_fused", bf16=False, fp16=False, packing=False)
    runner.keep_requested(args, {"optim": "adamw_torch", "bf16": False})
    assert args.optim == "adamw_torch" and "putting back" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unsloth turned bf16 off"):
        runner.keep_requested(SimpleNamespace(optim="adamw_torch", bf16=False, fp16=False, packing=False),
                              {"optim": "adamw_torch", "bf16": True})


def test_the_locks_hold_a_torch_torchvision_pair_unsloth_accepts():
    """unsloth's import refuses torch 2.Y with torchvision below 0.(Y+15) (import_fixes.py); the CUDA lock pins
    the pair, the CPU lock has no torchvision (PyPI's is a CUDA build), which unsloth's check lets pass."""
    import re

    from unified_ft.backends.unsloth import RECIPE

    def pins(lock):
        return dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", lock.read_text(), flags=re.M))

    cuda, cpu = pins(RECIPE.lock), pins(RECIPE.cpu_lock)
    major, minor = (int(x) for x in cuda["torch"].split(".")[:2])
    assert major == 2 and tuple(int(x) for x in cuda["torchvision"].split(".")[:2]) >= (0, minor + 15)
    assert cpu["torch"].endswith("+cpu") and "torchvision" not in cpu and "xformers" in cuda
    assert cuda["unsloth"] == cpu["unsloth"] == "2026.10.9" and cuda["transformers"] == cpu["transformers"]
