"""Golden files for the axolotl eject (config.yaml, README.md, data), reviewed like code, and its refusals.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
axolotl is not installed here (uft never runs it): the keys are checked against axolotl's own schema names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import check_golden, parquet_rows

from unified_ft.backends.axolotl import AXOLOTL_VERSION, EJECT_ONLY, AxolotlBackend, native_config
from unified_ft.cli import main
from unified_ft.errors import CapabilityError, SpecError, UftError
from unified_ft.launch import prepare_data, run_job, translate_to
from unified_ft.plugin import check_capabilities, load_backend
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "axolotl"
DATA = ROOT / "examples" / "data"
JINJA = ("{% for message in messages %}{{ '### ' + message['role'] + ':\\n' + message['content'] + '\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}")


def _data(name: str, fmt: str) -> list[dict]:
    return [{"path": str(DATA / name), "format": fmt}]


#: Specs written here (specs/sft-lora.yaml uses PiSSA, which axolotl cannot take as uft means it).
SPECS = {
    "sft-lora-chat": {
        "name": "sft-lora-chat", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"}, "template": "qwen",
        "adapter": {"type": "lora", "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
                    "rslora": True, "loraplus_lr_ratio": 16},
        "data": {"train": _data("alpaca_sample.jsonl", "alpaca"), "eval_split": 0.2, "max_length": 1024},
        "training": {"epochs": 2, "learning_rate": 2e-4, "warmup_ratio": 0.03, "per_device_batch_size": 4,
                     "gradient_accumulation_steps": 4, "gradient_checkpointing": True, "logging_steps": 10,
                     "save_steps": 50, "report_to": ["tensorboard"]}},
    "full-chatml": {
        "name": "full-chatml", "model": {"path": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": "main"},
        "template": "chatml", "adapter": {"type": "full"},
        "data": {"train": _data("alpaca_sample.jsonl", "alpaca"), "shuffle": False, "train_on_prompt": True},
        "training": {"max_steps": 30, "lr_scheduler": "linear", "optimizer": "adafactor", "weight_decay": 0.01,
                     "max_grad_norm": 0.5, "seed": 3}},
    "packing-dora": {
        "name": "packing-dora", "model": {"path": "meta-llama/Llama-3.2-1B-Instruct"}, "template": "llama3",
        "adapter": {"type": "dora", "r": 8, "alpha": 16}, "data": {"train": _data("alpaca_sample.jsonl", "alpaca"),
                                                                  "packing": True, "max_length": 2048},
        "training": {"precision": "bf16", "per_device_batch_size": 2}},
    "jinja-system": {
        "name": "jinja-system", "model": {"path": "org/base-model", "trust_remote_code": True},
        "template": {"name": "jinja", "jinja": JINJA, "system": "You answer in one short sentence."},
        "data": {"train": _data("alpaca_sample.jsonl", "alpaca")}, "training": {"report_to": ["wandb"]}},
    "kto-chatml": {
        "name": "kto-chatml", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"},
        "template": {"name": "chatml", "system": "You are a helpful assistant."},
        "method": {"name": "kto", "beta": 0.2}, "adapter": {"type": "lora", "r": 8, "alpha": 16},
        "data": {"train": _data("preference_sample.jsonl", "preference"), "max_length": 512},
        "training": {"learning_rate": 5e-6, "per_device_batch_size": 2, "gradient_accumulation_steps": 4}},
}
#: The reference specs axolotl takes as they are.
REFERENCE_SPECS = ["qlora-sft", "pt-full", "dpo-lora", "simpo-lora", "orpo-dora"]


def _spec(name: str):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml") if name in REFERENCE_SPECS else validate_spec_dict(SPECS[name])
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves without a GPU
    return spec


def _translate(name: str, tmp_path: Path):
    spec = _spec(name)
    return spec, AxolotlBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")


@pytest.mark.parametrize("name", [*SPECS, *REFERENCE_SPECS])
def test_translation_matches_golden(name, tmp_path):
    _, job = _translate(name, tmp_path)
    for rel in ("config.yaml", "README.md", "train.sh"):
        check_golden(GOLDEN / name / rel, (job.native_dir / rel).read_text(encoding="utf-8"))
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")  # reviewed as JSON
    check_golden(GOLDEN / name / "data" / "train.json", json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    assert job.argv == ["axolotl", "train", "config.yaml"] and job.cwd == job.native_dir


def _config(name: str, tmp_path: Path) -> dict:
    _, job = _translate(name, tmp_path)
    text = (job.native_dir / "config.yaml").read_text(encoding="utf-8")
    assert text.startswith(f"# axolotl {AXOLOTL_VERSION} config written by uft")
    return yaml.safe_load(text)


def test_every_setting_axolotl_defaults_differently_is_written(tmp_path):
    cfg = _config("sft-lora-chat", tmp_path)
    # axolotl: bf16/tf32 auto, fused AdamW, over-long rows dropped, a save every epoch, shuffled data
    assert cfg["bf16"] is False and cfg["fp16"] is False and cfg["tf32"] is False
    assert cfg["optimizer"] == "adamw_torch" and cfg["excess_length_strategy"] == "truncate"
    assert cfg["save_steps"] == 50 and "save_strategy" not in cfg
    assert cfg["shuffle_merged_datasets"] is False and cfg["curriculum_sampling"] is True
    assert cfg["val_set_size"] == 0.0 and cfg["sequence_len"] == 1024 and cfg["train_on_inputs"] is False
    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (16, 32, 0.05)
    assert cfg["lora_target_modules"] == ["q_proj", "v_proj"] and cfg["lora_target_linear"] is False
    assert cfg["peft_use_rslora"] is True and cfg["loraplus_lr_ratio"] == 16 and cfg["use_tensorboard"] is True
    assert (cfg["micro_batch_size"], cfg["gradient_accumulation_steps"], cfg["num_epochs"]) == (4, 4, 2.0)
    assert cfg["chat_template"] == "jinja" and "You are a helpful assistant." in cfg["chat_template_jinja"]
    [dataset] = cfg["datasets"]
    assert dataset["type"] == "chat_template" and dataset["path"] == "data/train.parquet"
    assert dataset["roles_to_train"] == ["assistant"] and dataset["ds_type"] == "parquet"


def test_the_eval_split_stays_with_uft(tmp_path):
    spec, job = _translate("sft-lora-chat", tmp_path)
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")
    assert len(rows) == 8  # 10 rows, eval_split 0.2 held out for uft's own evaluation
    assert not (job.native_dir / "data" / "eval.parquet").exists()


def test_full_run_has_no_adapter_and_save_at_end_only(tmp_path):
    cfg = _config("full-chatml", tmp_path)
    assert "adapter" not in cfg and cfg["load_in_4bit"] is False and cfg["load_in_8bit"] is False
    assert cfg["save_strategy"] == "no" and cfg["max_steps"] == 30 and "num_epochs" not in cfg
    assert cfg["revision_of_model"] == "main" and cfg["train_on_inputs"] is True


def test_qlora_4_and_8_bit(tmp_path):
    cfg = _config("qlora-sft", tmp_path / "4")
    assert cfg["adapter"] == "qlora" and cfg["load_in_4bit"] is True and cfg["load_in_8bit"] is False
    assert cfg["optimizer"] == "paged_adamw_8bit" and cfg["bf16"] is True
    spec = _spec("qlora-sft")
    spec.adapter.bits = 8
    cfg = native_config(spec)
    assert cfg["adapter"] == "lora" and cfg["load_in_8bit"] is True and cfg["load_in_4bit"] is False


def test_pt_is_completion_and_packing_keeps_uft_order(tmp_path):
    cfg = _config("pt-full", tmp_path)
    assert cfg["datasets"][0]["type"] == "completion" and cfg["datasets"][0]["field"] == "text"
    assert "chat_template" not in cfg and cfg["sample_packing"] is True
    assert cfg["sample_packing_sequentially"] is True and cfg["attn_implementation"] == "sdpa"


def test_dpo_rows_keep_the_canonical_prompt_messages(tmp_path):
    cfg = _config("dpo-lora", tmp_path)
    assert cfg["rl"] == "dpo" and cfg["rl_beta"] == 0.1 and cfg["dpo_loss_type"] == ["sigmoid"]
    assert cfg["datasets"][0]["type"] == "chat_template.default"
    _, job = _translate("dpo-lora", tmp_path / "again")
    row = parquet_rows(job.native_dir / "data" / "train.parquet")[0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"


def test_orpo_rows_are_whole_conversations(tmp_path):
    cfg = _config("orpo-dora", tmp_path)
    assert cfg["rl"] == "orpo" and cfg["datasets"][0]["type"] == "chat_template.argilla"
    _, job = _translate("orpo-dora", tmp_path / "again")
    row = parquet_rows(job.native_dir / "data" / "train.parquet")[0]
    assert [m["role"] for m in row["chosen"]] == ["user", "assistant"] == [m["role"] for m in row["rejected"]]
    assert row["chosen"][0] == row["rejected"][0] and row["chosen"][1] != row["rejected"][1]


def test_orpo_prompts_must_alternate_user_and_assistant(tmp_path):
    rows = tmp_path / "pairs.jsonl"
    turn = [{"role": "user", "content": "a"}, {"role": "user", "content": "c"}]
    rows.write_text(json.dumps({"prompt": turn, "chosen": [{"role": "assistant", "content": "d"}],
                                "rejected": [{"role": "assistant", "content": "e"}]}) + "\n")
    spec = validate_spec_dict({"name": "x", "model": {"path": "org/m"}, "template": "chatml", "method": "orpo",
                               "data": {"train": [{"path": str(rows), "format": "preference"}]}})
    with pytest.raises(SpecError, match=r"row 1: an ORPO prompt's turns after its system prompt are user, user"):
        translate_to(spec, "axolotl", tmp_path / "native")


def test_kto_rows_are_prompt_pairs_with_labels(tmp_path):
    cfg = _config("kto-chatml", tmp_path)
    assert cfg["rl"] == "kto" and cfg["rl_beta"] == 0.2 and cfg["datasets"][0]["type"] == "chatml.prompt_pairs"
    _, job = _translate("kto-chatml", tmp_path / "again")
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")
    assert len(rows) == 16 and {r["label"] for r in rows} == {True, False}  # 8 pairs -> 16 unpaired answers
    assert all(isinstance(r["prompt"], str) and r["system"] == "You are a helpful assistant." for r in rows)


def test_custom_jinja_and_system_prompt(tmp_path):
    cfg = _config("jinja-system", tmp_path)
    assert cfg["chat_template"] == "jinja" and cfg["chat_template_jinja"] == JINJA
    assert cfg["trust_remote_code"] is True and cfg["use_wandb"] is True
    _, job = _translate("jinja-system", tmp_path / "again")
    rows = parquet_rows(job.native_dir / "data" / "train.parquet")
    assert all(r["messages"][0] == {"role": "system", "content": "You answer in one short sentence."} for r in rows)


def test_template_model_is_the_tokenizers_own(tmp_path):
    spec = validate_spec_dict({**SPECS["jinja-system"], "template": "model"})
    spec.training.precision = "fp32"
    assert native_config(spec)["chat_template"] == "tokenizer_default"


def _refusal(spec_dict: dict) -> str:
    spec = validate_spec_dict(spec_dict)
    with pytest.raises(CapabilityError) as info:
        check_capabilities(spec, AxolotlBackend(), has_gpu=True)
        AxolotlBackend().notes(spec)  # the combinations no single capability says
    return str(info.value)


def test_unsupported_features_are_refused_naming_setting_and_alternatives():
    base = {"name": "x", "model": {"path": "org/m"}, "template": "chatml",
            "data": {"train": [{"path": "a.jsonl", "format": "alpaca"}]}}
    text = _refusal({**base, "adapter": {"type": "lora", "init": "pissa"}})
    assert "adapter.init: pissa" in text and "backend axolotl does not support adapter.pissa" in text
    assert "backends that support it: " in text and "trl" in text
    text = _refusal({**base, "adapter": {"type": "prompt"}})
    assert "adapter.prompt" in text and "prompt-learning" in text
    text = _refusal({**base, "method": "cpo", "data": {"train": [{"path": "a.jsonl", "format": "preference"}]}})
    assert "method.cpo" in text and "no rl: cpo" in text
    text = _refusal({**base, "adapter": {"type": "freeze"}})
    assert "adapter.freeze" in text


def test_combinations_axolotl_cannot_take_are_refused_before_anything_is_written(tmp_path):
    base = {"name": "x", "model": {"path": "org/m"}, "data": {"train": _data("preference_sample.jsonl", "preference")}}
    kto = validate_spec_dict({**base, "template": "qwen", "method": "kto"})
    with pytest.raises(CapabilityError, match=r"template: qwen: backend axolotl takes method kto only with template "
                                              r"chatml[\s\S]*fix: use template chatml"):
        translate_to(kto, "axolotl", tmp_path / "kto")
    assert not (tmp_path / "kto").exists()
    alpha = validate_spec_dict({**base, "template": "chatml", "method": "dpo", "adapter": {"alpha": 16.5}})
    with pytest.raises(CapabilityError, match="adapter.alpha: axolotl 0.18.0 takes a whole-number lora_alpha"):
        translate_to(alpha, "axolotl", tmp_path / "alpha")
    assert not (tmp_path / "alpha").exists()


def test_multi_turn_kto_prompts_are_refused_naming_the_row(tmp_path):
    rows = tmp_path / "pairs.jsonl"
    turn = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    rows.write_text(json.dumps({"prompt": turn, "chosen": [{"role": "assistant", "content": "d"}],
                                "rejected": [{"role": "assistant", "content": "e"}]}) + "\n")
    spec = validate_spec_dict({"name": "x", "model": {"path": "org/m"}, "template": "chatml", "method": "kto",
                               "data": {"train": [{"path": str(rows), "format": "preference"}]}})
    with pytest.raises(SpecError, match=r"row 1: a KTO prompt has 3 turns"):
        translate_to(spec, "axolotl", tmp_path / "native")


def test_passthrough_is_merged_and_cannot_shadow_a_spec_setting():
    spec = _spec("pt-full")
    spec.backend_options["axolotl"] = {"dataset_num_proc": 2, "attn_implementation": "flash_attention_2"}
    cfg = native_config(spec)
    assert cfg["dataset_num_proc"] == 2 and cfg["attn_implementation"] == "flash_attention_2"  # declared override
    assert any("backend_options.axolotl.attn_implementation overrides" in n for n in AxolotlBackend().notes(spec))
    spec.backend_options["axolotl"] = {"learning_rate": 1.0}
    with pytest.raises(SpecError, match="backend_options.axolotl.learning_rate"):
        native_config(spec)


def test_an_imported_tf32_overrides_uft_s_tf32_false_with_a_plan_note():
    spec = _spec("pt-full")
    spec.backend_options["axolotl"] = {"tf32": True}
    assert native_config(spec)["tf32"] is True
    assert any("backend_options.axolotl.tf32 overrides uft's value False" in n for n in AxolotlBackend().notes(spec))


def test_run_refuses_an_eject_only_backend_before_anything(tmp_path):
    spec = _spec("dpo-lora")
    with pytest.raises(UftError, match="axolotl is eject-only in uft"):
        run_job(spec, "axolotl", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    _, job = _translate("dpo-lora", tmp_path)
    with pytest.raises(UftError, match=r"eject-only[\s\S]*axolotl preprocess config.yaml"):
        load_backend("axolotl").check(job)


def test_cli_run_and_bakeoff_refuse_axolotl_with_one_message(capsys, tmp_path):
    spec = ROOT / "specs" / "dpo-lora.yaml"
    assert main(["run", str(spec), "--backend", "axolotl", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "backend axolotl is eject-only in uft" in err and "Traceback" not in err
    assert " ".join(EJECT_ONLY.split()) in " ".join(err.split())  # what to do instead: translate, axolotl train
    assert main(["bakeoff", str(spec), "--backends", "trl,axolotl", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "axolotl" in err and "eject-only" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "b" / "runs").exists()


def test_cli_translate_writes_without_any_axolotl_environment(capsys, tmp_path):
    assert main(["translate", str(ROOT / "specs" / "dpo-lora.yaml"), "--backend", "axolotl", "-o",
                 str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "axolotl train config.yaml" in out and (tmp_path / "out" / "config.yaml").exists()
    assert main(["backends"]) == 0
    assert "axolotl: eject-only" in capsys.readouterr().out
