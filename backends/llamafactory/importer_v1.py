"""LLaMA-Factory v1 configs (`USE_V1=1 llamafactory-cli sft x.yaml`, its main branch) as a uft spec.

v1 is a new config language: `model`, plugin mappings (`peft_config`, `quant_config`, `dist_config`,
`kernel_config`, ...), `micro_batch_size` and a `train_dataset` that names a dataset YAML (name: path, source,
converter, ...). Its defaults differ from v0's (bf16 on, lr 1e-4, plain torch AdamW with a constant learning
rate, LoRA alpha 16 and dropout 0.05), and are written out explicitly here, from arguments.json's "v1" section
(dumped from the v1 dataclasses at the commit it names). The stage is not in the config but in the command
(`llamafactory-cli sft|dpo|rm`); it is read from the dataset's converter (`pair`: dpo) and said in a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, LAUNCH, RESUME, WORKERS, ImportResult, KeyLedger, unknown_notes
from unified_ft.userfile import load_yaml, read_user_file

from .importer import KNOWN, SHUFFLE_NOTE, _name

V1 = KNOWN["v1"]
#: v1 defaults (computed ones such as output_dir's random folder left out), plus what v1 does with no plugin:
#: torch.optim.AdamW(lr) (weight decay 0.01, torch's default) and a constant learning rate with no warmup.
DEFAULTS: dict[str, Any] = {k: v for k, v in V1["arguments"].items() if v is not None and k != "output_dir"}
LORA = {
    "name": "lora",
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": "all",
    "use_rslora": False,
    "use_dora": False,
}  # LoraParams in v1/plugins/model_plugins/peft.py
FREEZE = {"name": "freeze", "freeze_trainable_layers": 2, "freeze_trainable_modules": "all"}  # FreezeParams
IGNORED = {
    "output_dir": BOOKKEEPING,
    "save_ckpt_as_hf": BOOKKEEPING,
    "batching_workers": WORKERS,
    "resume_from_checkpoint": RESUME,
    "dist_config": LAUNCH,
    "dp_size": LAUNCH,
    "cp_size": LAUNCH,
    "cp_mode": LAUNCH,
    "mp_replicate_size": LAUNCH,
    "mp_shard_size": LAUNCH,
    "dist_timeout": LAUNCH,
    "kernel_config": "fused kernels (Liger, ...): speed and memory, the same training math",
    "init_config": "where the weights are first materialised (meta device, rank 0): memory only",
    "sample_backend": "generation settings of `llamafactory-cli chat`; training does not use them",
    "max_new_tokens": "generation settings of `llamafactory-cli chat`; training does not use them",
}
#: Ignored only at this value (what uft does too); any other value is kept.
IGNORED_AT = {
    "model_class": ("llm", "a causal language model, what uft trains"),
    "batching_strategy": ("normal", "padded batches of micro_batch_size rows, as uft's trainers"),
    "flash_attn": ("sdpa", "the attention kernel: speed only"),
    "full_determinism": (False, "uft seeds every run by training.seed"),
}
FORMATS = {"alpaca": "alpaca", "sharegpt": "sharegpt", "pair": "preference"}


def import_v1(native: dict[str, Any], config_path: Path) -> ImportResult:
    """The spec of a v1 config; every key mapped, ignored with why, or kept."""
    ledger = KeyLedger(native, "llamafactory", known=V1["arguments"], defaults=DEFAULTS)
    take, out = ledger.take, ledger.result
    ledger.ignore([k for k, v in native.items() if v is None], "empty (null): v1's default applies")
    out.notes.append(
        f"{config_path} is a LLaMA-Factory v1 config (USE_V1=1); its defaults are v1's "
        f"(commit {V1['commit'][:8]}), and uft's llamafactory backend writes a v0 (0.9.5) config"
    )
    peft = ledger.section("peft_config")
    if peft.get("export_dir") or peft.get("adapter_name_or_path") and not ledger.has("train_dataset"):
        raise SpecError(
            f"{config_path} is not a LLaMA-Factory training config",
            [
                Problem(
                    "peft_config.export_dir",
                    "a v1 merge/export config (`llamafactory-cli merge`)",
                    "uft imports training configs; merge a trained adapter with `uft export`",
                )
            ],
        )
    data, method = _data(ledger, config_path)
    adapter = _adapter(ledger, peft)
    spec = {
        "name": _name(config_path),
        "model": {
            "path": take("model", "model.path"),
            "trust_remote_code": take("trust_remote_code", "model.trust_remote_code"),
        },
        "template": _template(ledger),
        "method": _method(ledger, method),
        "adapter": adapter,
        "data": data,
        "training": _training(ledger),
    }
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)
    for key, (value, reason) in IGNORED_AT.items():
        if ledger.get(key) == value:
            ledger.ignore(key, reason)
    if spec["training"].get("epochs", 0) > 1:
        out.notes.append(SHUFFLE_NOTE)
    dist = native.get("dist_config")
    if dist:
        name = dist.get("name") if isinstance(dist, dict) else dist
        out.notes.append(
            f"dist_config ({name}) is how v1 spreads the run over GPUs; uft's spec runs on one process "
            "unless its distributed section says otherwise"
        )
    result = ledger.finish(spec)
    result.notes += unknown_notes(result)
    v0 = [k for k in result.kept if k.split(".")[0].split("[")[0] not in KNOWN["arguments"]]
    if v0:
        result.notes.append(
            f"kept {', '.join(v0)}: v1 keys LLaMA-Factory 0.9.5 (uft's llamafactory backend) does "
            "not take; its parser rejects the translated config until they are removed"
        )
    return result


def _template(ledger: KeyLedger) -> dict[str, Any]:
    """v1 renders with the tokenizer's own chat template, or custom_chat_template's Jinja."""
    jinja = ledger.take("custom_chat_template", "template.jinja")
    return {"name": "jinja", "jinja": str(jinja)} if jinja else {"name": "model"}


def _method(ledger: KeyLedger, method: str) -> dict[str, Any]:
    take = ledger.take
    if method == "sft":
        return {"name": "sft"}
    loss = take("pref_loss", "method.name")
    spec: dict[str, Any] = {"name": "dpo" if loss == "sigmoid" else loss, "beta": take("pref_beta", "method.beta")}
    if loss == "simpo":
        spec.update(gamma=take("simpo_gamma", "method.gamma"), nll_weight=take("pref_ftx", "method.nll_weight"))
    ledger.result.notes.append(
        "v1 takes the stage from the command, not the config: its dataset holds preference pairs (converter pair), "
        "so it is imported as `llamafactory-cli dpo`; for `llamafactory-cli rm` set method.name: rm"
    )
    return spec


def _adapter(ledger: KeyLedger, peft: KeyLedger) -> dict[str, Any]:
    """peft_config (lora or freeze; none: full fine-tuning) and quant_config (bitsandbytes: QLoRA)."""
    if not ledger.native.get("peft_config"):
        return {"type": "full"}
    peft.defaults = {**LORA, **FREEZE, "name": LORA["name"]}
    name = peft.take("name", "adapter.type")
    if name == "freeze":
        if peft.get("freeze_trainable_modules") == "all":
            peft.ignore("freeze_trainable_modules", "all modules of the trainable layers, as uft's freeze")
        if not peft.get("freeze_extra_modules"):
            peft.ignore("freeze_extra_modules", "empty: no extra modules, as uft's freeze")
        return {"type": "freeze", "trainable_layers": peft.take("freeze_trainable_layers", "adapter.trainable_layers")}
    if name != "lora":
        raise SpecError(
            "This LLaMA-Factory v1 config cannot be imported",
            [Problem("peft_config.name", f"{name!r} has no uft adapter", "uft imports peft_config lora and freeze")],
        )
    target = peft.take("target_modules", "adapter.target_modules")
    adapter = {
        "type": "dora" if peft.take("use_dora", "adapter.use_dora") else "lora",
        "r": peft.take("r", "adapter.r"),
        "alpha": peft.take("lora_alpha", "adapter.alpha"),
        "dropout": peft.take("lora_dropout", "adapter.dropout"),
        "target_modules": "all-linear"
        if target in ("all", ["all"])
        else [target]
        if isinstance(target, str)
        else list(target),
        "rslora": peft.take("use_rslora", "adapter.rslora"),
    }
    quant = ledger.section("quant_config")
    if ledger.native.get("quant_config"):
        if quant.get("name", "auto") not in ("bnb", "auto") or quant.get("quantization_bit") not in (4, 8):
            raise SpecError(
                "This LLaMA-Factory v1 config cannot be imported",
                [
                    Problem(
                        "quant_config",
                        f"{ledger.native['quant_config']!r}: uft's QLoRA is bitsandbytes 4 or 8 bit",
                        "use quant_config {name: bnb, quantization_bit: 4}",
                    )
                ],
            )
        quant.ignore("name", "uft's QLoRA is bitsandbytes (nf4 with double quantization) on every backend")
        adapter.update(type="qlora", bits=quant.take("quantization_bit", "adapter.bits"))
    elif "quant_config" in ledger.native:
        ledger.result.ignored["quant_config"] = "empty (null): no quantization"
    return adapter


def _training(ledger: KeyLedger) -> dict[str, Any]:
    take, get = ledger.take, ledger.get
    micro = take("micro_batch_size", "training.per_device_batch_size")
    accumulation = 1
    if ledger.has("global_batch_size"):
        total = take("global_batch_size", "training.gradient_accumulation_steps")
        if total % micro:
            raise SpecError(
                "This LLaMA-Factory v1 config cannot be imported",
                [
                    Problem(
                        "global_batch_size",
                        f"{total} is no multiple of micro_batch_size {micro}",
                        "make global_batch_size a multiple of micro_batch_size",
                    )
                ],
            )
        accumulation = total // micro
        ledger.result.notes.append(
            f"global_batch_size {total} is read as {accumulation} accumulation steps of "
            f"micro_batch_size {micro} on one process (v1 divides it by the GPUs too)"
        )
    max_steps = take("max_steps", "training.max_steps")
    epochs = take("num_train_epochs", "training.epochs")
    training = {
        **({"max_steps": max_steps} if max_steps and max_steps > 0 else {"epochs": float(epochs)}),
        "learning_rate": float(take("learning_rate", "training.learning_rate")),
        "per_device_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "gradient_checkpointing": take("enable_activation_checkpointing", "training.gradient_checkpointing"),
        "precision": "bf16" if take("bf16", "training.precision") else "fp32",
        "max_grad_norm": take("max_grad_norm", "training.max_grad_norm"),
        "seed": take("seed", "training.seed"),
        "logging_steps": take("logging_steps", "training.logging_steps"),
        "report_to": ["none"],
    }
    if not get("optim_config"):  # v1's trainer: torch.optim.AdamW(params, lr), torch's weight decay 0.01
        take("optim_config", "training.optimizer", "adamw_torch")
        training.update(optimizer="adamw_torch", weight_decay=0.01)
    if not get("lr_scheduler_config"):  # v1's trainer: LambdaLR(lambda step: 1.0), a constant rate, no warmup
        take("lr_scheduler_config", "training.lr_scheduler", "constant")
        training.update(lr_scheduler="constant", warmup_ratio=0.0)
    if ledger.has("save_steps"):
        training["save_steps"] = take("save_steps", "training.save_steps")
    return training


def _data(ledger: KeyLedger, config_path: Path) -> tuple[dict[str, Any], str]:
    """train_dataset (a dataset YAML, a local file, or a hub id) as data.train; the method its rows imply."""
    take = ledger.take
    name = take("train_dataset", "data.train")
    if not name:
        raise SpecError(
            "This LLaMA-Factory v1 config names no dataset",
            [Problem("train_dataset", "missing", "add train_dataset: data/your_dataset.yaml")],
        )
    train, method = _datasets(str(name), config_path)
    data: dict[str, Any] = {
        "train": train,
        "max_length": take("cutoff_len", "data.max_length"),
        "packing": False,
        "train_on_prompt": False,
        "shuffle": True,
    }
    if ledger.has("eval_dataset"):
        data["eval"] = _datasets(str(take("eval_dataset", "data.eval")), config_path)[0][0]
    ledger.result.notes += _data_notes([*train, *([data["eval"]] if "eval" in data else [])])
    return data, method


def _data_notes(datasets: list[dict[str, Any]]) -> list[str]:
    """What v1's data loading does differently from uft's, for the datasets this config reads."""
    notes = []
    if any(d["format"] == "alpaca" for d in datasets):
        notes.append(
            "v1's alpaca converter joins instruction and input with nothing between them; uft (like "
            "LLaMA-Factory v0) puts a newline between them, so rows with an input train on that prompt"
        )
    if any("samples" in d for d in datasets):
        notes.append(
            "a dataset's size: v1 draws that many rows at random with replacement; uft's samples draws a "
            "seeded sample without replacement (the whole dataset repeated first when size is larger)"
        )
    return notes


def _places(path: str, *folders: Path) -> list[Path]:
    return [Path(path)] if Path(path).is_absolute() else [folder / path for folder in folders]


def _datasets(name: str, config_path: Path) -> tuple[list[dict[str, Any]], str]:
    """As v1's DataEngine reads it: a .yaml of datasets, else a local file, else a hub dataset. Relative paths
    against the working directory (where v1 runs), else beside the config (a config copied out of a checkout)."""
    roots = (Path.cwd(), config_path.parent)
    if not name.endswith(".yaml"):
        found = next((p for p in _places(name, *roots) if p.exists()), None)
        entry = {"path": str(found), "source": "local"} if found else {"path": name}
        return [_dataset("default", entry, roots, Path(name))], "sft"
    places = _places(name, *roots)
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise SpecError(
            "The config's dataset file cannot be found",
            [
                Problem(
                    "train_dataset",
                    f"no {name} in "
                    + " or ".join(str(p.parent) for p in places)
                    + " (a hub path such as org/repo/file.yaml is not read: the hub is not reached while importing)",
                    "run uft import from the folder LLaMA-Factory runs in, or give train_dataset an absolute path",
                )
            ],
        )
    infos = load_yaml(
        read_user_file(found, "dataset YAML", "give the train_dataset file"), str(found), "dataset YAML"
    ).data
    if not isinstance(infos, dict) or not infos:
        raise SpecError(
            "The dataset YAML cannot be read",
            [Problem(str(found), "expected a mapping of dataset names to {path, source, converter}", "fix the file")],
        )
    datasets = [_dataset(key, entry, (*roots, found.parent), found) for key, entry in infos.items()]
    kinds = {d["format"] == "preference" for d in datasets}
    if len(kinds) > 1:
        raise SpecError(
            "The dataset YAML mixes kinds of rows",
            [
                Problem(
                    str(found), "preference pairs (converter pair) beside conversations", "train them in separate runs"
                )
            ],
        )
    return datasets, "dpo" if kinds == {True} else "sft"


def _dataset(name: str, entry: Any, roots: tuple[Path, ...], where: Path) -> dict[str, Any]:
    if not isinstance(entry, dict) or not entry.get("path"):
        raise SpecError(
            "This dataset cannot be imported",
            [Problem(f"{where} ({name})", "expected a mapping with path", "give it path, source and converter")],
        )
    extra = sorted(set(entry) - {"path", "source", "split", "converter", "size"})
    converter = entry.get("converter")
    if extra or converter not in FORMATS:
        what = (
            f"{', '.join(extra)} ha{'s' if len(extra) == 1 else 've'} no uft equivalent"
            if extra
            else (f"converter {converter!r}: uft reads alpaca, sharegpt and pair rows")
        )
        raise SpecError(
            "This dataset cannot be imported",
            [
                Problem(
                    f"{where} ({name})",
                    what,
                    "remove it, or convert the rows to alpaca/sharegpt/pair and name the converter",
                )
            ],
        )
    source = entry.get("source", "hf_hub")
    if source == "hf_hub":
        spec: dict[str, Any] = {"hub": str(entry["path"]), "split": str(entry.get("split", "train"))}
    elif source == "local":
        places = _places(str(entry["path"]), *roots)
        found = next((p for p in places if p.exists()), None)
        if found is None:
            raise SpecError(
                "A dataset file cannot be found",
                [
                    Problem(
                        f"{where} ({name})",
                        f"no {entry['path']} in " + " or ".join(str(p.parent) for p in places),
                        "run uft import from the folder LLaMA-Factory runs in, or give the path in full",
                    )
                ],
            )
        spec = {"path": str(found.resolve())}
    else:
        raise SpecError(
            "This dataset cannot be imported",
            [
                Problem(
                    f"{where} ({name})",
                    f"source {source!r}: uft reads local files and Hugging Face hub datasets",
                    "download it and give source: local with its path",
                )
            ],
        )
    spec["format"] = FORMATS[converter]
    if entry.get("size"):  # v1 draws `size` rows at random (with replacement); uft's samples: a seeded sample
        spec["samples"] = int(entry["size"])
    return spec
