"""Golden files for the ms-swift translator (config.yaml, train.sh, data), reviewed like code.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from fixtures import check_golden, parquet_rows

from unified_ft.backends.swift import SwiftBackend, dropped_rows, native_args
from unified_ft.errors import CapabilityError, SpecError
from unified_ft.launch import prepare_data
from unified_ft.plugin import check_capabilities
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "swift"
SPECS = ["sft-lora", "dpo-lora", "pt-full", "qlora-sft", "orpo-dora", "simpo-lora"]


def _translate(spec, tmp_path: Path):
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves without a GPU
    return SwiftBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")




@pytest.mark.parametrize("name", SPECS)
def test_reference_spec_translation_matches_golden(name, tmp_path):
    job = _translate(load_spec(ROOT / "specs" / f"{name}.yaml"), tmp_path)
    for rel in ("config.yaml", "train.sh"):
        check_golden(GOLDEN / name / rel, (job.native_dir / rel).read_text(encoding="utf-8"))
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")  # reviewed as JSONL
    check_golden(GOLDEN / name / "data" / "train.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                 for r in rows))
    assert job.argv[1:] == [{"pt-full": "pt", "dpo-lora": "rlhf", "orpo-dora": "rlhf",
                            "simpo-lora": "rlhf"}.get(name, "sft"), "config.yaml"]


@pytest.mark.parametrize("name", SPECS)
def test_script_and_argument_file_say_the_same(name, tmp_path):
    """train.sh and config.yaml are two spellings of one command: swift expands the file into these flags."""
    job = _translate(load_spec(ROOT / "specs" / f"{name}.yaml"), tmp_path)
    config = yaml.safe_load((job.native_dir / "config.yaml").read_text())
    env = config.pop("ENV")
    script = (job.native_dir / "train.sh").read_text()
    words = shlex.split(script.split(f"swift {job.argv[1]}", 1)[1].replace("\\\n", " "))
    expanded = []
    for key, value in config.items():
        expanded += [f"--{key}", *[str(v).lower() if isinstance(v, bool) else str(v)
                                   for v in (value if isinstance(value, list) else [value])]]
    assert words == expanded
    assert all(f"export {k}=" in script for k in env) and env == job.env


def test_every_setting_swift_defaults_differently_is_written(tmp_path):
    spec = load_spec(ROOT / "specs" / "sft-lora.yaml")
    spec.training.precision = "fp32"
    command, args = native_args(spec, "data/train.jsonl")
    # swift would use lora_alpha 32 / dropout 0.05 by luck here, but weight_decay 0.1, adam_beta2 0.95,
    # accumulation ceil(16 / batch), gradient checkpointing on, fp16 on CPU and a timestamped folder
    assert command == "sft" and args["lora_alpha"] == 32 and args["lora_dropout"] == 0.05
    assert args["weight_decay"] == 0.0 and args["adam_beta2"] == 0.999 and args["gradient_accumulation_steps"] == 4
    assert args["gradient_checkpointing"] is True and args["fp16"] is False and args["bf16"] is False
    assert args["add_version"] is False and args["check_model"] is False and args["split_dataset_ratio"] == 0.0
    assert args["lorap_lr_ratio"] == 16 and args["init_weights"] == "pissa_niter_16"
    assert args["template"] == "qwen" and args["loss_scale"] == "default" and args["num_train_epochs"] == 3


def _tiny_spec(tmp_path, model, **overrides):
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "hi", "input": "", "output": "yo"}) + "\n")
    spec = {"name": "t", "model": {"path": str(model)}, "template": "chatml",
            "data": {"train": [{"path": str(tmp_path / "d.jsonl"), "format": "alpaca"}]},
            "training": {"precision": "fp32"}, **overrides}
    return validate_spec_dict(spec)


def test_model_type_comes_from_a_local_models_config(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 4}))
    assert native_args(_tiny_spec(tmp_path, model), "x")[1]["model_type"] == "qwen2"
    freeze = native_args(_tiny_spec(tmp_path, model, adapter={"type": "freeze", "trainable_layers": 1}), "x")[1]
    assert freeze["tuner_type"] == "full" and freeze["trainable_parameters"] == ["model.layers.3."]
    (model / "config.json").write_text(json.dumps({"model_type": "fancy_new_arch"}))
    with pytest.raises(SpecError, match="backend_options.swift.model_type"):
        native_args(_tiny_spec(tmp_path, model), "x")
    spec = _tiny_spec(tmp_path, model, backend_options={"swift": {"model_type": "qwen2"}})
    assert native_args(spec, "x")[1]["model_type"] == "qwen2"


def test_unmappable_templates_and_prompt_adapters_fail_before_anything_starts(tmp_path):
    spec = _tiny_spec(tmp_path, "org/m", template="mistral")
    with pytest.raises(CapabilityError, match="template.mistral"):
        check_capabilities(spec, SwiftBackend(), has_gpu=False)
    spec = _tiny_spec(tmp_path, "org/m", adapter={"type": "prompt"})
    with pytest.raises(CapabilityError, match="prompt"):
        check_capabilities(spec, SwiftBackend(), has_gpu=False)


def test_trust_remote_code_that_swift_cannot_turn_off_is_said_out_loud(tmp_path):
    assert "trust_remote_code" in SwiftBackend().notes(_tiny_spec(tmp_path, "org/m"))[0]
    trusting = _tiny_spec(tmp_path, "org/m")
    trusting.model.trust_remote_code = True
    assert SwiftBackend().notes(trusting) == []


def test_rows_swift_drops_are_counted_from_its_log(tmp_path):
    (tmp_path / "stdout.log").write_text("[INFO:swift] Dataset filtered, origin length: 24, filtered dataset "
                                         "length: 22\n[INFO:swift] Dataset filtered, origin length: 22, filtered "
                                         "dataset length: 22\n")
    assert dropped_rows(tmp_path) == {"dropped_rows": 2}
    assert dropped_rows(tmp_path / "none") == {}


def test_a_llamafactory_config_imported_then_translated_to_swift_keeps_its_effective_settings(tmp_path):
    """Cross-migration: uft import llamafactory x.yaml, then uft translate --backend swift."""
    from unified_ft.backends.llamafactory.importer import import_config

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "demo.json"}}))
    (tmp_path / "data" / "demo.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "yo"}]))
    native = {"model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "stage": "sft", "finetuning_type": "lora",
              "lora_rank": 16, "lora_dropout": 0.1, "lora_target": "q_proj,v_proj", "dataset": "demo",
              "template": "qwen", "cutoff_len": 512, "per_device_train_batch_size": 2,
              "gradient_accumulation_steps": 8, "learning_rate": 1.0e-4, "num_train_epochs": 2.0,
              "lr_scheduler_type": "cosine", "warmup_ratio": 0.1}
    (tmp_path / "lf.yaml").write_text(yaml.safe_dump(native))
    spec = validate_spec_dict(import_config(tmp_path / "lf.yaml").spec)
    spec.training.precision = "fp32"
    _, args = native_args(spec, "data/train.jsonl")
    assert {k: args[k] for k in ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                                 "num_train_epochs", "max_steps", "lora_rank", "lora_alpha", "lora_dropout",
                                 "target_modules", "max_length", "template", "lr_scheduler_type", "warmup_ratio",
                                 "gradient_checkpointing")} == {
        "learning_rate": 1.0e-4, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
        "num_train_epochs": 2.0, "max_steps": -1, "lora_rank": 16, "lora_alpha": 32,  # LLaMA-Factory's 2 x rank
        "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"], "max_length": 512,
        "template": "qwen2_5",  # LLaMA-Factory's qwen carries Qwen2.5's system prompt
        "lr_scheduler_type": "cosine", "warmup_ratio": 0.1,
        "gradient_checkpointing": True}  # on by default in LLaMA-Factory, written out for swift


def test_template_model_lets_swift_choose_for_hub_models_only(tmp_path):
    hub = _tiny_spec(tmp_path, "Qwen/Qwen2.5-7B-Instruct", template="model")
    assert "template" not in native_args(hub, "x")[1]
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(SpecError, match="needs a template for a local model"):
        native_args(_tiny_spec(tmp_path, model, template="model"), "x")


def test_an_imported_swift_example_translates_back_to_swift(tmp_path):
    """uft import swift <their script> then uft translate --backend swift: the same command, made explicit."""
    from unified_ft.backends.swift.importer import import_swift

    spec = validate_spec_dict(import_swift(ROOT / "tests" / "backends" / "swift_examples" / "lora_sft.sh").spec)
    spec.training.precision = "bf16"
    command, args = native_args(spec, "data/train.jsonl")
    assert command == "sft" and args["template"] == "qwen2_5" and args["adam_beta2"] == 0.95
    assert args["system"] == "You are a helpful assistant." and args["model_author"] == "swift"
    assert (args["lora_rank"], args["lora_alpha"], args["gradient_accumulation_steps"]) == (8, 32, 16)


@pytest.mark.parametrize(("precision", "adapter", "dtype"), [
    ("fp32", "lora", "float32"), ("bf16", "lora", "bfloat16"), ("bf16", "full", "bfloat16"),
    ("fp16", "lora", "float16"), ("fp16", "full", "float32"), ("bf16", "qlora", "bfloat16")])
def test_base_weights_load_in_the_precisions_dtype_as_on_the_other_backends(precision, adapter, dtype, tmp_path):
    """bf16 weights as the trl runner and LLaMA-Factory load them (half of float32's memory); fp16 trained in full
    keeps float32 weights, since swift upcasts fp16 trainable parameters only for adapters."""
    spec = _tiny_spec(tmp_path, "org/m", adapter={"type": adapter, **({"bits": 4} if adapter == "qlora" else {})},
                      training={"precision": precision})
    args = native_args(spec, "x")[1]
    assert args["torch_dtype"] == dtype
    assert (args["bf16"], args["fp16"]) == (precision == "bf16", precision == "fp16")
