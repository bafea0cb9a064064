"""Migration in from LLaMA-Factory: its implicit defaults made explicit, unknown keys kept visibly, and the
round trip import(translate(spec)) giving back the same effective training settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unified_ft.backends.llamafactory import LlamaFactoryBackend
from unified_ft.backends.llamafactory.importer import import_config
from unified_ft.cli import main
from unified_ft.errors import SpecError
from unified_ft.launch import prepare_data
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
EFFECTIVE = ("model", "template", "method", "adapter", "training")


@pytest.mark.parametrize("name", ["sft-lora", "dpo-lora", "pt-full", "qlora-sft", "orpo-dora", "simpo-lora"])
def test_round_trip_keeps_every_effective_setting(name, tmp_path):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    spec.training.precision = spec.training.precision if spec.training.precision != "auto" else "fp32"
    job = LlamaFactoryBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")
    imported = import_config(job.native_dir / "train.yaml")
    back = validate_spec_dict(imported.spec)
    for section in EFFECTIVE:
        assert getattr(back, section) == getattr(spec, section), section
    assert back.data.max_length == spec.data.max_length and back.data.packing == spec.data.packing
    assert back.data.train_on_prompt == spec.data.train_on_prompt
    assert [d.format for d in back.data.train] == [{"alpaca": "messages"}.get(spec.data.train[0].format,
                                                                              spec.data.train[0].format)]
    assert imported.kept == {}


def _write(tmp_path: Path, config: dict, info: dict) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps(info))
    (tmp_path / "data" / "demo.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "yo"}]))
    path = tmp_path / "their.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


EXAMPLE = {"model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "stage": "sft", "do_train": True,
           "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all", "dataset": "demo", "template": "qwen",
           "cutoff_len": 2048, "max_samples": 1000, "output_dir": "saves/x", "logging_steps": 10,
           "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8, "learning_rate": 1.0e-4,
           "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "bf16": True,
           "ddp_timeout": 180000000}


def test_llamafactory_defaults_become_explicit_and_unknown_keys_stay_visible(tmp_path):
    path = _write(tmp_path, EXAMPLE, {"demo": {"file_name": "demo.json"}})
    imported = import_config(path)
    spec, kept = imported.spec, imported.kept
    assert spec["adapter"]["alpha"] == 16  # LLaMA-Factory's implicit 2 x rank
    assert spec["training"]["gradient_checkpointing"] is True  # on by default in LLaMA-Factory
    assert spec["training"]["precision"] == "bf16" and spec["data"]["train"][0]["format"] == "alpaca"
    assert kept == {} and "backend_options" not in spec
    # LLaMA-Factory's max_samples: the first N rows of each dataset, as uft's data step reads them
    assert spec["data"]["train"][0]["first_rows"] == 1000
    assert ("max_samples", "data.train[].first_rows") in imported.mapped
    assert ("lora_alpha", "adapter.alpha") in imported.defaults  # written out, not in the config
    validate_spec_dict(spec)


def test_uft_import_command_writes_a_valid_spec_and_never_overwrites(tmp_path, capsys):
    path = _write(tmp_path, EXAMPLE, {"demo": {"file_name": "demo.json"}})
    out = tmp_path / "spec.yaml"
    assert main(["import", "llamafactory", str(path), "-o", str(out)]) == 0
    assert load_spec(out).adapter.alpha == 16
    assert "0 kept" in capsys.readouterr().out
    assert main(["import", "llamafactory", str(path), "-o", str(out)]) == 2


def test_missing_dataset_entry_and_unknown_template_are_clear_errors(tmp_path):
    path = _write(tmp_path, {**EXAMPLE, "dataset": "nope"}, {"demo": {"file_name": "demo.json"}})
    with pytest.raises(SpecError, match="not registered"):
        import_config(path)
    path = _write(tmp_path, {**EXAMPLE, "template": "qwen3"}, {"demo": {"file_name": "demo.json"}})
    with pytest.raises(SpecError, match="no uft equivalent"):
        import_config(path)


REGISTRY = {"demo": {"file_name": "demo.json"},
            "alpaca_gpt4_en": {"hf_hub_url": "llamafactory/alpaca_gpt4_en",
                               "ms_hub_url": "llamafactory/alpaca_gpt4_en"},
            "ultrafeedback": {"hf_hub_url": "llamafactory/ultrafeedback_binarized", "split": "train_prefs",
                              "ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen",
                                                           "rejected": "rejected"}},
            "ms_only": {"ms_hub_url": "AI-ModelScope/x"}}


def test_hub_datasets_in_the_registry_stay_hub_references(tmp_path):
    spec = import_config(_write(tmp_path, {**EXAMPLE, "dataset": "demo,alpaca_gpt4_en"}, REGISTRY)).spec
    assert spec["data"]["train"][1] == {"hub": "llamafactory/alpaca_gpt4_en", "split": "train", "format": "alpaca",
                                        "columns": {}, "first_rows": 1000}
    assert validate_spec_dict(spec).data.train[1].source == "hub:llamafactory/alpaca_gpt4_en"
    dpo = {**EXAMPLE, "stage": "dpo", "dataset": "ultrafeedback"}
    spec = import_config(_write(tmp_path, dpo, REGISTRY)).spec
    assert spec["data"]["train"][0]["hub"] == "llamafactory/ultrafeedback_binarized"
    assert spec["data"]["train"][0]["split"] == "train_prefs" and spec["data"]["train"][0]["format"] == "preference"
    with pytest.raises(SpecError, match="ModelScope"):
        import_config(_write(tmp_path, {**EXAMPLE, "dataset": "ms_only"}, REGISTRY))


def test_a_hub_dataset_that_cannot_be_fetched_is_a_clear_input_error(tmp_path):
    import os
    import subprocess
    import sys

    spec = import_config(_write(tmp_path, {**EXAMPLE, "dataset": "alpaca_gpt4_en"}, REGISTRY)).spec
    spec["training"]["precision"] = "fp32"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "UFT_CACHE_DIR": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-m", "unified_ft.cli", "run", str(tmp_path / "spec.yaml"), "--backend",
                           "trl", "--runs-dir", str(tmp_path / "runs")], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "hub:llamafactory/alpaca_gpt4_en" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "runs").glob("*/*/manifest.json"))


def test_llamafactorys_own_kto_example_imports_with_unpaired_data(tmp_path):
    """LLaMA-Factory's qwen3_lora_kto example, unchanged, with its kto_en_demo registry entry: its template
    qwen3_nothink renders exactly like uft's chatml, and the data reads as unpaired rows."""
    example = yaml.safe_load((Path(__file__).with_name("llamafactory_examples") / "qwen3_lora_kto.yaml").read_text())
    entry = {"file_name": "kto_en_demo.json", "formatting": "sharegpt", "columns": {"messages": "messages",
             "kto_tag": "label"}, "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                           "assistant_tag": "assistant"}}
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "label": i % 2 == 0} for i in range(4)]
    path = _write(tmp_path, example, {"kto_en_demo": entry})
    (tmp_path / "data" / "kto_en_demo.json").write_text(json.dumps(rows))
    spec = validate_spec_dict(import_config(path).spec)
    assert spec.template.name == "chatml"
    assert spec.method.name == "kto" and spec.data.train[0].format == "unpaired" and spec.record_kind == "unpaired"
    assert spec.data.train[0].first_rows == 1000 and spec.model.trust_remote_code is True
    data = prepare_data(spec, tmp_path / "prepared")
    first = json.loads(Path(data.train_path).read_text().splitlines()[0])
    assert set(first) == {"prompt", "completion", "label"} and data.train_rows == 4


def test_yaml_numbers_as_text_no_stage_default_system_and_dataset_dir_from_the_working_directory(tmp_path,
                                                                                                   monkeypatch):
    checkout = tmp_path / "LLaMA-Factory"
    (checkout / "data").mkdir(parents=True)
    (checkout / "data" / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "demo.json"}}))
    (checkout / "data" / "demo.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    config = checkout / "examples" / "train_lora" / "mine.yaml"
    config.parent.mkdir(parents=True)
    native = {k: v for k, v in EXAMPLE.items() if k != "stage"}
    config.write_text(yaml.safe_dump({**native, "learning_rate": "1e-4", "default_system": "Be brief."}))
    monkeypatch.chdir(checkout)  # LLaMA-Factory resolves dataset_dir against where it runs
    imported = import_config(config)
    spec = validate_spec_dict(imported.spec)
    assert spec.method.name == "sft" and ("stage", "method.name") in imported.defaults
    assert spec.training.learning_rate == 1e-4 and spec.template.system == "Be brief."
    assert spec.data.train[0].path == str((checkout / "data" / "demo.json").resolve())
    config.write_text(yaml.safe_dump({**native, "learning_rate": "fast"}))
    with pytest.raises(SpecError, match="wrong type") as caught:
        import_config(config)
    assert "learning_rate" in str(caught.value)
    config.write_text(yaml.safe_dump(native))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        import_config(config)
    assert str(tmp_path / "data") in str(caught.value) and str(config.parent / "data") in str(caught.value)


def test_a_system_prompt_survives_the_round_trip_through_llamafactory(tmp_path):
    spec = load_spec(ROOT / "specs" / "sft-lora.yaml")
    spec.training.precision = "fp32"
    spec.template.system = "Answer in one word."
    job = LlamaFactoryBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")
    assert yaml.safe_load((job.native_dir / "train.yaml").read_text())["default_system"] == "Answer in one word."
    back = validate_spec_dict(import_config(job.native_dir / "train.yaml").spec)
    assert back.template == spec.template


def test_a_misspelt_key_is_kept_as_unknown_with_a_did_you_mean_from_llamafactorys_own_arguments(tmp_path):
    path = _write(tmp_path, {**EXAMPLE, "lora_rnak": 16, "neat_packing": False},
                  {"demo": {"file_name": "demo.json"}})
    imported = import_config(path)
    assert imported.unknown == {"lora_rnak": "lora_rank"}  # arguments.json: LLaMA-Factory 0.9.5's train keys
    assert "neat_packing" in imported.kept and "neat_packing" not in imported.unknown  # a real key, kept
    assert any("lora_rnak is not a llamafactory key (did you mean lora_rank?)" in n for n in imported.notes)
    # defaults of 0.9.5 written out: transformers' learning rate, epochs, logging; fused AdamW said in a note
    spec = import_config(_write(tmp_path, {"model_name_or_path": "m", "dataset": "demo", "template": "qwen"},
                                {"demo": {"file_name": "demo.json"}})).spec
    assert (spec["training"]["learning_rate"], spec["training"]["epochs"], spec["data"]["max_length"]) == (
        5e-05, 3.0, 2048)
    assert spec["training"]["optimizer"] == "adamw_torch" and spec["training"]["logging_steps"] == 500


def test_pretraining_packs_by_default_as_llamafactory_does(tmp_path):
    pt = {**EXAMPLE, "stage": "pt", "template": "default"}
    assert import_config(_write(tmp_path, pt, {"demo": {"file_name": "demo.json"}})).spec["data"]["packing"] is True
    sft = import_config(_write(tmp_path, EXAMPLE, {"demo": {"file_name": "demo.json"}})).spec
    assert sft["data"]["packing"] is False


def test_configs_that_train_nothing_or_train_vision_are_refused_naming_why(tmp_path):
    merge = {"model_name_or_path": "m", "adapter_name_or_path": "saves/x", "template": "qwen", "export_dir": "out"}
    with pytest.raises(SpecError, match="not a LLaMA-Factory training config") as caught:
        import_config(_write(tmp_path, merge, {}))
    assert "export_dir" in str(caught.value)
    with pytest.raises(SpecError, match="vision-language") as caught:
        import_config(_write(tmp_path, {**EXAMPLE, "image_max_pixels": 262144}, {"demo": {"file_name": "demo.json"}}))
    assert "image_max_pixels" in str(caught.value)


V1_CONFIG = {"model": "Qwen/Qwen3-4B", "model_class": "llm",
             "peft_config": {"name": "lora", "r": 16, "target_modules": "all"},
             "dist_config": {"name": "fsdp2"}, "train_dataset": "data/mine.yaml", "output_dir": "out",
             "micro_batch_size": 2, "global_batch_size": 8, "max_steps": 10, "kernel_config": {"name": "auto"},
             "micro_bach_size": 3}


def test_a_v1_config_imports_with_v1s_defaults_and_its_dataset_yaml(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    (tmp_path / "data" / "mine.yaml").write_text(yaml.safe_dump({"demo": {"path": "data/demo.json",
                                                                          "source": "local", "converter": "alpaca"}}))
    config = tmp_path / "v1.yaml"
    config.write_text(yaml.safe_dump(V1_CONFIG))
    monkeypatch.chdir(tmp_path)
    imported = import_config(config)
    spec = validate_spec_dict(imported.spec)
    assert spec.template.name == "model" and spec.method.name == "sft"
    assert (spec.adapter.r, spec.adapter.alpha, spec.adapter.dropout) == (16, 16, 0.05)  # v1's LoraParams defaults
    assert spec.adapter.target_modules == "all-linear"
    t = spec.training
    assert (t.per_device_batch_size, t.gradient_accumulation_steps, t.max_steps) == (2, 4, 10)
    assert (t.learning_rate, t.precision, t.lr_scheduler, t.weight_decay) == (1e-4, "bf16", "constant", 0.01)
    assert spec.data.train[0].path == str((tmp_path / "data" / "demo.json").resolve())
    assert spec.data.train[0].format == "alpaca"
    assert imported.unknown == {"micro_bach_size": "micro_batch_size"}  # from the v1 dataclasses' keys
    assert "dist_config" in imported.ignored and "kernel_config" in imported.ignored
    assert ("peft_config.lora_alpha", "adapter.alpha") in imported.defaults
    config.write_text(yaml.safe_dump({**V1_CONFIG, "train_dataset": "data/missing.yaml"}))
    with pytest.raises(SpecError, match="cannot be found") as caught:
        import_config(config)
    assert str(tmp_path / "data") in str(caught.value)  # says where it looked


def test_llamafactorys_v1_dpo_example_is_dpo_from_its_pair_dataset_and_says_the_stage_is_the_commands():
    examples = Path(__file__).with_name("llamafactory_examples")
    imported = import_config(examples / "v1_train_lora_dpo.yaml")
    spec = validate_spec_dict(imported.spec)
    assert spec.method.name == "dpo" and spec.method.beta == 0.1  # v1's pref_beta default
    assert spec.data.train[0].source == "hub:HuggingFaceH4/orca_dpo_pairs" and spec.data.train[0].split == "train_prefs"
    assert spec.data.train[0].format == "preference"
    assert any("stage from the command" in note for note in imported.notes)
    with pytest.raises(SpecError, match="not a LLaMA-Factory training config"):
        import_config(examples / "v1_export_lora.yaml")
