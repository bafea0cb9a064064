"""The way back: a trl CLI YAML (`trl sft|dpo|kto|reward --config x.yaml`) as a uft spec.

The YAML is the flat union of trl's ScriptArguments, ModelConfig and the trainer's config. Names and
defaults come from arguments.json (dumped from trl by dump_arguments.py; the core never imports trl), so
trl's own defaults are written out explicitly and a typo is told from a real argument.
Not yet: shell scripts (`accelerate launch ...`) and uft's own trl config.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, LAUNCH, RESUME, WORKERS, ImportResult, KeyLedger, check_tool
from unified_ft.userfile import load_yaml, read_user_file

ARGUMENTS = json.loads((Path(__file__).parent / "arguments.json").read_text())

IGNORED = {"output_dir": BOOKKEEPING, "logging_dir": BOOKKEEPING, "overwrite_output_dir": BOOKKEEPING,
           "run_name": BOOKKEEPING, "push_to_hub": BOOKKEEPING, "hub_model_id": BOOKKEEPING,
           "dataloader_num_workers": WORKERS, "dataset_num_proc": WORKERS,
           "resume_from_checkpoint": RESUME, "ddp_timeout": LAUNCH, "do_train": "uft trains whenever it runs a job"}


def arguments(method: str) -> tuple[set[str], dict[str, Any]]:
    """Known trl CLI keys and their defaults for a method's trainer."""
    trainer = ARGUMENTS["trainers"].get(method, ARGUMENTS["trainers"]["sft"])
    defaults = {**ARGUMENTS["script"], **ARGUMENTS["model"], **trainer}
    return set(defaults), defaults


def import_trl(path: str | Path, method: str = "sft") -> ImportResult:
    """A trl CLI YAML as a spec; `method` is the trl subcommand's method (sft, dpo, kto, rm)."""
    path = Path(path)
    text = read_user_file(path, "trl config", "give the YAML passed to `trl sft --config`")
    native = load_yaml(text, str(path), "trl config").data
    if not isinstance(native, dict) or not native:
        raise SpecError(f"{path} is not a trl config", [Problem(
            str(path), "expected a mapping of keys" if native else "the file is empty",
            "give trl's CLI YAML (model_name_or_path, dataset_name, ...)")])
    check_tool(native, "trl", str(path))
    if method not in ARGUMENTS["trainers"]:
        raise SpecError("This trl config cannot be imported yet", [Problem(
            str(path), f"method {method!r} has no uft translation yet", "import sft, dpo, kto or reward configs")])
    known, defaults = arguments(method)
    ledger = KeyLedger(native, "trl", known=known, defaults=defaults)
    take = ledger.take
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)

    model = {"path": take("model_name_or_path", "model.path"),
             "trust_remote_code": take("trust_remote_code", "model.trust_remote_code")}
    if ledger.get("model_revision") not in (None, "main"):
        model["revision"] = native["model_revision"]
    take("model_revision", "model.revision")

    adapter: dict[str, Any] = {"type": "full"}
    if take("use_peft", "adapter.type"):
        target = take("lora_target_modules", "adapter.target_modules")
        adapter = {"type": "dora" if take("use_dora", "adapter.type") else "lora",
                   "r": take("lora_r", "adapter.r"), "alpha": take("lora_alpha", "adapter.alpha"),
                   "dropout": take("lora_dropout", "adapter.dropout"),
                   "target_modules": target if target else "all-linear",
                   "rslora": take("use_rslora", "adapter.rslora")}
        if take("load_in_4bit", "adapter.bits"):
            adapter.update(type="qlora", bits=4)

    name = take("dataset_name", "data.train")
    if not name:
        raise SpecError("This trl config names no dataset", [Problem(
            f"{path} (dataset_name)", "missing", "add dataset_name (a hub id or a local file)")])
    local = (path.parent / name)
    source = {"path": str(local.resolve())} if local.exists() else {
        "hub": name, "split": take("dataset_train_split", "data.train")}
    if ledger.get("dataset_config"):
        source["subset"] = take("dataset_config", "data.train")
    fmt = {"sft": "messages", "kto": "unpaired"}.get(method, "preference")
    data = {"train": [{**source, "format": fmt}], "max_length": take("max_length", "data.max_length"),
            "packing": bool(take("packing", "data.packing"))}

    max_steps = take("max_steps", "training.max_steps")
    bf16, fp16 = take("bf16", "training.precision"), take("fp16", "training.precision")
    report = take("report_to", "training.report_to")
    training = {
        **({"max_steps": max_steps} if max_steps and max_steps > 0 else
           {"epochs": take("num_train_epochs", "training.epochs")}),
        "learning_rate": take("learning_rate", "training.learning_rate"),
        "lr_scheduler": take("lr_scheduler_type", "training.lr_scheduler"),
        "per_device_batch_size": take("per_device_train_batch_size", "training.per_device_batch_size"),
        "gradient_accumulation_steps": take("gradient_accumulation_steps", "training.gradient_accumulation_steps"),
        "gradient_checkpointing": bool(take("gradient_checkpointing", "training.gradient_checkpointing")),
        "precision": "bf16" if bf16 else "fp16" if fp16 else "fp32",
        "seed": take("seed", "training.seed"),
        "logging_steps": take("logging_steps", "training.logging_steps"),
        "report_to": [report] if isinstance(report, str) else list(report or []),
    }
    spec_method: dict[str, Any] = {"name": method}
    if method in ("dpo", "kto"):
        spec_method["beta"] = take("beta", "method.beta")
    spec = {"name": path.stem, "model": model, "template": "model", "method": spec_method, "adapter": adapter,
            "data": data, "training": training}
    return ledger.finish(spec)
