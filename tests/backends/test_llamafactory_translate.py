"""Golden files for the LLaMA-Factory translator (train.yaml, dataset_info.json, data), reviewed like code.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import check_golden, parquet_rows

from unified_ft.backends.llamafactory import LlamaFactoryBackend, native_config
from unified_ft.errors import CapabilityError, SpecError
from unified_ft.launch import prepare_data
from unified_ft.plugin import check_capabilities
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "llamafactory"
SPECS = ["sft-lora", "dpo-lora", "pt-full", "qlora-sft", "orpo-dora", "simpo-lora"]


def _translate(spec, tmp_path: Path):
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves without a GPU
    return LlamaFactoryBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")




@pytest.mark.parametrize("name", SPECS)
def test_reference_spec_translation_matches_golden(name, tmp_path):
    job = _translate(load_spec(ROOT / "specs" / f"{name}.yaml"), tmp_path)
    for rel in ("train.yaml", "data/dataset_info.json"):
        check_golden(GOLDEN / name / rel, (job.native_dir / rel).read_text(encoding="utf-8"))
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")  # reviewed as JSON
    check_golden(GOLDEN / name / "data" / "train.json", json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    assert job.argv[1:] == ["train", "train.yaml"] and job.argv[0].endswith("llamafactory-cli")


def test_every_setting_llamafactory_defaults_differently_is_written(tmp_path):
    spec = load_spec(ROOT / "specs" / "sft-lora.yaml")
    spec.training.precision = "fp32"
    config = native_config(spec, has_eval=False)
    # LLaMA-Factory would otherwise use lora_alpha = 2 x rank and turn gradient checkpointing on
    assert config["lora_alpha"] == 32 and config["lora_rank"] == 16 and config["lora_dropout"] == 0.05
    assert config["disable_gradient_checkpointing"] is False  # this spec asks for checkpointing
    assert config["template"] == "qwen" and config["cutoff_len"] == 1024 and config["train_on_prompt"] is False
    assert config["gradient_accumulation_steps"] == 4 and config["num_train_epochs"] == 3


def test_preference_data_is_sharegpt_with_ranking(tmp_path):
    job = _translate(load_spec(ROOT / "specs" / "dpo-lora.yaml"), tmp_path)
    info = json.loads((job.native_dir / "data" / "dataset_info.json").read_text())
    assert info["uft_train"]["ranking"] is True and info["uft_train"]["formatting"] == "sharegpt"
    row = parquet_rows(job.native_dir / "data" / "train.parquet")[0]
    assert row["chosen"]["role"] == "assistant" and row["messages"][-1]["role"] == "user"
    config = yaml.safe_load((job.native_dir / "train.yaml").read_text())
    assert config["stage"] == "dpo" and config["pref_beta"] == 0.1 and config["pref_loss"] == "sigmoid"


def test_unsupported_features_fail_before_anything_starts():
    spec = validate_spec_dict({"name": "x", "model": {"path": "org/m"}, "template": "model",
                               "adapter": {"type": "prompt"},
                               "data": {"train": [{"path": "a.jsonl", "format": "alpaca"}]}})
    with pytest.raises(CapabilityError) as info:
        check_capabilities(spec, LlamaFactoryBackend(), has_gpu=False)
    text = str(info.value)
    assert "template.model" in text and "adapter.prompt" in text and "backends that support it: trl" in text


def test_passthrough_cannot_shadow_a_spec_setting():
    spec = validate_spec_dict({"name": "x", "model": {"path": "org/m"}, "template": "chatml",
                               "data": {"train": [{"path": "a.jsonl", "format": "alpaca"}]},
                               "backend_options": {"llamafactory": {"lora_alpha": 64}}})
    spec.training.precision = "fp32"
    with pytest.raises(SpecError, match="backend_options.llamafactory.lora_alpha"):
        native_config(spec, has_eval=False)
