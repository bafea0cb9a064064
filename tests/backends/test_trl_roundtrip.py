"""Round trip through trl for every trl example uft imports (tests/backends/trl_examples/MANIFEST.yaml): import
-> translate back to trl -> import uft's own trl config.yaml again gives the same portable settings key by key;
and for every trl argument the first import mapped, the value trl would use (the example's, else trl's default
from arguments.json) is the value uft's trl job uses, or a difference the importer names in a note.

The hub is unreachable here, so each example's datasets are replaced by a small local file of the same kind
(tests/migration_readback.with_local_data), as the cross-translation test does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.migration_readback import with_local_data
from unified_ft.backends.trl.importer import OPTIMIZERS, PROCESSES, arguments, import_trl, native_arguments
from unified_ft.launch import translate_to
from unified_ft.specfile import validate_spec_dict

HERE = Path(__file__).resolve().parent / "trl_examples"
MANIFEST = yaml.safe_load((HERE / "MANIFEST.yaml").read_text())
OK = sorted(name for name, entry in MANIFEST.items() if entry["expect"] == "ok")


def _round_trip(name: str, tmp_path: Path):
    entry = MANIFEST[name]
    first = import_trl(HERE / name, entry.get("method"))
    spec = with_local_data(first.spec, name, tmp_path)
    plan, job = translate_to(spec, "trl", tmp_path / "trl")
    back = import_trl(job.native_dir / "config.yaml")
    return first, plan.spec, job, back, validate_spec_dict(back.spec, "round trip")


@pytest.mark.parametrize("name", OK)
def test_trl_job_imports_back_to_the_same_portable_settings(name, tmp_path):
    _, spec, job, back, again = _round_trip(name, tmp_path)
    assert not back.unknown and not back.kept.keys() - set(spec.backend_options.get("trl", {}))
    for section in ("model", "template", "method", "adapter", "training", "distributed"):
        assert getattr(again, section).model_dump() == getattr(spec, section).model_dump(), section
    for key in ("max_length", "packing", "train_on_prompt"):
        assert getattr(again.data, key) == getattr(spec.data, key), f"data.{key}"
    assert again.backend_options == spec.backend_options and again.name == spec.name
    assert again.record_kind == spec.record_kind
    # the rows beside the job are uft's prepared rows; read in file order, they come out the same again
    _, twice = translate_to(again, "trl", tmp_path / "again")
    assert yaml.safe_load((twice.native_dir / "config.yaml").read_text()) == \
        yaml.safe_load((job.native_dir / "config.yaml").read_text())
    assert (twice.native_dir / "train.jsonl").read_text() == (job.native_dir / "train.jsonl").read_text()


#: trl arguments whose value uft's trl job holds under another name, or derives: key -> (the value uft's job
#: uses, read from its config.yaml; the value trl would use, from the example's effective arguments).
def _peft(key: str):
    return lambda job: (job["peft"] or {}).get(key)


JOB_VALUES = {
    "model_name_or_path": lambda job: job["model"]["name_or_path"],
    "trust_remote_code": lambda job: job["model"]["trust_remote_code"],
    "model_revision": lambda job: job["model"]["revision"] or "main",
    "use_peft": lambda job: job["peft"] is not None,
    "lora_r": _peft("r"), "lora_alpha": _peft("lora_alpha"), "lora_dropout": _peft("lora_dropout"),
    "lora_target_modules": _peft("target_modules"), "use_rslora": _peft("use_rslora"), "use_dora": _peft("use_dora"),
    "lora_task_type": _peft("task_type"),
    "load_in_4bit": lambda job: (job["quantization"] or {}).get("bits") == 4,
    "load_in_8bit": lambda job: (job["quantization"] or {}).get("bits") == 8,
    "assistant_only_loss": lambda job: not job["data"]["train_on_prompt"],
    "completion_only_loss": lambda job: not job["data"]["train_on_prompt"],
    "warmup_steps": lambda job: job["trainer"]["warmup_steps"],
    "warmup_ratio": lambda job: job["trainer"]["warmup_steps"],
    "optim": lambda job: job["trainer"]["optim"],
    "report_to": lambda job: _trackers(job["trainer"]["report_to"]),
}


def _trackers(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _trl_value(key: str, args: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """What trl uses for the key: the example's value, else trl's default, as trl's own __post_init__ reads it."""
    value = args.get(key, defaults.get(key))
    if key == "bf16" and value is None:
        return not _trl_value("fp16", args, defaults)
    if key in ("warmup_steps", "warmup_ratio"):  # warmup as a share of the run (transformers 5: below 1)
        steps, max_steps = args.get("warmup_steps") or defaults["warmup_steps"], args.get("max_steps") or -1
        return steps if steps < 1 else steps / max_steps
    if key == "optim":
        return OPTIMIZERS[value]  # adamw_torch_fused is adamw_torch's fused kernel: the same algorithm
    if key == "report_to":
        return _trackers(value)
    if key in ("assistant_only_loss", "completion_only_loss"):  # the loss mask, read together
        return bool(args.get("assistant_only_loss") or args.get("completion_only_loss"))
    if key == "lora_target_modules" and isinstance(value, list) and value == ["all-linear"]:
        return "all-linear"
    return _one(value)


def _one(value: Any) -> Any:
    """trl's DPO loss_type is a list (a mixture); a list of one loss is that loss."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


#: trl arguments uft's trl job does not hold as trl would, each with why (the importer notes each one).
DIFFERENCES = {
    "dataset_name": "the hub is unreachable: the test replaces the data by a local file",
    "dataset_config": "the hub is unreachable: the test replaces the data by a local file",
    "dataset_train_split": "the hub is unreachable: the test replaces the data by a local file",
    "dataset_test_split": "the hub is unreachable: the test replaces the data by a local file",
    "datasets": "the hub is unreachable: the test replaces the data by a local file",
    "eval_strategy": "uft evaluates after training, not during it (noted on import)",
    "save_strategy": "trl checkpoints every 500 steps by default, uft saves the final model (noted on import)",
    "bnb_4bit_quant_type": "uft's QLoRA is always nf4, the only value the importer accepts",
}


@pytest.mark.parametrize("name", OK)
def test_every_mapped_trl_argument_has_the_value_trl_would_use(name, tmp_path):
    first, spec, job, _, _ = _round_trip(name, tmp_path)
    method, args, _ = native_arguments(HERE / name, MANIFEST[name].get("method"))
    defaults, _ = arguments(method)
    written = yaml.safe_load((job.native_dir / "config.yaml").read_text())
    job_defaults, _ = arguments(written["method"])
    checked, wrong = [], []
    for key, _target in first.mapped + first.defaults:
        if key in DIFFERENCES or key.startswith(("accelerate ", "datasets[")):
            continue
        if key == "lora_target_modules" and args.get(key) is None:
            assert any("lora_target_modules" in note for note in first.notes)  # peft's default modules: noted
            continue
        if key == "max_steps" and spec.training.max_steps is None:
            continue  # -1 both ways
        if key == "num_train_epochs" and spec.training.max_steps is not None:
            continue
        if key in PROCESSES:  # accelerate's, on uft's launch command
            ours, theirs = job.argv[job.argv.index(f"--{key}") + 1], str(args[key])
        elif key in JOB_VALUES:
            ours = JOB_VALUES[key](written)
        else:
            assert key in written["trainer"] or key in job_defaults, f"{key}: not in uft's trl job, not checked"
            ours = _one(written["trainer"].get(key, job_defaults.get(key)))
        if key not in PROCESSES:
            theirs = _trl_value(key, args, defaults)
        checked.append(key)
        if ours != theirs:
            wrong.append(f"{key}: trl uses {theirs!r}, uft's trl job {ours!r}")
    assert not wrong, f"{name}:\n  " + "\n  ".join(wrong)
    assert {"learning_rate", "per_device_train_batch_size", "model_name_or_path", "bf16"} <= set(checked)
    print(f"\n{name}: {len(checked)} trl arguments hold trl's value in uft's trl job")


def test_trls_own_config_classes_take_every_translated_example(tmp_path, monkeypatch):
    """What the ledger kept in backend_options.trl (eos_token, remove_unused_columns, ...) is a real argument of
    the trainer's config: trl's own class is built from each translated job's trainer section, as train.py does."""
    pytest.importorskip("trl")
    from unified_ft.runner_support import trainer_classes

    monkeypatch.chdir(tmp_path)
    built = []
    for index, name in enumerate(OK):
        first = import_trl(HERE / name, MANIFEST[name].get("method"))
        (tmp_path / str(index)).mkdir()
        _, job = translate_to(with_local_data(first.spec, name, tmp_path / str(index)), "trl", tmp_path / name)
        config = yaml.safe_load((job.native_dir / "config.yaml").read_text())
        built.append(trainer_classes(config["method"])[0](**{**config["trainer"], "use_cpu": True}))
    assert len(built) == len(OK) and all(b.output_dir == "output" for b in built)


def test_a_multi_process_trl_job_imports_back_with_its_processes(tmp_path):
    """config.yaml does not hold the process count; the command in its header does, and is read back."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n' * 4)
    spec = validate_spec_dict({"name": "multi", "model": {"path": "Qwen/Qwen2-0.5B"}, "evaluation": {"enabled": False},
                               "data": {"train": [{"path": str(rows), "format": "messages"}]},
                               "training": {"precision": "fp32", "max_steps": 2},
                               "distributed": {"processes_per_node": 3,
                                               "rendezvous": {"endpoint": "127.0.0.1:29511"}}})
    _, job = translate_to(spec, "trl", tmp_path / "job")
    assert "# Run it with trl alone: accelerate launch --multi_gpu --num_processes 3" in \
        (job.native_dir / "config.yaml").read_text()
    again = validate_spec_dict(import_trl(job.native_dir / "config.yaml").spec)
    assert again.distributed.model_dump() == spec.distributed.model_dump()
