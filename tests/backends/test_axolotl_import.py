"""Migration in from axolotl: every upstream example accounted for key by key (or refused with a fix), each dataset
type, rl method and adapter mapped to the spec, and what the spec cannot say exactly refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from unified_ft.backends.axolotl.importer import ARGUMENTS, KNOWN, import_axolotl
from unified_ft.errors import ProblemsError, SpecError
from unified_ft.specfile import validate_spec_dict

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "axolotl_examples"
MANIFEST = yaml.safe_load((EXAMPLES / "MANIFEST.yaml").read_text())


BASE: dict[str, Any] = {
    "base_model": "Qwen/Qwen2.5-0.5B", "datasets": [{"path": "tatsu-lab/alpaca", "type": "alpaca"}],
    "sequence_len": 1024, "micro_batch_size": 2, "gradient_accumulation_steps": 4, "num_epochs": 1,
    "learning_rate": 2e-4, "warmup_ratio": 0.1, "adapter": "lora", "lora_r": 16, "lora_alpha": 32,
    "lora_target_linear": True, "output_dir": "./outputs/x",
}


def _import(tmp_path: Path, name: str = "their.yml", **changes: Any):
    config = {**BASE, **changes}
    path = tmp_path / name
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if v is not ...}))
    return import_axolotl(path)


def _spec(tmp_path: Path, **changes: Any):
    return validate_spec_dict(_import(tmp_path, **changes).spec)


# ----------------------------------------------------------------------------------------------
# Every example


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_example_imports_with_every_key_accounted_or_is_refused_with_a_fix(name):
    expect = MANIFEST[name]["expect"]
    if expect != "ok":
        with pytest.raises(ProblemsError, match=expect) as caught:
            import_axolotl(EXAMPLES / name)
        assert all(p.hint for p in caught.value.problems)
        return
    imported = import_axolotl(EXAMPLES / name)  # finish() checked that every key is counted exactly once
    native = yaml.safe_load((EXAMPLES / name).read_text())
    counted = {k for k, _ in imported.mapped} | set(imported.kept) | set(imported.ignored)
    assert {k for k in native} <= {k.split(".")[0].split("[")[0] for k in counted}
    spec = validate_spec_dict(imported.spec, name)
    assert spec.model.path == native["base_model"].strip()
    assert spec.data.max_length == native["sequence_len"]
    assert spec.training.learning_rate == float(native["learning_rate"])
    print(f"\naxolotl/{name}: {imported.counts()}")


def test_every_example_file_is_listed_in_the_manifest_and_the_readme():
    files = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".yml", ".yaml")} - {"MANIFEST.yaml"}
    assert files == set(MANIFEST) and len(files) >= 12
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"- {name}:" in readme for name in files) and "Apache-2.0" in readme


# ----------------------------------------------------------------------------------------------
# Datasets


def test_alpaca_maps_to_the_alpaca_format_and_template_with_a_note_on_the_prompt_text(tmp_path):
    imported = _import(tmp_path)
    spec = validate_spec_dict(imported.spec)
    assert spec.data.train[0].hub == "tatsu-lab/alpaca" and spec.data.train[0].format == "alpaca"
    assert spec.template.name == "alpaca" and spec.method.name == "sft"
    assert any("alpaca prompter" in note for note in imported.notes)


def test_chat_template_field_mappings_become_columns_and_the_template_maps(tmp_path):
    dataset = {"path": "cgato/SlimOrcaDedupCleaned", "type": "chat_template", "field_messages": "conversations",
               "message_property_mappings": {"role": "from", "content": "value"}, "split": "train[:10%]",
               "roles": {"user": ["human"], "assistant": ["gpt"]}}
    spec = _spec(tmp_path, datasets=[dataset], chat_template="chatml")
    train = spec.data.train[0]
    assert train.format == "messages" and train.split == "train[:10%]"
    assert train.columns == {"messages": "conversations", "role": "from", "content": "value"}
    assert spec.template.name == "chatml"
    legacy = {"path": "x/y", "type": "chat_template", "message_field_role": "from", "message_field_content": "value"}
    assert _spec(tmp_path, datasets=[legacy]).data.train[0].columns == {"role": "from", "content": "value"}
    assert _spec(tmp_path, datasets=[legacy]).template.name == "model"  # tokenizer_default


def test_chat_template_names_jinja_and_templates_uft_renders_differently(tmp_path):
    chat = [{"path": "x/y", "type": "chat_template"}]
    for axolotl, uft in (("llama3", "llama3"), ("qwen_25", "qwen2_5"), ("gemma", "gemma"),
                         ("tokenizer_default", "model")):
        assert _spec(tmp_path, datasets=chat, chat_template=axolotl).template.name == uft
    jinja = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    spec = _spec(tmp_path, datasets=chat, chat_template="jinja", chat_template_jinja=jinja)
    assert spec.template.name == "jinja" and spec.template.jinja == jinja
    (tmp_path / "t.jinja").write_text(jinja)
    assert _spec(tmp_path, datasets=chat, chat_template_jinja="t.jinja").template.jinja == jinja  # a file
    with pytest.raises(SpecError, match="BOS token"):
        _import(tmp_path, datasets=chat, chat_template="phi_3")
    with pytest.raises(SpecError, match="no template that renders the same"):
        _import(tmp_path, datasets=chat, chat_template="qwen3")
    mixed = [*chat, {"path": "a/b", "type": "chat_template", "chat_template": "llama3"}]
    with pytest.raises(SpecError, match="different templates"):
        _import(tmp_path, datasets=mixed, chat_template="chatml")


def test_completion_and_pretraining_datasets_are_plain_text_for_method_pt(tmp_path):
    spec = _spec(tmp_path, datasets=[{"path": "a/b", "type": "completion", "field": "body"}], adapter=...)
    assert spec.method.name == "pt" and spec.data.train[0].format == "text"
    assert spec.data.train[0].columns == {"text": "body"} and spec.adapter.type == "full"
    pretraining = [{"path": "allenai/c4", "name": "en", "type": "pretrain", "text_column": "content"}]
    spec = _spec(tmp_path, datasets=..., pretraining_dataset=pretraining, max_steps=100)
    assert (spec.data.train[0].hub, spec.data.train[0].subset) == ("allenai/c4", "en")
    assert spec.data.train[0].columns == {"text": "content"} and spec.training.max_steps == 100
    with pytest.raises(SpecError, match="mix"):
        _import(tmp_path, datasets=[{"path": "a/b", "type": "completion"}, {"path": "c/d", "type": "alpaca"}])


def test_local_files_by_path_or_data_files_and_hub_datasets_by_name_and_split(tmp_path):
    (tmp_path / "rows.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    spec = _spec(tmp_path, datasets=[{"path": "json", "ds_type": "json", "data_files": ["rows.jsonl"],
                                      "type": "alpaca"}])
    assert spec.data.train[0].path == str((tmp_path / "rows.jsonl").resolve())
    spec = _spec(tmp_path, datasets=[{"path": "rows.jsonl", "type": "alpaca", "split": "train"}])
    assert spec.data.train[0].path == str((tmp_path / "rows.jsonl").resolve())
    spec = _spec(tmp_path, datasets=[{"path": "org/set", "name": "sub", "split": "test", "type": "alpaca"}])
    assert (spec.data.train[0].hub, spec.data.train[0].subset, spec.data.train[0].split) == ("org/set", "sub", "test")
    with pytest.raises(SpecError, match="not a local file"):
        _import(tmp_path, datasets=[{"path": "org/set", "data_files": ["a/b.jsonl"], "type": "alpaca"}])
    with pytest.raises(SpecError, match="latest revision"):
        _import(tmp_path, datasets=[{"path": "org/set", "revision": "abc", "type": "alpaca"}])


def test_eval_from_val_set_size_or_one_test_dataset(tmp_path):
    assert _spec(tmp_path, val_set_size=0.05).data.eval_split == 0.05
    spec = _spec(tmp_path, test_datasets=[{"path": "org/eval", "type": "alpaca"}])
    assert spec.data.eval.hub == "org/eval" and spec.data.eval.split == "test"  # axolotl's split for test_datasets
    assert _spec(tmp_path, test_datasets=[{"path": "org/eval", "type": "alpaca", "split": "dev"}]).data.eval.split \
        == "dev"
    with pytest.raises(SpecError, match="fraction"):
        _import(tmp_path, val_set_size=200)


def test_removed_sharegpt_types_and_unmapped_dataset_layouts_are_refused_with_what_to_write(tmp_path):
    with pytest.raises(SpecError, match=r"older axolotl") as caught:
        _import(tmp_path, datasets=[{"path": "a/b", "type": "sharegpt", "conversation": "chatml"}])
    assert ARGUMENTS["axolotl_version"] in str(caught.value) and "type: chat_template" in str(caught.value)
    with pytest.raises(SpecError, match="user-defined"):
        _import(tmp_path, datasets=[{"path": "a/b", "type": {"field_instruction": "q", "format": "{instruction}"}}])
    with pytest.raises(SpecError, match="input_output"):
        _import(tmp_path, datasets=[{"path": "a/b", "type": "input_output"}])
    bad_roles = {"path": "a/b", "type": "chat_template", "roles": {"assistant": ["bot"]}}
    with pytest.raises(SpecError, match="'bot'"):
        _import(tmp_path, datasets=[bad_roles])
    with pytest.raises(SpecError, match="roles_to_train"):
        _import(tmp_path, datasets=[{"path": "a/b", "type": "chat_template", "roles_to_train": ["user"]}])
    with pytest.raises(SpecError, match="older axolotl"):
        _import(tmp_path, datasets=[{"path": "a/b", "type": "alpaca:chatml"}])


@pytest.mark.parametrize(("changes", "where"), [
    ({"dataset_exact_deduplication": True}, "dataset_exact_deduplication"), ({"min_sample_len": 64}, "min_sample_len"),
    ({"datasets": [{"path": "a/b", "type": "alpaca", "shards": 4, "shards_idx": 0}]}, "datasets[0].shards"),
    ({"datasets": ..., "pretraining_dataset": [{"path": "a/b", "skip": 100}], "max_steps": 10},
     "pretraining_dataset[0].skip"),
])
def test_settings_that_leave_rows_out_are_refused(tmp_path, changes, where):
    with pytest.raises(SpecError, match="uft trains every row") as caught:
        _import(tmp_path, **changes)
    assert caught.value.problems[0].where == where


def test_rows_longer_than_sequence_len_are_said_to_be_truncated_unless_axolotl_truncates_them_too(tmp_path):
    assert any("leaves them out" in note for note in _import(tmp_path).notes)
    imported = _import(tmp_path, excess_length_strategy="truncate")
    assert "excess_length_strategy" in imported.ignored and not any("leaves them out" in n for n in imported.notes)


def test_row_order_reads_both_shuffle_keys_and_says_uft_shuffles_once(tmp_path):
    """curriculum_sampling is read (not kept for axolotl, where uft writes it) even when the merged rows shuffle."""
    imported = _import(tmp_path, curriculum_sampling=True)
    assert ("curriculum_sampling", "data.shuffle") in imported.mapped and "curriculum_sampling" not in imported.kept
    assert imported.spec["data"]["shuffle"] is True and not any("row order" in n for n in imported.notes)
    assert _spec(tmp_path, curriculum_sampling=True, shuffle_merged_datasets=False).data.shuffle is False
    assert any("uft shuffles them once" in note for note in _import(tmp_path).notes)  # axolotl's random sampler


def test_packing_order_is_read_and_multipack_is_said_to_become_sequential(tmp_path):
    sequential = _import(tmp_path, sample_packing=True, sample_packing_sequentially=True)
    assert "sample_packing_sequentially" in sequential.ignored and not sequential.kept
    assert not any("multipack" in note for note in sequential.notes)
    assert any("multipack" in note for note in _import(tmp_path, sample_packing=True).notes)
    unpacked = _import(tmp_path, sample_packing_sequentially=True)
    assert "sample_packing is off" in unpacked.ignored["sample_packing_sequentially"]


@pytest.mark.parametrize(("tf32", "ignored", "kept", "note"), [
    (False, True, False, None), (True, False, True, "tf32 True is kept"), ("auto", False, True, "tf32 auto is kept"),
    (..., False, False, "tf32: the config sets none")])
def test_tf32_false_is_uft_s_own_and_tf32_on_is_kept_for_axolotl_with_a_note(tmp_path, tf32, ignored, kept, note):
    imported = _import(tmp_path, tf32=tf32)
    assert ("tf32" in imported.ignored) is ignored and ("tf32" in imported.kept) is kept
    assert any(note in n for n in imported.notes) if note else not any("tf32" in n for n in imported.notes)


def test_lora_target_linear_with_listed_modules_is_all_linear_with_a_note_on_the_listed_ones(tmp_path):
    imported = _import(tmp_path, lora_target_modules=["q_proj", "lm_head"])
    assert imported.spec["adapter"]["target_modules"] == "all-linear"
    assert any("lora_target_modules ['q_proj', 'lm_head']" in note for note in imported.notes)
    assert not any("lora_target_modules" in note for note in _import(tmp_path).notes)


def test_a_chat_template_the_datasets_do_not_render_with_is_kept_with_a_note(tmp_path):
    imported = _import(tmp_path, chat_template="chatml")  # alpaca rows: axolotl's prompter, not the chat template
    assert imported.spec["template"] == "alpaca" and imported.kept["chat_template"] == "chatml"
    assert any(n.startswith("chat_template is kept") for n in imported.notes)
    validate_spec_dict(imported.spec)


# ----------------------------------------------------------------------------------------------
# Methods


DPO_DATA = [{"path": "org/pairs", "type": "chat_template.default", "field_messages": "conversation",
             "field_chosen": "good", "field_rejected": "bad"}]


def test_rl_methods_and_their_betas(tmp_path):
    spec = _spec(tmp_path, rl="dpo", rl_beta=0.2, datasets=DPO_DATA, chat_template="chatml")
    assert spec.method.name == "dpo" and spec.method.beta == 0.2 and spec.data.train[0].format == "preference"
    assert spec.data.train[0].columns == {"messages": "conversation", "chosen": "good", "rejected": "bad"}
    imported = _import(tmp_path, rl="ipo", datasets=DPO_DATA, chat_template="chatml")
    spec = validate_spec_dict(imported.spec)
    assert spec.method.loss_type == "ipo" and spec.method.beta == 0.1  # trl's default beta, written out
    assert ("rl_beta", "method.beta") in imported.defaults
    orpo = [{"path": "org/pairs", "type": "chatml.intel"}]
    spec = _spec(tmp_path, rl="orpo", orpo_alpha=0.05, datasets=orpo)
    assert spec.method.name == "orpo" and spec.method.beta == 0.05 and spec.template.name == "chatml"
    assert spec.data.train[0].columns == {"prompt": "question"}
    spec = _spec(tmp_path, rl="simpo", rl_beta=2.5, simpo_gamma=0.8, datasets=orpo)
    assert (spec.method.beta, spec.method.gamma, spec.method.nll_weight) == (2.5, 0.8, 1.0)  # trl's cpo_alpha
    kto = [{"path": "org/kto", "type": "llama3.argilla"}]
    spec = _spec(tmp_path, rl="kto", rl_beta=0.3, datasets=kto)
    assert spec.method.name == "kto" and spec.data.train[0].format == "unpaired" and spec.method.beta == 0.3
    assert spec.template.name == "llama3" and spec.data.train[0].columns == {"prompt": "instruction"}
    reward = [{"path": "org/pairs", "type": "bradley_terry.chat_template"}]
    spec = _spec(tmp_path, reward_model=True, adapter=..., datasets=reward, chat_template="qwen_25",
                 model_type="AutoModelForSequenceClassification", num_labels=1)
    assert spec.method.name == "rm" and spec.data.train[0].columns == {"prompt": "input"}


def test_rl_methods_and_layouts_uft_cannot_express_are_refused(tmp_path):
    with pytest.raises(SpecError, match="'grpo' has no uft translation"):
        _import(tmp_path, rl="grpo", datasets=DPO_DATA)
    with pytest.raises(SpecError, match=r"chosen\[1\]"):
        _import(tmp_path, rl="dpo", datasets=[{"path": "a/b", "type": "llama3.ultra"}])
    with pytest.raises(SpecError, match="has no uft mapping yet") as caught:
        _import(tmp_path, rl="dpo", datasets=[{"path": "a/b", "type": "zephyr.nectar"}])
    assert "chatml.prompt_pairs" in caught.value.problems[0].hint


# ----------------------------------------------------------------------------------------------
# Adapters and quantization


def test_adapters_and_quantization(tmp_path):
    spec = _spec(tmp_path, lora_dropout=0.05, peft_use_rslora=True)
    assert (spec.adapter.type, spec.adapter.r, spec.adapter.alpha, spec.adapter.dropout) == ("lora", 16, 32, 0.05)
    assert spec.adapter.target_modules == "all-linear" and spec.adapter.rslora is True
    spec = _spec(tmp_path, adapter="qlora", load_in_4bit=True)
    assert (spec.adapter.type, spec.adapter.bits) == ("qlora", 4)
    spec = _spec(tmp_path, load_in_8bit=True)  # LoRA on an 8-bit base
    assert (spec.adapter.type, spec.adapter.bits) == ("qlora", 8)
    spec = _spec(tmp_path, peft_use_dora=True, lora_target_linear=..., lora_target_modules=["q_proj", "v_proj"])
    assert spec.adapter.type == "dora" and spec.adapter.target_modules == ["q_proj", "v_proj"]
    assert _spec(tmp_path, adapter=..., lora_r=..., lora_alpha=..., lora_target_linear=...).adapter.type == "full"
    assert _spec(tmp_path, loraplus_lr_ratio=16).adapter.loraplus_lr_ratio == 16


def test_adapter_settings_uft_cannot_honour_are_errors_naming_them(tmp_path):
    with pytest.raises(SpecError, match="without an adapter"):
        _import(tmp_path, adapter=..., load_in_4bit=True)
    with pytest.raises(SpecError, match="regular expression"):
        _import(tmp_path, lora_target_linear=..., lora_target_modules="q_proj")
    with pytest.raises(SpecError, match="no LoRA target modules"):
        _import(tmp_path, lora_target_linear=...)
    with pytest.raises(SpecError, match="lora_r"):
        _import(tmp_path, lora_r=...)
    with pytest.raises(SpecError, match="llama-adapter"):
        _import(tmp_path, adapter="llama-adapter")


# ----------------------------------------------------------------------------------------------
# Training settings


def test_training_settings_and_axolotl_defaults_written_out(tmp_path):
    imported = _import(tmp_path, learning_rate="2e-5", bf16=True, optimizer="paged_adamw_8bit", seed=7,
                       max_steps=50, save_steps=10, weight_decay=0.01, wandb_project="p")
    spec = validate_spec_dict(imported.spec)
    t = spec.training
    assert t.learning_rate == 2e-5 and t.precision == "bf16" and t.optimizer == "paged_adamw_8bit"
    assert (t.seed, t.max_steps, t.epochs, t.save_steps, t.weight_decay) == (7, 50, None, 10, 0.01)
    assert t.report_to == ["wandb"] and "num_epochs" in imported.ignored
    assert imported.kept["wandb_project"] == "p" and any("WANDB_PROJECT" in n for n in imported.notes)
    spec = _spec(tmp_path, fp16=True)
    assert spec.training.precision == "fp16" and spec.data.max_length == 1024
    defaults = dict(_import(tmp_path, sequence_len=...).defaults)
    assert defaults["sequence_len"] == "data.max_length" and defaults["optimizer"] == "training.optimizer"
    spec = _spec(tmp_path, sequence_len=..., optimizer=...)
    assert spec.data.max_length == 512 and spec.training.optimizer == "adamw_torch"  # axolotl's defaults
    assert spec.training.precision == "auto" and spec.training.seed == 42


def test_warmup_steps_map_exactly_or_are_refused(tmp_path):
    assert _spec(tmp_path, warmup_ratio=..., warmup_steps=10, max_steps=100).training.warmup_ratio * 100 == 10
    assert _spec(tmp_path, warmup_ratio=..., warmup_steps=1, max_steps=100).training.warmup_ratio * 100 == 2
    assert _spec(tmp_path, warmup_ratio=..., warmup_steps=0).training.warmup_ratio == 0
    with pytest.raises(SpecError, match="warmup_steps") as caught:
        _import(tmp_path, warmup_ratio=..., warmup_steps=10)
    assert "warmup_ratio" in caught.value.problems[0].hint
    assert _spec(tmp_path, warmup_ratio=..., max_steps=1000).training.warmup_ratio * 1000 == 30  # axolotl's 3%
    imported = _import(tmp_path, warmup_ratio=...)
    assert imported.spec["training"]["warmup_ratio"] == 0.03 and any("at most 100" in n for n in imported.notes)


def test_settings_without_a_uft_equivalent_are_refused_by_name(tmp_path):
    for changes, key in (({"lr_scheduler": "rex"}, "lr_scheduler"), ({"optimizer": "muon"}, "optimizer"),
                         ({"batch_size": 16, "gradient_accumulation_steps": ...}, "batch_size"),
                         ({"tokenizer_config": "other/tok"}, "tokenizer_config"),
                         ({"process_reward_model": True}, "process_reward_model")):
        with pytest.raises(SpecError) as caught:
            _import(tmp_path, **changes)
        assert key in caught.value.problems[0].where


# ----------------------------------------------------------------------------------------------
# Ledger: kept, unknown, wrong types, wrong tool


def test_launch_and_tokenizer_keys_are_kept_with_notes_and_nothing_is_dropped(tmp_path):
    imported = _import(tmp_path, deepspeed="deepspeed_configs/zero2.json", special_tokens={"pad_token": "<pad>"},
                       neftune_noise_alpha=5, wandb_entity=None)
    options = imported.spec["backend_options"]["axolotl"]
    assert options["deepspeed"] == "deepspeed_configs/zero2.json" and options["neftune_noise_alpha"] == 5
    assert options["special_tokens"] == {"pad_token": "<pad>"}
    assert any(n.startswith("deepspeed is kept") for n in imported.notes)
    assert "wandb_entity" in imported.ignored and "output_dir" in imported.ignored
    validate_spec_dict(imported.spec)


def test_unknown_keys_are_kept_with_a_did_you_mean_and_the_version_the_importer_knows(tmp_path):
    imported = _import(tmp_path, lerning_rate=1e-4, datasets=[{"path": "a/b", "type": "alpaca", "splt": "x"}])
    assert imported.unknown == {"lerning_rate": "learning_rate", "datasets[0].splt": "split"}
    assert any(f"axolotl {ARGUMENTS['axolotl_version']}" in n and "lerning_rate" in n for n in imported.notes)
    assert imported.spec["backend_options"]["axolotl"]["lerning_rate"] == 1e-4


def test_keys_of_an_older_axolotl_say_which_version_the_importer_knows(tmp_path):
    with pytest.raises(SpecError, match="older axolotl") as caught:
        _import(tmp_path, unsloth_lora_mlp=True)
    assert ARGUMENTS["axolotl_version"] in str(caught.value) and "lora_mlp_kernel" in str(caught.value)


@pytest.mark.parametrize(("changes", "key"), [
    ({"learning_rate": "fast"}, "learning_rate"), ({"lora_r": "sixteen"}, "lora_r"),
    ({"sample_packing": "yes"}, "sample_packing"), ({"micro_batch_size": 1.5}, "micro_batch_size"),
    ({"datasets": {"path": "a/b", "type": "alpaca"}}, "datasets"), ({"base_model": ["a", "b"]}, "base_model"),
    ({"bf16": "maybe"}, "bf16"), ({"datasets": [{"path": "a/b", "type": "chat_template", "roles": ["user"]}]},
                                  "datasets[0].roles"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(tmp_path, changes, key):
    with pytest.raises(SpecError) as caught:
        _import(tmp_path, **changes)
    assert caught.value.problems[0].where.endswith(key) or f"({key})" in caught.value.problems[0].where


def test_a_config_of_another_tool_names_its_importer(tmp_path):
    path = tmp_path / "lf.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": "x", "stage": "sft", "finetuning_type": "lora",
                                    "template": "qwen", "cutoff_len": 1024, "dataset": "alpaca"}))
    with pytest.raises(SpecError, match="llamafactory") as caught:
        import_axolotl(path)
    assert "uft import llamafactory" in caught.value.problems[0].hint
    path.write_text("- a list\n")
    with pytest.raises(SpecError, match="not an axolotl config"):
        import_axolotl(path)


# ----------------------------------------------------------------------------------------------
# The key table


def test_the_key_table_is_axolotls_own():
    assert ARGUMENTS["axolotl_version"] == "0.18.0" and len(ARGUMENTS["axolotl_commit"]) == 40
    config = ARGUMENTS["config"]
    assert config["sequence_len"] == 512 and config["optimizer"] == "adamw_torch_fused"
    assert config["num_epochs"] == 1.0 and config["micro_batch_size"] == 1
    assert ARGUMENTS["aliases"]["model_revision"] == "revision_of_model"  # both spellings are keys
    assert {"base_model", "datasets", "lora_r", "rl", "model_revision", "liger_rms_norm"} <= KNOWN
    assert {"field_messages", "message_property_mappings", "text_column", "field_chosen"} <= {
        k for keys in ARGUMENTS["datasets"].values() for k in keys}


def test_dump_arguments_reads_pydantic_fields_defaults_aliases_and_mixins(tmp_path):
    schemas = tmp_path / "src" / "axolotl" / "utils" / "schemas"
    schemas.mkdir(parents=True)
    (tmp_path / "src" / "axolotl" / "integrations" / "liger").mkdir(parents=True)
    (tmp_path / "VERSION").write_text("9.9.9\n")
    (schemas / "model.py").write_text(
        "class ModelInputConfig(BaseModel):\n    base_model: str = Field(json_schema_extra={})\n"
        "    revision_of_model: str | None = Field(default=None, alias='model_revision')\n")
    (schemas / "config.py").write_text(
        "class AxolotlInputConfig(ModelInputConfig, BaseModel):\n    model_config = {'populate_by_name': True}\n"
        "    sequence_len: int = Field(default=512)\n    tags: list[str] = Field(default_factory=list)\n"
        "    lr: float = 1e-4\n    _private: int = 0\n"
        "class SFTDataset(BaseModel):\n    path: str | None = None\n")
    (tmp_path / "src" / "axolotl" / "integrations" / "liger" / "args.py").write_text(
        "class LigerArgs(BaseModel):\n    liger_rms_norm: bool | None = None\n")
    script = Path(__file__).resolve().parents[2] / "backends" / "axolotl" / "dump_arguments.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=True)
    table = json.loads(done.stdout)
    assert table["axolotl_version"] == "9.9.9"
    assert table["config"] == {"base_model": None, "lr": 1e-4, "model_revision": None, "revision_of_model": None,
                               "sequence_len": 512, "tags": []}
    assert table["aliases"] == {"model_revision": "revision_of_model"} and table["types"]["sequence_len"] == "int"
    assert table["datasets"]["SFTDataset"] == {"path": None}
    assert table["plugins"] == {"liger": {"liger_rms_norm": None}}


# ----------------------------------------------------------------------------------------------
# The imported columns read axolotl's row layouts


LAYOUTS = [
    # (config changes, dataset entry, a row as axolotl's docs and strategies read it, what uft reads from it)
    ({}, {"type": "chat_template", "field_messages": "conversations",
          "message_property_mappings": {"role": "from", "content": "value"}},
     {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
     {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ({"rl": "dpo", "chat_template": "chatml"}, {"type": "chat_template.default", "field_messages": "conversation",
                                               "field_chosen": "good", "field_rejected": "bad"},
     {"conversation": [{"role": "user", "content": "q"}], "good": {"role": "assistant", "content": "a"},
      "bad": {"role": "assistant", "content": "b"}},
     {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
      "rejected": [{"role": "assistant", "content": "b"}]}),
    ({"rl": "dpo"}, {"type": "chatml.intel"}, {"system": "s", "question": "q", "chosen": "a", "rejected": "b"},
     {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
      "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}),
    ({"rl": "kto"}, {"type": "llama3.argilla"}, {"instruction": "q", "completion": "a", "label": True},
     {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}],
      "label": True}),
    ({"reward_model": True, "adapter": ...}, {"type": "bradley_terry.chat_template"},
     {"input": "q", "chosen": "a", "rejected": "b"},
     {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
      "rejected": [{"role": "assistant", "content": "b"}]}),
    ({"adapter": ...}, {"type": "completion", "field": "body"}, {"body": "plain text"}, {"text": "plain text"}),
]


@pytest.mark.parametrize(("changes", "entry", "row", "record"), LAYOUTS, ids=[e["type"] for _, e, _, _ in LAYOUTS])
def test_imported_columns_read_axolotls_row_layouts(tmp_path, changes, entry, row, record):
    from unified_ft.data.readers import read_records

    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    spec = _spec(tmp_path, **changes, datasets=[{"path": "rows.jsonl", **entry}])
    train = spec.data.train[0]
    found = list(read_records(train.path, train.format, train.columns))
    assert found == [record]
