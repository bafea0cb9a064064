"""The portable settings a translated native job really holds, read from the files each backend's translator
wrote (not from the spec), so a cross-translation test can prove what each framework will be told.

Each reader returns the same keys: learning_rate, batch, accumulation, epochs, max_steps, lora (r, alpha,
dropout, targets or None for full/freeze), max_length, template (a uft template name, or the Jinja text for
backends that take one), system (the system prompt every training row starts with, or None) and precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

_ROWS = {
    "chat": {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]},
    "preference": {"prompt": [{"role": "user", "content": "Say hi."}],
                   "chosen": [{"role": "assistant", "content": "Hi."}],
                   "rejected": [{"role": "assistant", "content": "No."}]},
    "unpaired": {"prompt": [{"role": "user", "content": "Say hi."}],
                 "completion": [{"role": "assistant", "content": "Hi."}], "label": True},
    "text": {"text": "Plain text to continue."},
}
_FORMATS = {"chat": "messages", "preference": "preference", "unpaired": "unpaired", "text": "text"}


def with_local_data(spec: dict[str, Any], source: str, tmp_path: Path):
    """An imported spec with its datasets replaced by one small local file of the same kind (the hub is
    unreachable in tests), evaluation and export off, everything else as the importer wrote it."""
    from unified_ft.specfile import validate_spec_dict

    spec = dict(spec)
    kind = validate_spec_dict(spec, source).record_kind
    rows = tmp_path / f"rows.{kind}.jsonl"
    rows.write_text("".join(json.dumps(_ROWS[kind]) + "\n" for _ in range(4)))
    spec["data"] = {**spec["data"], "train": [{"path": str(rows), "format": _FORMATS[kind]}]}
    spec["data"].pop("eval", None)
    spec["data"].pop("eval_split", None)
    spec["evaluation"] = {"enabled": False}
    spec.pop("export", None)
    return validate_spec_dict(spec, source)


def _first_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).slice(0, 3).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)[:3]
    return [json.loads(line) for line in text.splitlines()[:3]]


def _row_system(rows: list[dict[str, Any]]) -> str | None:
    """The system prompt the rows share, from whichever shape the backend's data file has."""
    found = set()
    for row in rows:
        turns = row.get("messages") or row.get("conversations") or row.get("prompt")
        if isinstance(turns, str):
            turns = json.loads(turns) if turns.startswith("[") else None
        first = turns[0] if isinstance(turns, list) and turns else {}
        role = first.get("role") or first.get("from")
        system = row.get("system") or (first.get("content") or first.get("value") if role == "system" else None)
        found.add(system)
    return found.pop() if len(found) == 1 else f"differs between rows: {sorted(map(str, found))}"


def _hf_precision(bf16: Any, fp16: Any) -> str:
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def _peft(peft: dict[str, Any] | None) -> dict[str, Any] | None:
    if not peft:
        return None
    return {"r": peft["r"], "alpha": float(peft["lora_alpha"]), "dropout": float(peft["lora_dropout"]),
            "targets": peft["target_modules"]}


def read_trl(native: Path) -> dict[str, Any]:
    job = yaml.safe_load((native / "config.yaml").read_text())
    return _trainer_job(job, native / job["data"]["train"], job["trainer"]["max_length"])


def read_unsloth(native: Path) -> dict[str, Any]:
    job = json.loads((native / "unsloth_job.json").read_text())
    settings = _trainer_job(job, native / job["data"]["train"], job["model"]["max_seq_length"])
    if job["model"].get("full_finetuning"):
        settings["lora"] = None
    return settings


def _trainer_job(job: dict[str, Any], data: Path, max_length: int) -> dict[str, Any]:
    t = job["trainer"]
    return {"learning_rate": t["learning_rate"], "batch": t["per_device_train_batch_size"],
            "accumulation": t["gradient_accumulation_steps"], "epochs": t["num_train_epochs"],
            "max_steps": t["max_steps"], "lora": _peft(job.get("peft")), "max_length": max_length,
            "template": job.get("chat_template"), "system": _row_system(_first_rows(data)),
            "precision": _hf_precision(t.get("bf16"), t.get("fp16"))}


def read_colossalai(native: Path) -> dict[str, Any]:
    job = json.loads((native / "colossalai_job.json").read_text())
    t = job["training"]
    return {"learning_rate": t["learning_rate"], "batch": t["per_device_batch_size"],
            "accumulation": t["gradient_accumulation_steps"], "epochs": t["num_train_epochs"],
            "max_steps": t["max_steps"], "lora": _peft(job.get("peft")), "max_length": job["data"]["max_length"],
            "template": job.get("chat_template"), "system": _row_system(_first_rows(native / job["data"]["train"])),
            "precision": job["precision"]}


def read_llamafactory(native: Path) -> dict[str, Any]:
    from unified_ft.backends.llamafactory import TEMPLATES

    cfg = yaml.safe_load((native / "train.yaml").read_text())
    info = json.loads((native / cfg.get("dataset_dir", "data") / "dataset_info.json").read_text())
    entry = info[cfg["dataset"].split(",")[0]]
    lora = None
    if cfg.get("finetuning_type") == "lora":
        target = cfg["lora_target"]
        lora = {"r": cfg["lora_rank"], "alpha": float(cfg["lora_alpha"]), "dropout": float(cfg["lora_dropout"]),
                "targets": "all-linear" if target == "all" else target.split(",")}
    names = [k for k, v in TEMPLATES.items() if v == cfg.get("template")]
    return {"learning_rate": cfg["learning_rate"], "batch": cfg["per_device_train_batch_size"],
            "accumulation": cfg["gradient_accumulation_steps"], "epochs": cfg["num_train_epochs"],
            "max_steps": cfg["max_steps"], "lora": lora, "max_length": cfg["cutoff_len"],
            "template": names, "system": _row_system(_first_rows(native / cfg.get("dataset_dir", "data") /
                                                                 entry["file_name"])),
            "precision": _hf_precision(cfg.get("bf16"), cfg.get("fp16"))}


def read_swift(native: Path) -> dict[str, Any]:
    from unified_ft.backends.swift import TEMPLATES

    cfg = yaml.safe_load((native / "config.yaml").read_text())
    lora = None
    if cfg.get("tuner_type") == "lora":
        targets = cfg["target_modules"]
        lora = {"r": cfg["lora_rank"], "alpha": float(cfg["lora_alpha"]), "dropout": float(cfg["lora_dropout"]),
                "targets": "all-linear" if targets == ["all-linear"] else targets}
    names = [k for k, v in TEMPLATES.items() if v == cfg.get("template")] if cfg.get("template") else ["model"]
    return {"learning_rate": cfg["learning_rate"], "batch": cfg["per_device_train_batch_size"],
            "accumulation": cfg["gradient_accumulation_steps"], "epochs": cfg["num_train_epochs"],
            "max_steps": cfg["max_steps"], "lora": lora, "max_length": cfg["max_length"],
            "template": names, "system": _row_system(_first_rows(native / cfg["dataset"][0])),
            "precision": _hf_precision(cfg.get("bf16"), cfg.get("fp16"))}


def read_axolotl(native: Path) -> dict[str, Any]:
    """axolotl's config.yaml: lora_* keys (lora_target_linear is all-linear), num_epochs or max_steps, the chat
    template as its Jinja text (tokenizer_default: the model's own, None)."""
    cfg = yaml.safe_load((native / "config.yaml").read_text())
    lora = None
    if cfg.get("adapter") in ("lora", "qlora"):
        lora = {"r": cfg["lora_r"], "alpha": float(cfg["lora_alpha"]), "dropout": float(cfg["lora_dropout"]),
                "targets": "all-linear" if cfg.get("lora_target_linear") else cfg["lora_target_modules"]}
    template = cfg.get("chat_template_jinja") if cfg.get("chat_template") == "jinja" else None
    return {"learning_rate": cfg["learning_rate"], "batch": cfg["micro_batch_size"],
            "accumulation": cfg["gradient_accumulation_steps"], "epochs": cfg.get("num_epochs", 1.0),
            "max_steps": cfg.get("max_steps", -1), "lora": lora, "max_length": cfg["sequence_len"],
            "template": template, "system": _row_system(_first_rows(native / cfg["datasets"][0]["path"])),
            "precision": _hf_precision(cfg.get("bf16"), cfg.get("fp16"))}


READERS = {"trl": read_trl, "unsloth": read_unsloth, "colossalai": read_colossalai,
           "llamafactory": read_llamafactory, "swift": read_swift, "axolotl": read_axolotl}
