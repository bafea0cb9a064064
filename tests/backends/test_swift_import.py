"""Migration in from ms-swift: a shell command, swift's config file or args.json becomes a spec with swift's
implicit defaults explicit and unmodelled arguments kept visibly; import(translate(spec)) gives back the same
effective training settings; ms-swift's own example scripts import as a new user would try them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unified_ft.backends.swift import SwiftBackend
from unified_ft.backends.swift.importer import import_swift
from unified_ft.cli import main
from unified_ft.errors import SpecError
from unified_ft.launch import prepare_data
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).with_name("swift_examples")
EFFECTIVE = ("model", "template", "method", "adapter", "training")


@pytest.mark.parametrize("native", ["config.yaml", "train.sh"])
@pytest.mark.parametrize("name", ["sft-lora", "dpo-lora", "pt-full", "qlora-sft", "orpo-dora", "simpo-lora"])
def test_round_trip_keeps_every_effective_setting(name, native, tmp_path):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    spec.training.precision = spec.training.precision if spec.training.precision != "auto" else "fp32"
    job = SwiftBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")
    imported = import_swift(job.native_dir / native)
    back = validate_spec_dict(imported.spec)
    for section in EFFECTIVE:
        assert getattr(back, section) == getattr(spec, section), section
    assert back.data.max_length == spec.data.max_length and back.data.packing == spec.data.packing
    assert back.data.train_on_prompt == spec.data.train_on_prompt
    assert imported.kept == {}
    # uft's data step mixed the datasets into one file of swift's shapes
    assert [d.format for d in back.data.train] == [{"alpaca": "messages"}.get(spec.data.train[0].format,
                                                                              spec.data.train[0].format)]


def test_swift_defaults_become_explicit_and_unknown_flags_stay_visible(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                                               {"role": "assistant", "content": "b"}]}) + "\n")
    script = tmp_path / "run.sh"
    script.write_text("# a user's script\nCUDA_VISIBLE_DEVICES=0 NPROC_PER_NODE=2 \\\n"
                      "  swift sft --model Qwen/Qwen2.5-0.5B "
                      "--train_type lora --template qwen --dataset d.jsonl --per_device_train_batch_size 2 \\\n"
                      "  --lora_rankk 16 --max_length 512 --model_kwargs '{\"a\": 1}'\n")
    imported = import_swift(script)
    spec = imported.spec
    assert spec["adapter"] == {"type": "lora", "r": 8, "alpha": 32.0, "dropout": 0.05, "target_modules": "all-linear",
                               "rslora": False}
    training = spec["training"]
    assert training["gradient_accumulation_steps"] == 4  # swift's ceil(16 / 2 per device / 2 GPUs)
    assert spec["distributed"] == {"processes_per_node": 2}  # swift's torchrun, data parallel
    assert ("env NPROC_PER_NODE", "distributed.processes_per_node") in imported.mapped
    assert any("effective batch of 2 per device x 4 accumulation x 2 = 16" in n for n in imported.notes)
    assert training["epochs"] == 3.0 and training["learning_rate"] == 1e-4 and training["weight_decay"] == 0.1
    assert training["gradient_checkpointing"] is True
    assert imported.kept == {"lora_rankk": 16, "model_kwargs": {"a": 1}, "adam_beta2": 0.95}
    assert imported.unknown == {"lora_rankk": "lora_rank"}
    assert any("lora_rankk" in n and "did you mean lora_rank?" in n for n in imported.notes)
    assert imported.ignored["env CUDA_VISIBLE_DEVICES"].startswith("how the job is launched")
    assert spec["data"]["train"] == [{"path": str((tmp_path / "d.jsonl").resolve()), "format": "messages"}]
    validate_spec_dict(spec)


@pytest.mark.parametrize("script", ["lora_sft.sh", "qlora_bnb_train.sh", "rlhf_dpo_lora.sh"])
def test_ms_swift_example_scripts_import(script, tmp_path, capsys):
    out = tmp_path / "spec.yaml"
    assert main(["import", "swift", str(EXAMPLES / script), "-o", str(out)]) == 0
    spec = load_spec(out)
    assert spec.model.path == "Qwen/Qwen2.5-7B-Instruct" and spec.training.gradient_accumulation_steps == 16
    assert spec.adapter.r == 8 and spec.adapter.alpha == 32 and spec.training.precision == "bf16"
    train = spec.data.train[0]
    assert train.hub and train.format == "auto" and train.hub_site == "modelscope"
    printed = capsys.readouterr().out
    assert "backend_options.swift." in printed and "ModelScope id" in printed
    if script == "qlora_bnb_train.sh":
        assert spec.adapter.type == "qlora" and spec.adapter.bits == 4
    if script == "rlhf_dpo_lora.sh":
        assert spec.method.name == "dpo" and spec.backend_options["swift"]["rpo_alpha"] == 0.1
        assert spec.data.eval_split == 0.01
    else:
        assert train.samples == 500 and spec.backend_options["swift"]["model_author"] == "swift"


def test_bad_commands_are_clear_errors(tmp_path):
    computed = tmp_path / "computed.sh"
    computed.write_text("swift sft --model m --dataset d --gradient_accumulation_steps $(nproc) \\\n  --lora_rank 8\n")
    with pytest.raises(SpecError, match="command substitution"):
        import_swift(computed)
    # swift's examples' integer `$(expr 16 / $nproc_per_node)` is worked out as the shell would
    assert import_swift(EXAMPLES / "rlhf_kto.sh").spec["training"]["gradient_accumulation_steps"] == 8
    none = tmp_path / "none.sh"
    none.write_text("echo hello\n")
    with pytest.raises(SpecError, match="No swift training command"):
        import_swift(none)
    old = tmp_path / "args.json"
    old.write_text(json.dumps({"swift_version": "2.6.1", "model": "x"}))
    with pytest.raises(SpecError, match="swift version"):
        import_swift(old)
    unset = tmp_path / "unset.sh"
    unset.write_text("swift sft --model $MODEL --dataset d.jsonl\n")
    with pytest.raises(SpecError, match=r"\$MODEL is not set"):
        import_swift(unset)


def test_a_llamafactory_import_then_a_swift_import_of_its_translation_agree(tmp_path):
    """Cross-migration both ways: the swift command uft writes imports back to the same effective spec."""
    from unified_ft.backends.llamafactory.importer import import_config

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "demo.json"}}))
    (tmp_path / "data" / "demo.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "yo"}]))
    native = {"model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "stage": "sft", "finetuning_type": "lora",
              "lora_rank": 16, "lora_target": "q_proj,v_proj", "dataset": "demo", "template": "qwen",
              "cutoff_len": 512, "learning_rate": 1.0e-4, "num_train_epochs": 2.0}
    (tmp_path / "lf.yaml").write_text(yaml.safe_dump(native))
    spec = validate_spec_dict(import_config(tmp_path / "lf.yaml").spec)
    spec.training.precision = "fp32"
    job = SwiftBackend().translate(spec, prepare_data(spec, tmp_path / "prepared"), tmp_path / "native")
    back = validate_spec_dict(import_swift(job.native_dir / "train.sh").spec)
    for section in EFFECTIVE:
        assert getattr(back, section) == getattr(spec, section), section


def test_kto_on_unpaired_answers_round_trips(tmp_path):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}", "label": i % 2 == 0} for i in range(4)]
    (tmp_path / "k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = validate_spec_dict({"name": "kto", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"}, "template": "qwen",
                               "method": "kto", "data": {"train": [{"path": str(tmp_path / "k.jsonl"),
                                                                    "format": "unpaired"}]},
                               "training": {"precision": "fp32"}})
    job = SwiftBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")
    back = validate_spec_dict(import_swift(job.native_dir / "train.sh").spec)
    assert back.method == spec.method and back.data.train[0].format == "unpaired"


def _messages(path: Path) -> None:
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                             {"role": "assistant", "content": "b"}]}) + "\n")


@pytest.mark.parametrize(("flags", "precision"), [
    ("", "auto"), ("--torch_dtype bfloat16", "bf16"), ("--torch_dtype float16", "fp16"),
    ("--bf16 true", "bf16"), ("--bf16 false --fp16 false", "fp32")])
def test_precision_follows_swift_and_the_models_own_dtype_is_auto(flags, precision, tmp_path):
    _messages(tmp_path / "d.jsonl")
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft --model Qwen/Qwen2.5-0.5B --template qwen --dataset d.jsonl {flags}\n")
    assert import_swift(script).spec["training"]["precision"] == precision


@pytest.mark.parametrize(("flags", "precision", "kept"), [
    ("--torch_dtype bfloat16", "bf16", None), ("--torch_dtype float16", "fp16", None),
    ("--torch_dtype float32", "fp16", "float32"), ("--torch_dtype float32 --fp16 false", "fp32", None),
    ("--tuner_type full --torch_dtype float16", "fp16", "float16"),
    ("--torch_dtype bfloat16 --bf16 false --fp16 false", "fp32", "bfloat16")])
def test_torch_dtype_survives_a_round_trip_and_one_uft_would_not_write_is_kept_with_a_note(flags, precision, kept,
                                                                                          tmp_path):
    from unified_ft.backends.swift import native_args

    _messages(tmp_path / "d.jsonl")
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft --model Qwen/Qwen2.5-0.5B --template qwen --dataset d.jsonl {flags}\n")
    imported = import_swift(script)
    assert imported.spec["training"]["precision"] == precision
    assert imported.kept.get("torch_dtype") == kept
    assert (("torch_dtype", "training.precision") in imported.mapped) == (kept is None)
    assert (kept is None) != any(n.startswith(f"torch_dtype {kept} ") for n in imported.notes)
    args = native_args(validate_spec_dict(imported.spec), "data/train.parquet")[1]
    assert args["torch_dtype"] == flags.split("--torch_dtype ")[1].split()[0]  # as the command had it
    assert (args["bf16"], args["fp16"]) == (precision == "bf16", precision == "fp16")


def test_a_yaml_dataset_given_as_one_string_is_one_dataset(tmp_path):
    _messages(tmp_path / "d.jsonl")
    config = tmp_path / "config.yaml"
    config.write_text("model: Qwen/Qwen2.5-0.5B\ntemplate: qwen\ndataset: d.jsonl\n")
    spec = import_swift(config).spec
    assert spec["data"]["train"] == [{"path": str((tmp_path / "d.jsonl").resolve()), "format": "messages"}]


@pytest.mark.parametrize("how", ["positional", "--config"])
def test_a_script_running_swift_on_a_config_file_reads_it_with_yaml_numbers_as_numbers(how, tmp_path):
    _messages(tmp_path / "d.jsonl")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sft.yaml").write_text(
        "model: Qwen/Qwen2.5-0.5B\ntemplate: qwen\ndataset: d.jsonl\nlearning_rate: 1e-4\n"
        "num_train_epochs: '2'\nlora_rank: '16'\nper_device_train_batch_size: 2\n")
    config = "conf/sft.yaml" if how == "positional" else "--config conf/sft.yaml"
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft {config} --per_device_train_batch_size 4\n")
    spec = import_swift(script).spec
    training = spec["training"]
    assert training["learning_rate"] == 1e-4 and training["epochs"] == 2.0
    assert training["per_device_batch_size"] == 4  # the command line overrides the file, as in swift
    assert spec["adapter"]["r"] == 16
    assert spec["data"]["train"] == [{"path": str((tmp_path / "d.jsonl").resolve()), "format": "messages"}]


def test_system_is_the_portable_template_system_and_survives_a_round_trip(tmp_path):
    _messages(tmp_path / "d.jsonl")
    script = tmp_path / "run.sh"
    script.write_text("swift sft --model Qwen/Qwen2.5-0.5B --template qwen --dataset d.jsonl "
                      "--torch_dtype bfloat16 --system 'You are terse.'\n")
    imported = import_swift(script)
    assert imported.spec["template"] == {"name": "qwen", "system": "You are terse."}
    assert "system" not in imported.kept
    spec = validate_spec_dict(imported.spec)
    job = SwiftBackend().translate(spec, prepare_data(spec, tmp_path / "data"), tmp_path / "native")
    for native in ("config.yaml", "train.sh"):
        back = validate_spec_dict(import_swift(job.native_dir / native).spec)
        assert back.template == spec.template, native


@pytest.mark.parametrize(("model", "template"), [("Qwen/Qwen2.5-7B-Instruct", "qwen2_5"),
                                                 ("Qwen/Qwen2-7B-Instruct", "qwen"),
                                                 ("LLM-Research/Meta-Llama-3-8B-Instruct", "llama3"),
                                                 ("Qwen/Qwen3-4B-Instruct-2507", "chatml"),
                                                 ("google/gemma-2-9b-it", "gemma"),
                                                 ("LLM-Research/Phi-3.5-mini-instruct", "phi3"),
                                                 ("01ai/Yi-1.5-9B-Chat", "chatml")])
def test_no_template_names_the_well_known_models_template(model, template, tmp_path):
    _messages(tmp_path / "d.jsonl")
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft --model {model} --dataset d.jsonl\n")
    imported = import_swift(script)
    assert imported.spec["template"] == template
    assert any(n.startswith("no --template") and f"`template: {template}`" in n for n in imported.notes)


@pytest.mark.parametrize(("model", "family"), [("Qwen/Qwen3-8B", "Qwen3"), ("Qwen/Qwen2.5-Math-7B-Instruct", "Math"),
                                               ("LLM-Research/Meta-Llama-3.1-8B-Instruct", "Llama-3.1"),
                                               ("modelscope/Llama-2-7b-chat-ms", "Llama-2"),
                                               ("AI-ModelScope/Mistral-7B-Instruct-v0.2", "Mistral"),
                                               ("LLM-Research/gemma-3-1b-it", "Gemma-3"),
                                               ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "DeepSeek"),
                                               ("ZhipuAI/glm-4-9b-chat", "GLM"),
                                               ("Shanghai_AI_Laboratory/internlm2_5-7b-chat", "InternLM"),
                                               ("baichuan-inc/Baichuan2-7B-Chat", "Baichuan"),
                                               ("someone/unknown-model", None)])
def test_a_family_uft_has_no_template_for_is_named_and_the_note_says_what_to_set(model, family, tmp_path):
    _messages(tmp_path / "d.jsonl")
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft --model {model} --dataset d.jsonl\n")
    imported = import_swift(script)
    assert imported.spec["template"] == "model"
    note = next(n for n in imported.notes if n.startswith("no --template"))
    named = note.partition("no uft template for model family ")[2].partition(";")[0]
    assert (family in named) if family else ("uft does not know" in note and not named)
    assert "LLaMA-Factory cannot take" in note and "set template.name" in note


def test_template_families_pick_the_chat_format_swift_registers():
    from unified_ft.templates import model_family, template_for_model

    assert template_for_model("Qwen/Qwen2.5-Coder-7B-Instruct") == "qwen2_5"  # swift: qwen2_5
    assert template_for_model("Qwen/Qwen2.5-Math-7B-Instruct") is None  # swift: qwen2_5_math (its own system)
    assert template_for_model("LLM-Research/Meta-Llama-3.1-8B-Instruct") is None  # swift: llama3_2 (dated system)
    assert template_for_model("google/gemma-7b-it") == "gemma" and template_for_model("01ai/Yi-Coder-9B-Chat") is None
    assert template_for_model("microsoft/Phi-3.5-vision-instruct") is None and model_family("x/y") is None


def test_arguments_with_an_effect_are_kept_and_bookkeeping_is_ignored_with_why(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                                               {"role": "assistant", "content": "b"}]}) + "\n")
    script = tmp_path / "run.sh"
    script.write_text("CUDA_VISIBLE_DEVICES=0 swift sft --model Qwen/Qwen2.5-0.5B --dataset d.jsonl "
                      "--eval_steps 50 --save_total_limit 2 --per_device_eval_batch_size 4 --eval_strategy steps "
                      "--dataset_num_proc 4 --load_from_cache_file false --output_dir out\n")
    imported = import_swift(script)
    assert imported.kept == {"eval_steps": 50, "save_total_limit": 2, "per_device_eval_batch_size": 4,
                             "eval_strategy": "steps", "adam_beta2": 0.95}
    assert set(imported.ignored) == {"dataset_num_proc", "load_from_cache_file", "output_dir",
                                     "env CUDA_VISIBLE_DEVICES"}
    assert all(imported.ignored.values())  # every ignored key says why


def test_no_max_length_is_the_local_models_maximum_or_uft_default_with_a_note_saying_which(tmp_path):
    """swift's max_length None is the model's max_model_len (the smallest of config.json's length keys)."""
    _messages(tmp_path / "d.jsonl")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 32768, "seq_length": 8192}))
    script = tmp_path / "run.sh"
    script.write_text(f"swift sft --model {model} --template qwen --dataset d.jsonl\n")
    local = import_swift(script)
    assert local.spec["data"]["max_length"] == 8192
    assert any("no --max_length" in n and "seq_length 8192" in n for n in local.notes)
    script.write_text("swift sft --model Qwen/Qwen2.5-0.5B --template qwen --dataset d.jsonl\n")
    hub = import_swift(script)
    assert hub.spec["data"]["max_length"] == 1024  # uft's default, said so
    assert any("no --max_length" in n and "cannot know without the model" in n and "1024" in n for n in hub.notes)


def test_an_args_json_swift_wrote_imports_its_choices_and_round_trips(tmp_path):
    """swift's output folder holds args.json: every argument as swift resolved it (defaults filled in from the
    model: template, max_length, mixed precision) plus its own records; the choices import, the records do not."""
    from unified_ft.backends.swift.importer import DEFAULTS

    _messages(tmp_path / "d.jsonl")
    run = tmp_path / "output" / "v0-20260101-000000"
    run.mkdir(parents=True)
    resolved = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "model_type": "qwen2_5", "template": "qwen2_5",
                "dataset": ["d.jsonl"], "tuner_type": "lora", "lora_rank": 16, "torch_dtype": "bfloat16",
                "bf16": True, "fp16": False, "max_length": 32768, "gradient_accumulation_steps": 16,
                "learning_rate": 1e-4, "loss_scale": "default", "truncation_strategy": "delete",
                "use_chat_template": True, "output_dir": str(run), "eval_strategy": "no"}
    records = {"swift_version": "4.6.0", "model_dir": "/cache/Qwen2.5-0.5B-Instruct", "rank": 0, "local_rank": 0,
               "global_world_size": 1, "training_args": {"output_dir": str(run)}, "evaluation_strategy": "no"}
    sft_defaults = {k: v for k, v in DEFAULTS.items() if k != "rlhf_type"}  # arguments.json has rlhf's too
    (run / "args.json").write_text(json.dumps({**sft_defaults, **resolved, **records}))
    imported = import_swift(run / "args.json")
    spec = validate_spec_dict(imported.spec)
    assert spec.template.name == "qwen2_5" and spec.adapter.r == 16 and spec.training.precision == "bf16"
    assert spec.data.max_length == 32768 and spec.training.gradient_accumulation_steps == 16
    assert spec.data.train[0].path == str((tmp_path / "d.jsonl").resolve())  # beside the folder swift ran in
    assert imported.kept == {"model_type": "qwen2_5", "adam_beta2": 0.95}
    ledger = {k for k, _ in imported.mapped} | set(imported.kept) | set(imported.ignored)
    assert not ledger & set(records)  # swift's records are not choices
    assert any("uft truncates them" in n for n in imported.notes)
    from unified_ft.backends.swift import native_args

    back = native_args(spec, "data/train.parquet")[1]
    assert {k: back[k] for k in ("model_type", "template", "torch_dtype", "bf16", "max_length", "lora_rank")} == {
        k: resolved[k] for k in ("model_type", "template", "torch_dtype", "bf16", "max_length", "lora_rank")}


def test_dump_arguments_runs_without_uft(tmp_path):
    """dump_arguments.py runs inside swift's environment, where uft is not installed: with no site-packages at
    all (python -S) it still loads the shared dataclass-fields helper by its path. A stand-in `swift.arguments`
    module gives it one dataclass to read."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    package = tmp_path / "swift"
    package.mkdir()
    (package / "__init__.py").write_text("__version__ = '0.0-test'\n")
    (package / "arguments.py").write_text("import dataclasses\n\n@dataclasses.dataclass\nclass RLHFArguments:\n"
                                          "    lora_rank: int = 8\n    target_modules: list = "
                                          "dataclasses.field(default_factory=lambda: ['all-linear'])\n")
    script = Path(__file__).parents[2] / "backends" / "swift" / "dump_arguments.py"
    written = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path).stdout
    assert json.loads(written) == {"swift_version": "0.0-test",
                                   "arguments": {"lora_rank": 8, "target_modules": ["all-linear"]}}
