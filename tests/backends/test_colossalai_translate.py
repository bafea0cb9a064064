"""Golden files for the ColossalAI translator (colossalai_job.json, README.md, data), reviewed like code, and the
validation of backend_options.colossalai (plugin, stage, tp/pp sizes, LoRA support, GPU needs).

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import check_golden

from unified_ft.backends.colossalai import RUNNER, ColossalAIBackend, job_config, options
from unified_ft.cli import main
from unified_ft.errors import CapabilityError, SpecError
from unified_ft.launch import prepare_data
from unified_ft.plugin import check_capabilities, gpu_problems
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "colossalai"
EXAMPLES = ROOT / "examples" / "data"
#: Reference specs ColossalAI refuses, and the setting each refusal must name.
REFUSED = {"dpo-lora": "method: dpo", "orpo-dora": "method: orpo", "simpo-lora": "method: simpo",
           "pt-full": "data.packing", "qlora-sft": "training.optimizer: paged_adamw_8bit"}
TRANSLATED = sorted({p.stem for p in (ROOT / "specs").glob("*.yaml")} - set(REFUSED))
#: Plugins beyond the default, each on a small spec of its own (golden: the job file's plugin settings).
PLUGIN_CASES = {
    "full-low-level-zero": {"adapter": {"type": "full"}, "training": {"max_steps": 3, "precision": "bf16"},
                            "backend_options": {"colossalai": {"plugin": "low_level_zero", "stage": 2}}},
    "lora-hybrid-zero1": {"backend_options": {"colossalai": {"plugin": "hybrid_parallel", "zero_stage": 1}}},
    "full-hybrid-tp2": {"adapter": {"type": "full"},
                        "backend_options": {"colossalai": {"plugin": "hybrid_parallel", "tp_size": 2}}},
    "full-gemini": {"adapter": {"type": "full"}, "training": {"max_steps": 3, "precision": "bf16"},
                    "backend_options": {"colossalai": {"plugin": "gemini"}}},
}


def _base(**extra) -> dict:
    return {"name": "case", "model": {"path": "org/model"}, "template": "chatml",
            "data": {"train": [{"path": str(EXAMPLES / "alpaca_sample.jsonl"), "format": "alpaca"}],
                     "max_length": 128},
            "training": {"max_steps": 3, "seed": 1, "precision": "fp32"}, **extra}


def _translate(spec, tmp_path: Path):
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves on a machine without a GPU
    return ColossalAIBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")


@pytest.mark.parametrize("name", TRANSLATED)
def test_reference_spec_translation_matches_golden(name, tmp_path):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    check_capabilities(spec, ColossalAIBackend(), has_gpu=True)
    job = _translate(spec, tmp_path)
    for rel in ("colossalai_job.json", "README.md", "data/train.jsonl"):
        check_golden(GOLDEN / name / rel, (job.native_dir / rel).read_text(encoding="utf-8"))
    assert (job.native_dir / "train.py").read_text() == RUNNER.read_text()
    assert {p.name for p in job.native_dir.iterdir()} >= {"chat_tokens.py", "modeling.py", "train.py"}
    assert job.argv[1:] == ["train.py", "colossalai_job.json"] and Path(job.argv[0]).name == "python"


@pytest.mark.parametrize("name", sorted(PLUGIN_CASES))
def test_plugin_settings_are_written_out(name, tmp_path):
    job = _translate(validate_spec_dict(_base(**PLUGIN_CASES[name])), tmp_path)
    check_golden(GOLDEN / name / "colossalai_job.json", (job.native_dir / "colossalai_job.json").read_text())
    assert "colossalai run --nproc_per_node" in (job.native_dir / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_reference_specs_colossalai_cannot_run_are_refused_naming_the_setting(name):
    with pytest.raises(CapabilityError) as info:
        check_capabilities(load_spec(ROOT / "specs" / f"{name}.yaml"), ColossalAIBackend(), has_gpu=True)
    assert REFUSED[name] in str(info.value)
    if name.startswith(("dpo", "orpo", "simpo")):
        assert "ColossalChat" in str(info.value)


def test_every_setting_torch_and_colossalai_default_differently_is_written():
    config = job_config(validate_spec_dict(_base()))
    t = config["training"]
    assert t["weight_decay"] == 0.0  # torch's AdamW would decay by 0.01
    assert (t["adam_beta1"], t["adam_beta2"], t["adam_epsilon"]) == (0.9, 0.999, 1e-8)
    assert config["plugin"] == {"name": "torch_ddp"} and config["precision"] == "fp32"
    assert config["peft"] == {"task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                              "target_modules": "all-linear", "use_rslora": False, "use_dora": False, "bias": "none",
                              "init_lora_weights": True}
    assert config["data"]["order"] == "sequential" and config["model"]["dtype"] == "float32"
    low = options(validate_spec_dict(_base(backend_options={"colossalai": {"plugin": "low_level_zero"}})))
    assert low == {"name": "low_level_zero", "stage": 1}  # ColossalAI's default stage, written out


BAD = [
    ({"plugin": "torch_dpp"}, {}, "backend_options.colossalai.plugin", "did you mean 'torch_ddp'"),
    ({"tp_szie": 2}, {}, "backend_options.colossalai.tp_szie", "did you mean 'tp_size'"),
    ({"plugin": "low_level_zero", "stage": 3}, {}, "backend_options.colossalai.stage", "not 1 or 2"),
    ({"stage": 2}, {}, "backend_options.colossalai.stage", "plugin torch_ddp takes no stage"),
    ({"plugin": "gemini"}, {}, "backend_options.colossalai.plugin", "cannot train a LoRA adapter"),
    ({"plugin": "torch_fsdp"}, {}, "backend_options.colossalai.plugin", "cannot train a LoRA adapter"),
    ({"plugin": "hybrid_parallel", "tp_size": 2}, {}, "backend_options.colossalai.tp_size", "tp_size 1 only"),
    ({"plugin": "hybrid_parallel", "tp_size": 0}, {"adapter": {"type": "full"}},
     "backend_options.colossalai.tp_size", "positive whole number"),
    ({"plugin": "gemini"}, {"adapter": {"type": "full"}}, "training.precision", "bf16 or fp16 only"),
    ({"plugin": "hybrid_parallel", "pp_size": 2}, {}, "backend_options.colossalai.pp_size", "execute_pipeline"),
    ({"plugin": "low_level_zero"}, {"adapter": {"type": "lora", "init": "pissa", "pissa_iters": 2}},
     "adapter.init", "use plugin torch_ddp"),
]


@pytest.mark.parametrize(("given", "extra", "where", "says"), BAD)
def test_bad_plugin_options_are_clear_errors(given, extra, where, says):
    spec = validate_spec_dict(_base(backend_options={"colossalai": given}, **extra))
    with pytest.raises(SpecError) as info:
        ColossalAIBackend().notes(spec)  # the plan calls it: refused before anything starts
    assert where in str(info.value) and says in str(info.value), str(info.value)


def test_tp_size_must_divide_the_models_attention_and_key_value_heads(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_key_value_heads": 2}))

    def spec(tp: int):
        return validate_spec_dict(_base(model={"path": str(tmp_path)}, adapter={"type": "full"},
                                        backend_options={"colossalai": {"plugin": "hybrid_parallel", "tp_size": tp}}))

    assert options(spec(2))["tp_size"] == 2
    with pytest.raises(SpecError) as info:
        options(spec(4))
    assert "num_key_value_heads (2" in str(info.value) and "1, 2" in str(info.value)
    with pytest.raises(SpecError, match="num_attention_heads"):
        options(spec(3))


def test_cuda_only_plugins_are_refused_by_run_but_translated(tmp_path, monkeypatch, capsys):
    full = _base(adapter={"type": "full"}, backend_options={"colossalai": {"plugin": "low_level_zero"}})
    spec = validate_spec_dict(full)
    assert [p.where for p in gpu_problems(spec, ColossalAIBackend())] == ["backend_options.colossalai.plugin"]
    with pytest.raises(CapabilityError, match="needs a CUDA GPU"):
        check_capabilities(spec, ColossalAIBackend(), has_gpu=False)
    assert gpu_problems(validate_spec_dict(_base()), ColossalAIBackend()) == []  # torch_ddp trains on a CPU

    import yaml

    import unified_ft.plan

    monkeypatch.setattr(unified_ft.plan, "detect_gpu", lambda: False)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(full))
    assert main(["translate", str(path), "--backend", "colossalai", "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "colossalai_job.json").read_text())["plugin"]["name"] == "low_level_zero"
    capsys.readouterr()
    assert main(["run", str(path), "--backend", "colossalai", "--runs-dir", str(tmp_path / "runs")]) != 0
    err = capsys.readouterr().err
    assert "backend_options.colossalai.plugin" in err and "CUDA GPU" in err
    assert not (tmp_path / "runs").exists()


def test_metrics_rows_and_start_events_from_the_runner_log():
    backend = ColossalAIBackend()
    assert backend.progress({"event": "start", "max_steps": 3}) == {"event": "start", "max_steps": 3}
    row = backend.progress({"step": 1, "epoch": 0.5, "loss": 2.0, "learning_rate": 1e-3, "grad_norm": 0.3,
                            "tokens": 9, "elapsed_s": 1.0, "peak_memory_mb": 5.0, "num_tokens": 9})
    assert row["loss"] == 2.0 and row["step"] == 1 and "num_tokens" not in row
    assert backend.progress({"event": "end"}) is None
