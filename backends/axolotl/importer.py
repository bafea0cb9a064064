"""The way back: an axolotl training YAML (`axolotl train config.yml`) as a uft spec.

Key names and defaults come from arguments.json, read from axolotl's own pydantic models by dump_arguments.py
(the core never imports axolotl), so axolotl's defaults are written out explicitly and a typo is told from a real
key. Every key is mapped, kept verbatim under `backend_options.axolotl`, or ignored with the reason; what cannot
be expressed exactly in the spec (a warmup in steps of an epoch-based run, a dataset layout uft's readers do not
read, a chat template uft renders differently) is an error naming the key, never a quiet approximation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unified_ft.data.readers import ROLE_ALIASES
from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, LAUNCH, RESUME, WORKERS, ImportResult, KeyLedger, check_tool
from unified_ft.spec import LORAPLUS_LR_EMBEDDING
from unified_ft.userfile import load_yaml, read_user_file

ARGUMENTS = json.loads((Path(__file__).parent / "arguments.json").read_text())
VERSION = ARGUMENTS["axolotl_version"]
KNOWS = f"axolotl {VERSION}, the version this importer knows"
#: Every top-level key axolotl knows: its config model's fields and aliases, and every integration plugin's keys.
KNOWN = set(ARGUMENTS["config"]) | {k for keys in ARGUMENTS["plugins"].values() for k in keys}
DATASET_KNOWN = {k for keys in ARGUMENTS["datasets"].values() for k in keys}
#: axolotl's defaults for the keys uft maps, with those axolotl (or transformers under it) fills in elsewhere:
#: seed 42 (axolotl's validator), max_grad_norm 1.0 (transformers).
DEFAULTS = {**{k: v for k, v in ARGUMENTS["config"].items() if v is not None}, "seed": 42, "max_grad_norm": 1.0,
            "sample_packing": False, "fp16": False}

#: Keys that do not change what is trained under uft, each with why.
IGNORED = {
    "output_dir": BOOKKEEPING, "dataset_prepared_path": "axolotl's cache of the tokenized data; " + WORKERS,
    "push_dataset_to_hub": BOOKKEEPING, "hub_model_id": BOOKKEEPING, "hub_strategy": BOOKKEEPING,
    "hub_revision": BOOKKEEPING, "save_safetensors": BOOKKEEPING, "strict": "axolotl's own config check",
    "dataset_num_proc": WORKERS, "dataset_processes": WORKERS, "dataset_keep_in_memory": WORKERS,
    "dataloader_num_workers": WORKERS, "dataloader_pin_memory": WORKERS, "dataloader_prefetch_factor": WORKERS,
    "resume_from_checkpoint": RESUME, "auto_resume_from_checkpoints": RESUME,
    "ddp_timeout": LAUNCH, "ddp_bucket_cap_mb": LAUNCH, "ddp_broadcast_buffers": LAUNCH,
    "ddp_find_unused_parameters": LAUNCH, "world_size": LAUNCH, "local_rank": LAUNCH, "device_map": LAUNCH,
    "evals_per_epoch": "when axolotl evaluates during training; uft's shared evaluation runs after training",
    "eval_steps": "when axolotl evaluates during training; uft's shared evaluation runs after training",
    "eval_strategy": "when axolotl evaluates during training; uft's shared evaluation runs after training",
    "eval_sample_packing": "how axolotl batches its in-training evaluation; uft's shared evaluation runs after "
                           "training",
    "eval_batch_size": "how axolotl batches its in-training evaluation; uft's shared evaluation runs after training",
    "saves_per_epoch": "intermediate checkpoints; uft saves the final model (training.save_steps for checkpoints)",
    "save_total_limit": "how many intermediate checkpoints axolotl keeps; uft keeps the final model",
    "save_only_model": "uft keeps the final model (and adapter) only, not optimizer states",
    "save_first_step": "an intermediate checkpoint; uft saves the final model",
    "wandb_watch": "what wandb records of gradients; the training is the same",
    "wandb_log_model": "whether wandb uploads checkpoints; the training is the same",
}

#: axolotl chat template names whose rendering uft's registry reproduces exactly (for text conversations).
TEMPLATES = {"chatml": "chatml", "llama3": "llama3", "qwen_25": "qwen2_5", "gemma": "gemma",
             "tokenizer_default": "model"}
#: Ones uft renders differently, and how (the reason the import refuses them).
TEMPLATE_DIFFERENCES = {
    "phi_3": "axolotl's phi_3 starts with the BOS token, uft's phi3 does not",
    "alpaca": "axolotl's alpaca template starts with the BOS token and ends turns differently from uft's",
}
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "adamw_bnb_8bit": "adamw_8bit",
              "adamw_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit", "sgd": "sgd",
              "adafactor": "adafactor"}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
#: rl -> uft method name (and a fixed loss variant).
RL_METHODS = {"dpo": ("dpo", None), "ipo": ("dpo", "ipo"), "orpo": ("orpo", None), "kto": ("kto", None),
              "simpo": ("simpo", None)}
#: trl's defaults where axolotl leaves a key unset: every trainer's beta, CPOConfig's cpo_alpha (SimPO's NLL weight).
TRL_BETA = 0.1
TRL_CPO_ALPHA = 1.0

#: Preference row layouts of axolotl's dpo/orpo strategies (`<template>.<name>`): uft column mapping, or why not.
_TWO_TURNS = ("it reads the answers as chosen[1] and rejected[1] of two-turn conversations beside a prompt column; "
              "uft's preference format reads chosen and rejected as the answers themselves")
PREFERENCE_TYPES: dict[str, dict[str, dict[str, str] | str]] = {
    **{prefix: {"default": {}, "prompt_pairs": {}, "argilla_chat": {}, "intel": {"prompt": "question"},
                "icr": {"prompt": "input"}, "ultra": _TWO_TURNS} for prefix in ("chatml", "llama3")},
    "chat_template": {"default": {}, "argilla": _TWO_TURNS},
}
KTO_TYPES: dict[str, dict[str, dict[str, str] | str]] = {
    prefix: {"argilla": {"prompt": "instruction"}, "intel": {"prompt": "question"}, "prompt_pairs": {}, "ultra": {},
             "argilla_chat": "it reads the answer as completion[1] of a two-turn conversation; uft's unpaired "
                             "format reads completion as the answer itself"} for prefix in ("chatml", "llama3")}
#: Reward-model (Bradley-Terry) rows: a prompt in `input`, chosen and rejected answers, an optional system.
REWARD_TYPES: dict[str, dict[str, dict[str, str] | str]] = {"bradley_terry": {"chat_template": {"prompt": "input"}}}
#: Keys axolotl removed, that configs of older versions still have: the key -> what to write instead.
REMOVED = {f"unsloth_{k}": "use lora_mlp_kernel, lora_qkv_kernel and lora_o_kernel (docs.axolotl.ai/docs/"
           "lora_optims.html)" for k in ("cross_entropy_loss", "lora_mlp", "lora_qkv", "lora_o", "rms_norm", "rope")}
#: Settings that change which rows are trained (uft trains every row of every dataset): the key -> what it does.
ROW_FILTERS = {"dataset_exact_deduplication": "drops rows that are exact duplicates",
               "dataset_shard_num": "trains on one shard of the data", "dataset_shard_idx": "trains on one shard "
               "of the data", "min_sample_len": "drops rows shorter than it", "shards": "trains on one shard of the "
               "dataset", "shards_idx": "trains on one shard of the dataset", "skip": "skips the first rows"}
#: Where and under which name wandb files the run: kept for axolotl (other backends read wandb's environment).
WANDB_NAMES = ("wandb_project", "wandb_entity", "wandb_name", "wandb_run_id", "wandb_mode")
SHAREGPT_HINT = ("write it as axolotl now does: type: chat_template, field_messages: conversations, "
                 "message_property_mappings: {role: from, content: value}; then import again")


@dataclass
class _Context:
    """What every dataset entry is read against."""

    path: Path
    rl: str | None
    reward_model: bool
    chat_template: str | None  # the config's top-level chat_template
    jinja: str | None  # its chat_template_jinja text


@dataclass
class _Dataset:
    spec: dict[str, Any]
    kind: str  # chat | preference | unpaired | text
    template: tuple[str, str | None] | None  # (uft template name, jinja text) the rows are rendered with
    alpaca: bool = False


def import_axolotl(path: str | Path, **options: Any) -> ImportResult:
    """An axolotl YAML as a spec dict with its key ledger; the caller validates the spec."""
    path = Path(path)
    if options:
        raise SpecError("The axolotl importer takes no options", [Problem(
            ", ".join(sorted(options)), "not an option of the axolotl importer", "give the config file only")])
    native = _read(path)
    check_tool(native, "axolotl", str(path))
    _removed(native, path)
    _row_filters(native, "")
    ledger = KeyLedger(native, "axolotl", known=KNOWN, defaults=DEFAULTS)
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)

    jinja = _jinja_text(_str(ledger, "chat_template_jinja"), "chat_template_jinja", path)
    top = _str(ledger, "chat_template") or ("jinja" if jinja else None)
    ctx = _Context(path, _str(ledger, "rl"), bool(_bool(ledger, "reward_model")), top, jinja)
    method = _method(ledger, ctx)
    train = _datasets(ledger, ctx, "pretraining_dataset" if ledger.has("pretraining_dataset") else "datasets")
    if ledger.has("datasets") and ledger.has("pretraining_dataset"):
        train += _datasets(ledger, ctx, "datasets")
    evals = _datasets(ledger, ctx, "test_datasets") if ledger.has("test_datasets") else []
    if method["name"] == "sft" and train and all(d.kind == "text" for d in train):
        method = {"name": "pt"}  # completion / pretraining text: every token trained, as uft's pt
    _check_kinds(train + evals, method["name"], path)
    template = _template(ledger, ctx, train + evals, method["name"])
    spec = {"name": _name(path), "model": _model(ledger, path), "method": method, "adapter": _adapter(ledger, path),
            "data": _data(ledger, path, train, evals), "training": _training(ledger, path)}
    if template is not None:
        spec["template"] = template
    _notes(ledger)
    _nulls(ledger)
    result = ledger.finish(spec)
    result.notes += [f"{key} is not a key of {KNOWS}" + (f" (did you mean {s}?)" if s else "") +
                     "; kept in backend_options.axolotl, where axolotl will reject it until it is fixed"
                     for key, s in result.unknown.items()]
    return result


def _read(path: Path) -> dict[str, Any]:
    text = read_user_file(path, "axolotl config", "give the YAML passed to `axolotl train`")
    native = load_yaml(text, str(path), "axolotl config").data
    if not isinstance(native, dict) or not native:
        raise SpecError(f"{path} is not an axolotl config", [Problem(
            str(path), "expected a mapping of keys" if native else "the file is empty",
            "give axolotl's training YAML (base_model, datasets, ...)")])
    return native


def _removed(native: dict[str, Any], path: Path) -> None:
    """Keys of older axolotl versions that this one refuses: said with the version, not as a mere typo."""
    found = [Problem(f"{path} ({key})", f"removed from axolotl; {KNOWS}, refuses it", REMOVED[key])
             for key in native if key in REMOVED and native[key]]
    if found:
        raise SpecError("This config is for an older axolotl", found)


def _row_filters(native: dict[str, Any], where: str) -> None:
    """Which rows are trained is the spec's to say; a setting that leaves rows out would be lost on other backends."""
    found = [Problem(f"{where}{key}", f"{native[key]!r} {why}; uft trains every row",
                     f"remove {key} (prepare the rows you want to train as a file), or keep using axolotl for it")
             for key, why in ROW_FILTERS.items() if native.get(key) not in (None, False)]
    if found:
        raise SpecError("This axolotl config cannot be imported as it is", found)


# ----------------------------------------------------------------------------------------------
# Values of the right type


def _wrong(key: str, value: Any, expected: str) -> SpecError:
    return SpecError("The axolotl config has a value of the wrong type", [Problem(
        key, f"{value!r} is {type(value).__name__}, expected {expected}", f"write {key} as {expected}")])


def _number(ledger: KeyLedger, key: str, target: str, kind: type = float, default: Any = None) -> Any:
    """A number (YAML reads `2e-5` as text; axolotl's pydantic models read it as a number, and so does uft)."""
    value = ledger.take(key, target, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _wrong(ledger.prefix + key, value, "a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) and value is not None:
        raise _wrong(ledger.prefix + key, value, "a number")
    if kind is int and value is not None:
        if not float(value).is_integer():
            raise _wrong(ledger.prefix + key, value, "a whole number")
        value = int(value)
    return value


def _bool(ledger: KeyLedger, key: str, target: str | None = None) -> bool | None:
    value = ledger.take(key, target) if target else ledger.get(key)
    if value is not None and not isinstance(value, bool):
        raise _wrong(ledger.prefix + key, value, "true or false")
    return value


def _str(ledger: KeyLedger, key: str, target: str | None = None) -> str | None:
    value = ledger.take(key, target) if target else ledger.get(key)
    if value is not None and not isinstance(value, str):
        raise _wrong(ledger.prefix + key, value, "text")
    return value


def _refuse(where: str, what: str, hint: str) -> SpecError:
    return SpecError("This axolotl config cannot be imported as it is", [Problem(where, what, hint)])


# ----------------------------------------------------------------------------------------------
# Model, method, adapter


def _model(ledger: KeyLedger, path: Path) -> dict[str, Any]:
    base = _str(ledger, "base_model", "model.path")
    if not base:
        raise _refuse(f"{path} (base_model)", "missing", "add base_model (a hub id or a local folder)")
    for key, what in (("base_model_config", "model config"), ("tokenizer_config", "tokenizer")):
        other = _str(ledger, key)
        if other is not None and other != base:
            raise _refuse(key, f"the {what} comes from {other!r}, not from base_model {base!r}",
                          f"uft loads the {what} from model.path; remove {key} or point base_model at it")
        ledger.take(key, "model.path")
    model = {"path": base, "trust_remote_code": bool(_bool(ledger, "trust_remote_code", "model.trust_remote_code"))}
    for key in ("revision_of_model", "model_revision"):
        if ledger.has(key):
            model["revision"] = _str(ledger, key, "model.revision")
    kind = _str(ledger, "model_type") or _str(ledger, "type_of_model")
    for key in ("model_type", "type_of_model"):
        if kind and (kind == "AutoModelForCausalLM" or kind.endswith("ForCausalLM")):
            ledger.ignore(key, "uft loads the base model as a causal language model, as this does")
        elif kind == "AutoModelForSequenceClassification" and ledger.get("reward_model"):
            ledger.ignore(key, "method rm: uft loads the model as a one-score sequence classifier")
    if ledger.get("reward_model") and ledger.get("num_labels") in (None, 1):
        ledger.ignore("num_labels", "method rm: uft's reward model has one score")
    return model


def _method(ledger: KeyLedger, ctx: _Context) -> dict[str, Any]:
    rl = ctx.rl
    if ctx.reward_model and rl is None:
        ledger.take("reward_model", "method.name")
        return {"name": "rm"}
    if ledger.get("process_reward_model"):
        raise _refuse("process_reward_model", "a process reward model has no uft method",
                      "keep using axolotl for this run, or train an outcome reward model (reward_model: true)")
    ledger.ignore("reward_model", "false: not a reward model")
    if rl is None:
        ledger.ignore("rl", "empty: supervised fine-tuning")
        return {"name": "sft"}
    if rl not in RL_METHODS:
        raise _refuse("rl", f"rl {rl!r} has no uft translation yet", "import sft, dpo, ipo, orpo, kto or simpo configs")
    name, loss = RL_METHODS[rl]
    ledger.take("rl", "method.name")
    method: dict[str, Any] = {"name": name, "beta": _beta(ledger, rl)}
    if loss:
        method["loss_type"] = loss
    if rl == "simpo":
        gamma = _number(ledger, "simpo_gamma", "method.gamma")
        if gamma is not None:
            method["gamma"] = gamma
        # axolotl passes cpo_alpha only when set: trl's CPOConfig default (1.0) applies, not SimPO's paper's 0
        method["nll_weight"] = _number(ledger, "cpo_alpha", "method.nll_weight", default=TRL_CPO_ALPHA)
    if ledger.has("dpo_loss_type"):
        losses = ledger.get("dpo_loss_type")
        if not isinstance(losses, list) or len(losses) != 1 or name != "dpo":
            raise _refuse("dpo_loss_type", f"{losses!r}: uft trains one dpo loss",
                          "give one loss, e.g. dpo_loss_type: [sigmoid]")
        ledger.take("dpo_loss_type", "method.loss_type")
        if losses[0] != "sigmoid":
            method["loss_type"] = losses[0]
    return method


def _beta(ledger: KeyLedger, rl: str) -> float:
    """axolotl's order: trl.beta, then rl_beta, then orpo_alpha; else trl's own default."""
    trl = ledger.native.get("trl")
    if isinstance(trl, dict) and trl.get("beta") is not None:
        section = ledger.section("trl", known=())
        return _number(section, "beta", "method.beta")
    for key in ("rl_beta", "dpo_beta", "orpo_alpha"):
        if ledger.has(key) and (key != "orpo_alpha" or rl == "orpo"):
            return _number(ledger, key, "method.beta")
    ledger.result.defaults.append(("rl_beta", "method.beta"))
    return TRL_BETA


def _adapter(ledger: KeyLedger, path: Path) -> dict[str, Any]:
    kind = _str(ledger, "adapter", "adapter.type")
    four, eight = _bool(ledger, "load_in_4bit", "adapter.bits"), _bool(ledger, "load_in_8bit", "adapter.bits")
    if kind is None:
        if four or eight:
            raise _refuse("load_in_4bit" if four else "load_in_8bit", "a quantized base without an adapter",
                          "set adapter: lora or qlora, or remove it for a full fine-tune")
        return {"type": "full"}
    if kind not in ("lora", "qlora"):
        raise _refuse("adapter", f"adapter {kind!r} has no uft translation yet", "use lora or qlora")
    for key in ("lora_r", "lora_alpha"):
        if not ledger.has(key):
            raise _refuse(f"{path} ({key})", f"missing: axolotl would give peft no {key}",
                          f"add {key} (e.g. lora_r: 16, lora_alpha: 32)")
    adapter: dict[str, Any] = {"type": "lora", "r": _number(ledger, "lora_r", "adapter.r", int),
                               "alpha": _number(ledger, "lora_alpha", "adapter.alpha"),
                               "dropout": _number(ledger, "lora_dropout", "adapter.dropout"),
                               "target_modules": _targets(ledger),
                               "rslora": bool(_bool(ledger, "peft_use_rslora", "adapter.rslora"))}
    if kind == "qlora" or four or eight:
        adapter.update(type="qlora", bits=8 if eight and not four else 4)
    if _bool(ledger, "peft_use_dora", "adapter.type"):
        if adapter["type"] == "qlora":
            adapter["use_dora"] = True
        else:
            adapter["type"] = "dora"
    if ledger.has("loraplus_lr_ratio"):
        adapter["loraplus_lr_ratio"] = _number(ledger, "loraplus_lr_ratio", "adapter.loraplus_lr_ratio")
    embedding = ledger.get("loraplus_lr_embedding")
    if isinstance(embedding, str) or embedding != LORAPLUS_LR_EMBEDDING:
        raise _refuse("loraplus_lr_embedding", f"{embedding!r} differs from the value uft always uses "
                      f"({LORAPLUS_LR_EMBEDDING!r})", f"remove loraplus_lr_embedding (uft writes "
                      f"{LORAPLUS_LR_EMBEDDING!r}) or keep using axolotl for this run")
    ledger.ignore("loraplus_lr_embedding", f"uft always uses {LORAPLUS_LR_EMBEDDING!r}, the value the config has")
    return adapter


def _targets(ledger: KeyLedger) -> str | list[str]:
    """lora_target_linear (every linear layer, with any modules listed besides) or the modules listed."""
    modules = ledger.get("lora_target_modules")
    linear = _bool(ledger, "lora_target_linear", "adapter.target_modules")
    if modules is not None and not (isinstance(modules, list) and all(isinstance(m, str) for m in modules)):
        raise _refuse("lora_target_modules", f"{modules!r} is not a list of module names (peft reads a single "
                      "string as a regular expression over full module paths, which uft cannot express)",
                      "list the module names, e.g. [q_proj, v_proj], or set lora_target_linear: true")
    ledger.take("lora_target_modules", "adapter.target_modules")
    if linear:
        if modules:
            ledger.result.notes.append(
                f"lora_target_linear true with lora_target_modules {list(modules)}: axolotl targets every linear "
                "layer and the listed modules; the spec says all-linear (peft's every linear layer but the output "
                "layer), so a listed module outside them (lm_head, embed_tokens) gets no LoRA")
        return "all-linear"
    if not modules:
        raise _refuse("lora_target_modules", "no LoRA target modules: peft would pick its own per architecture",
                      "list lora_target_modules, or set lora_target_linear: true")
    return list(modules)


# ----------------------------------------------------------------------------------------------
# Datasets


def _datasets(ledger: KeyLedger, ctx: _Context, key: str) -> list[_Dataset]:
    entries = ledger.native.get(key)
    if isinstance(entries, dict):  # one mapping where axolotl wants a list of them
        raise _wrong(key, entries, "a list of datasets (`- path: ...`)")
    if not isinstance(entries, list) or not entries:
        raise _refuse(key, "no datasets", f"give {key} as a list of mappings (path, type, ...)")
    found = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _wrong(f"{key}[{index}]", entry, "a mapping (path, type, ...)")
        _row_filters(entry, f"{key}[{index}].")
        item = ledger.item(key, index, entry, known=DATASET_KNOWN)
        found.append(_dataset(item, ctx, key == "pretraining_dataset", "test" if key == "test_datasets" else "train"))
    return found


def _dataset(item: KeyLedger, ctx: _Context, pretraining: bool, split: str) -> _Dataset:
    where = item.prefix.rstrip(".")
    kind = item.get("type", "pretrain" if pretraining else None)
    if isinstance(kind, dict):
        raise _refuse(f"{where}.type", "a user-defined prompt format has no uft equivalent",
                      "convert the rows to alpaca, messages or preference columns and use a built-in type")
    if kind is not None and not isinstance(kind, str):
        raise _wrong(f"{where}.type", kind, "a dataset type name")
    if kind and kind.startswith("sharegpt"):
        raise SpecError("This dataset is written for an older axolotl", [Problem(
            f"{where}.type", f"type {kind!r} was removed from axolotl; {KNOWS}, refuses it", SHAREGPT_HINT)])
    if kind and ":" in kind:
        raise SpecError("This dataset is written for an older axolotl", [Problem(
            f"{where}.type", f"type {kind!r} is the `type:style` form of older axolotl versions; {KNOWS}, has no "
            "such type", "use type alpaca (or chat_template with the rows as messages), then import again")])
    source = _source(item, where, ctx.path, split)
    item.take("type", "data.train[].format")
    if ctx.rl == "kto":
        fmt, columns, template = _rl_type(item, where, kind, ctx, KTO_TYPES, "unpaired")
    elif ctx.rl or ctx.reward_model:
        table = PREFERENCE_TYPES if ctx.rl else REWARD_TYPES
        fmt, columns, template = _rl_type(item, where, kind, ctx, table, "preference")
    elif kind in ("completion", "pretrain"):
        fmt, template = "text", None
        field = _str(item, "text_column" if pretraining else "field", "data.train[].columns.text")
        columns = {"text": field} if field and field != "text" else {}
    elif kind == "alpaca":
        fmt, columns, template = "alpaca", {}, ("alpaca", None)
    elif kind in ("chat_template", "messages"):
        fmt, columns = "messages", _chat_columns(item, where)
        template = _template_choice(item, where, ctx)
        _train_roles(item, where)
    else:
        raise _refuse(f"{where}.type", f"dataset type {kind!r} has no uft mapping yet",
                      "use type alpaca, chat_template or completion (or convert the rows to one of them)")
    kind_of = {"text": "text", "preference": "preference", "unpaired": "unpaired"}.get(fmt, "chat")
    spec = {**source, "format": fmt, **({"columns": columns} if columns else {})}
    return _Dataset(spec, kind_of, template, alpaca=fmt == "alpaca")


def _source(item: KeyLedger, where: str, config: Path, split: str) -> dict[str, Any]:
    """A local file (data_files, or a path that exists beside the config or here), else a hub dataset (axolotl
    reads its `train` split for datasets, its `test` split for test_datasets, unless told)."""
    name = _str(item, "path", "data.train[].path")
    files = item.get("data_files")
    if isinstance(files, list) and len(files) == 1:
        files = files[0]
    if files is not None and not isinstance(files, str):
        raise _refuse(f"{where}.data_files", f"{files!r}: uft reads one file per dataset",
                      "give one data_files entry per dataset")
    local = next((p for p in _places(files or name, config) if p.is_file()), None) if (files or name) else None
    if files is not None:
        item.take("data_files", "data.train[].path")
        if local is None:
            raise _refuse(f"{where}.data_files", f"{files!r} is not a local file (here or beside the config)",
                          "give the local file's path; uft reads hub datasets whole, by their id")
    if local is not None:
        item.ignore("ds_type", "uft tells the file type from its name")
        if item.get("split") in (None, "train"):
            item.ignore("split", "a local file is read whole, as its one split")
        return {"path": str(local.resolve())}
    if not name:
        raise _refuse(f"{where}.path", "missing", "give the dataset's hub id or local file")
    if any(p.exists() for p in _places(name, config)):
        raise _refuse(f"{where}.path", f"{name!r} is a folder", "give one file of it per dataset")
    if item.has("ds_type"):
        raise _refuse(f"{where}.ds_type", f"{name!r} is no local file", "give the path of the local file")
    hub: dict[str, Any] = {"hub": name, "split": _str(item, "split", "data.train[].split") or split}
    if item.has("name"):
        hub["subset"] = _str(item, "name", "data.train[].subset")
    if item.has("revision"):
        raise _refuse(f"{where}.revision", "uft reads a hub dataset at its latest revision",
                      "remove revision, or download that revision to a local file and give its path")
    return hub


def _places(name: str, config: Path) -> list[Path]:
    """Where axolotl finds a relative path (the working directory), then beside the config."""
    path = Path(name)
    return [path] if path.is_absolute() else [Path.cwd() / path, config.parent / path]


def _chat_columns(item: KeyLedger, where: str) -> dict[str, str]:
    """field_messages and the message keys (message_property_mappings, or the older message_field_*) as columns;
    the roles axolotl maps must be roles uft's reader maps the same way."""
    columns = {}
    messages = _str(item, "field_messages", "data.train[].columns.messages")
    if messages and messages != "messages":
        columns["messages"] = messages
    mappings = item.get("message_property_mappings") or {}
    if not isinstance(mappings, dict):
        raise _wrong(f"{where}.message_property_mappings", mappings, "a mapping (role: ..., content: ...)")
    extra = sorted(set(mappings) - {"role", "content"})
    if extra:
        raise _refuse(f"{where}.message_property_mappings", f"maps {', '.join(extra)}; uft reads a turn's role and "
                      "content only", "remove the other properties or keep using axolotl for this dataset")
    item.take("message_property_mappings", "data.train[].columns")
    for prop in ("role", "content"):
        name = mappings.get(prop) or _str(item, f"message_field_{prop}", "data.train[].columns")
        item.take(f"message_field_{prop}", "data.train[].columns")
        if name and name != prop:
            columns[prop] = name
    if _bool(item, "drop_system_message"):
        raise _refuse(f"{where}.drop_system_message", "uft trains on the rows' system turns as they are",
                      "remove the system turns from the data, or remove drop_system_message")
    item.ignore("drop_system_message", "false: the rows' system turns are kept, as uft does")
    tools = _str(item, "field_tools", "data.train[].columns.tools")
    if tools and tools != "tools":
        columns["tools"] = tools
    _roles(item, where)
    return columns


def _roles(item: KeyLedger, where: str) -> None:
    roles = item.get("roles")
    if roles is None:
        return
    if not isinstance(roles, dict) or not all(isinstance(v, list) for v in roles.values()):
        raise _wrong(f"{where}.roles", roles, "a mapping of uft roles to lists of the data's role names")
    for target, sources in roles.items():
        for source in sources:
            if ROLE_ALIASES.get(str(source).strip().lower()) != target:
                raise _refuse(f"{where}.roles", f"role {source!r} read as {target!r}; uft reads it as "
                              f"{ROLE_ALIASES.get(str(source).strip().lower(), 'unknown')!r}",
                              "rename the roles in the data to user, assistant, system or tool")
    item.take("roles", "data.train[].format")


def _train_roles(item: KeyLedger, where: str) -> None:
    """Which tokens carry loss: uft trains assistant turns and their end-of-turn token, as axolotl's defaults."""
    roles = item.get("roles_to_train")
    if roles is not None and roles not in (["assistant"], ["gpt"]):
        raise _refuse(f"{where}.roles_to_train", f"{roles!r}: uft trains the assistant turns",
                      "remove roles_to_train (assistant), or set train_on_inputs: true to train every token")
    item.ignore("roles_to_train", "uft trains the assistant turns, as this does")
    for key in ("train_on_eos", "train_on_eot"):
        if item.get(key) == "turn":
            item.ignore(key, "uft trains the end-of-turn token of each assistant turn, as this does")


def _template_choice(item: KeyLedger, where: str, ctx: _Context) -> tuple[str, str | None]:
    """The template a chat dataset is rendered with: its own chat_template, else the config's."""
    name = _str(item, "chat_template", "template") or ctx.chat_template or "tokenizer_default"
    own = _str(item, "chat_template_jinja", "template.jinja")
    jinja = _jinja_text(own, f"{where}.chat_template_jinja", ctx.path) if own else ctx.jinja
    if item.has("chat_template_jinja") and not item.has("chat_template"):
        name = "jinja"
    return _uft_template(name, jinja, f"{where}.chat_template" if item.has("chat_template") else "chat_template")


def _uft_template(name: str, jinja: str | None, where: str) -> tuple[str, str | None]:
    if name == "jinja":
        if not jinja:
            raise _refuse(where, "chat_template jinja without chat_template_jinja", "give chat_template_jinja")
        return "jinja", jinja
    if name in TEMPLATES:
        return TEMPLATES[name], None
    why = TEMPLATE_DIFFERENCES.get(name, "uft's registry has no template that renders the same tokens")
    raise _refuse(where, f"axolotl chat template {name!r}: {why}",
                  "write the template's text as chat_template: jinja with chat_template_jinja, or use one of "
                  + ", ".join(sorted(TEMPLATES)))


def _rl_type(item: KeyLedger, where: str, kind: str | None, ctx: _Context,
             table: dict[str, dict[str, dict[str, str] | str]],
             fmt: str) -> tuple[str, dict[str, str], tuple[str, str | None] | None]:
    """A preference (or kto) strategy `<template>.<layout>` as a format, columns and the template it renders."""
    prefix, _, layout = (kind or "").partition(".")
    if not isinstance(table.get(prefix, {}).get(layout), (dict, str)):
        known = sorted(f"{p}.{t}" for p, layouts in table.items() for t, c in layouts.items() if isinstance(c, dict))
        what = "reward model" if ctx.reward_model and not ctx.rl else ctx.rl
        raise _refuse(f"{where}.type", f"{what} dataset type {kind!r} has no uft mapping yet" if kind else
                      "missing", "use one of " + ", ".join(known))
    columns = table[prefix][layout]
    if isinstance(columns, str):
        raise _refuse(f"{where}.type", f"{kind!r}: {columns}", "convert the rows to prompt, chosen and rejected "
                      "answers (or prompt, completion and label for kto) and use type chatml.prompt_pairs")
    columns = dict(columns)
    if prefix in ("chat_template", "bradley_terry"):
        template = _template_choice(item, where, ctx)
        if layout == "default":
            messages = _str(item, "field_messages", "data.train[].columns.messages")
            if messages and messages != "messages":
                columns["messages"] = messages
            for key, col in (("field_chosen", "chosen"), ("field_rejected", "rejected")):
                name = _str(item, key, f"data.train[].columns.{col}")
                if name and name != col:
                    columns[col] = name
            columns.update(_property_columns(item, where))
            _roles(item, where)
    else:
        template = (prefix, None)
    return fmt, columns, template


def _property_columns(item: KeyLedger, where: str) -> dict[str, str]:
    mappings = item.get("message_property_mappings") or {}
    if not isinstance(mappings, dict):
        raise _wrong(f"{where}.message_property_mappings", mappings, "a mapping (role: ..., content: ...)")
    item.take("message_property_mappings", "data.train[].columns")
    return {prop: mappings[prop] for prop in ("role", "content") if mappings.get(prop, prop) != prop}


def _check_kinds(datasets: list[_Dataset], method: str, path: Path) -> None:
    kinds = {d.kind for d in datasets}
    if len(kinds) > 1:
        raise _refuse(f"{path} (datasets)", f"the datasets mix {', '.join(sorted(kinds))} rows; a uft run trains "
                      "one kind", "import the datasets of one kind (chat, or plain-text completion) per spec")
    if method != "pt" and kinds == {"text"}:
        raise _refuse(f"{path} (datasets)", f"plain-text (completion) rows with method {method}",
                      "completion and pretraining datasets train sft runs only")


def _template(ledger: KeyLedger, ctx: _Context, datasets: list[_Dataset], method: str) -> Any:
    """One template for the whole spec: what the datasets render with must agree."""
    chosen = {d.template for d in datasets if d.template is not None}
    if len(chosen) > 1:
        raise _refuse("chat_template", "the datasets render with different templates: " +
                      ", ".join(sorted(n for n, _ in chosen)), "use one chat template for every dataset")
    rendered = next(iter(chosen), None)
    top = ctx.chat_template
    if top is not None and (ledger.has("chat_template") or ledger.has("chat_template_jinja")):
        own = _uft_template(top, ctx.jinja, "chat_template") if top in TEMPLATES or top == "jinja" else None
        if rendered is not None and own == rendered:
            ledger.take("chat_template", "template")
            if ledger.has("chat_template_jinja"):
                ledger.take("chat_template_jinja", "template.jinja")
        else:
            ledger.keep("chat_template", note="chat_template is kept for the axolotl backend: it is the saved "
                        "tokenizer's chat template; these datasets are rendered " +
                        ("by axolotl's alpaca prompter" if any(d.alpaca for d in datasets) else
                         f"with {rendered[0] if rendered else 'no template'}"))
            ledger.keep("chat_template_jinja")
    system = ledger.get("default_system_message")
    if system is not None:
        ledger.ignore("default_system_message", f"in {KNOWS}, it only replaces 'You are a helpful assistant.' in "
                      "a chatml template, and axolotl's chatml template has no such text: it changes nothing")
    if method == "pt" or rendered is None:
        return None
    if any(d.alpaca for d in datasets):
        ledger.result.notes.append(
            "type alpaca: axolotl's alpaca prompter puts its own preamble ('Below is an instruction that describes "
            "a task...') and an '### Input:' section before the response; uft renders the instruction and input "
            "as one user turn with its alpaca template (no preamble). The responses (what carries the loss) are "
            "the same; the prompt text around them differs.")
    name, jinja = rendered
    return {"name": "jinja", "jinja": jinja} if name == "jinja" else name


def _jinja_text(text: str | None, where: str, config: Path) -> str | None:
    """chat_template_jinja: the template text, or the path of a file holding it (here or beside the config)."""
    if text and "{" not in text:
        found = next((p for p in _places(text, config) if p.is_file()), None)
        if found is None:
            raise _refuse(where, f"{text!r} is neither Jinja text nor a file",
                          "give the template text or the path of its file")
        return found.read_text()
    return text


# ----------------------------------------------------------------------------------------------
# Data and training


def _data(ledger: KeyLedger, path: Path, train: list[_Dataset], evals: list[_Dataset]) -> dict[str, Any]:
    merged = _bool(ledger, "shuffle_merged_datasets", "data.shuffle")
    sequential = _bool(ledger, "curriculum_sampling", "data.shuffle")  # read (and recorded) even when merged
    shuffle = bool(merged) or not sequential
    data: dict[str, Any] = {"train": [d.spec for d in train],
                            "max_length": _number(ledger, "sequence_len", "data.max_length", int),
                            "packing": bool(_bool(ledger, "sample_packing", "data.packing")),
                            "train_on_prompt": bool(_bool(ledger, "train_on_inputs", "data.train_on_prompt")),
                            # axolotl shuffles the merged rows unless told not to, and its sampler shuffles them
                            # again unless curriculum_sampling reads them in order: file order only with both off
                            "shuffle": shuffle}
    if not sequential:
        ledger.result.notes.append("row order: axolotl's random sampler draws the rows in a new order every epoch; "
                                   "uft shuffles them once (data.shuffle, the spec's seed) and every backend reads "
                                   "them in that order (curriculum_sampling true on axolotl)")
    _long_rows(ledger, data["max_length"])
    _packing_order(ledger, data["packing"])
    if len(evals) > 1:
        raise _refuse("test_datasets", "uft evaluates on one dataset", "give one test dataset")
    if evals:
        data["eval"] = evals[0].spec
    split = _number(ledger, "val_set_size", "data.eval_split")
    if split and evals:
        raise _refuse("val_set_size", "set together with test_datasets", "choose one")
    if split and split >= 1:
        raise _refuse("val_set_size", f"{split!r} rows: uft holds out a fraction of the data",
                      "give val_set_size as a fraction below 1 (e.g. 0.05)")
    if split:
        data["eval_split"] = split
    return data


def _long_rows(ledger: KeyLedger, max_length: int) -> None:
    """axolotl leaves out rows longer than sequence_len unless told to truncate them; uft truncates them."""
    strategy = _str(ledger, "excess_length_strategy") or "drop"
    if strategy == "truncate":
        ledger.ignore("excess_length_strategy", "uft truncates rows longer than data.max_length too")
        return
    done = "leaves them out" if strategy == "drop" else "stops with an error"
    ledger.result.notes.append(f"rows longer than sequence_len ({max_length} tokens): axolotl {done} "
                               f"(excess_length_strategy {strategy}); uft trains them truncated to data.max_length")


def _packing_order(ledger: KeyLedger, packing: bool) -> None:
    """axolotl packs rows into length bins (multipack) unless sample_packing_sequentially; uft packs them in its
    row order, as its axolotl translation writes."""
    if not packing:
        ledger.ignore("sample_packing_sequentially", "sample_packing is off: no rows are packed")
        return
    if _bool(ledger, "sample_packing_sequentially"):
        ledger.ignore("sample_packing_sequentially", "uft packs rows sequentially in its row order, as this does")
        return
    ledger.ignore("sample_packing_sequentially", "false, axolotl's default: see the note on packing")
    ledger.result.notes.append("sample_packing: axolotl packs the rows into sequences by length (multipack bins); "
                               "uft packs them sequentially in its row order (sample_packing_sequentially true on "
                               "axolotl), so the samples that share a sequence differ")


def _tf32(ledger: KeyLedger) -> None:
    """uft trains without TF32 matmuls (tf32 false on axolotl, torch's default elsewhere); TF32 is kept for axolotl."""
    value = ledger.native.get("tf32")
    if value is False:
        ledger.ignore("tf32", "uft trains without TF32 matmuls, as this does")
    elif value is None:  # axolotl's default, auto
        ledger.result.notes.append("tf32: the config sets none; axolotl then uses TF32 matmuls where the GPU has "
                                   "them (tf32 auto); uft trains without them on every backend (tf32 false on "
                                   "axolotl): set backend_options.axolotl.tf32 to choose")
    else:
        ledger.keep("tf32", note=f"tf32 {value} is kept for the axolotl backend: TF32 matmuls (lower precision, "
                    "faster) on GPUs that have them; other backends train without them")


def _training(ledger: KeyLedger, path: Path) -> dict[str, Any]:
    max_steps = _number(ledger, "max_steps", "training.max_steps", int)
    steps = max_steps if max_steps and max_steps > 0 else None
    micro = _number(ledger, "micro_batch_size", "training.per_device_batch_size", int)
    accumulation = _accumulation(ledger, micro)
    lr = _number(ledger, "learning_rate", "training.learning_rate")
    if lr is None:
        raise _refuse(f"{path} (learning_rate)", "missing (axolotl requires it)", "add learning_rate")
    training = {
        **({"max_steps": steps} if steps else {"epochs": _number(ledger, "num_epochs", "training.epochs")}),
        "learning_rate": lr, "lr_scheduler": _scheduler(ledger), "warmup_ratio": _warmup(ledger, steps),
        "per_device_batch_size": micro, "gradient_accumulation_steps": accumulation,
        "gradient_checkpointing": _checkpointing(ledger), "precision": _precision(ledger),
        "optimizer": _optimizer(ledger),
        "weight_decay": _number(ledger, "weight_decay", "training.weight_decay"),
        "max_grad_norm": _number(ledger, "max_grad_norm", "training.max_grad_norm"),
        "seed": _number(ledger, "seed", "training.seed", int),
        "report_to": _report_to(ledger),
    }
    _tf32(ledger)
    if steps:
        ledger.ignore("num_epochs", "max_steps is set: it ends the run, as in axolotl")
    if ledger.has("logging_steps"):
        training["logging_steps"] = _number(ledger, "logging_steps", "training.logging_steps", int)
    if ledger.has("save_steps") and ledger.get("save_strategy", "steps") != "no":
        save = _number(ledger, "save_steps", "training.save_steps")
        if not float(save).is_integer():
            raise _refuse("save_steps", f"{save!r} is a fraction of the run; uft saves every N steps",
                          "give save_steps as a number of steps")
        training["save_steps"] = int(save)
        ledger.ignore("save_strategy", "read with save_steps")
    elif ledger.has("save_strategy"):
        ledger.ignore("save_strategy", "intermediate checkpoints; uft saves the final model")
    if ledger.has("save_steps"):
        ledger.ignore("save_steps", "save_strategy no: no intermediate checkpoints")
    return training


def _accumulation(ledger: KeyLedger, micro: int) -> int:
    batch = _number(ledger, "batch_size", "training.gradient_accumulation_steps", int)
    if batch is not None and not ledger.has("gradient_accumulation_steps"):
        raise _refuse("batch_size", "axolotl derives gradient accumulation from batch_size / micro_batch_size / "
                      "the number of GPUs, which depends on the machine", f"write gradient_accumulation_steps "
                      f"instead (batch_size {batch} / micro_batch_size {micro} on one GPU: {max(batch // micro, 1)})")
    accumulation = _number(ledger, "gradient_accumulation_steps", "training.gradient_accumulation_steps", int)
    if batch is not None and batch != micro * accumulation:
        raise _refuse("batch_size", f"{batch} is not micro_batch_size x gradient_accumulation_steps "
                      f"({micro * accumulation})", "remove batch_size (axolotl derives it)")
    return accumulation


def _scheduler(ledger: KeyLedger) -> str:
    name = _str(ledger, "lr_scheduler", "training.lr_scheduler")
    if name not in SCHEDULERS:
        raise _refuse("lr_scheduler", f"{name!r} has no uft equivalent", "use one of " + ", ".join(SCHEDULERS))
    return name


def _warmup(ledger: KeyLedger, max_steps: int | None) -> float:
    """uft's warmup is a ratio of the steps. axolotl's warmup_steps is exact only when the run's length is known
    (max_steps): anything else is refused, never rounded. axolotl's own default (3% of the steps, whole steps,
    at most 100) is written as the ratio 0.03 and said in a note."""
    if ledger.has("warmup_steps"):
        steps = _number(ledger, "warmup_steps", "training.warmup_ratio", int)
        ledger.ignore("warmup_ratio", "warmup_steps wins over it in axolotl")
        if steps == 0:
            return 0.0
        steps = 2 if steps == 1 else steps  # axolotl turns a warmup of 1 step into 2
        ratio = _exact_ratio(steps, max_steps) if max_steps else None
        if ratio is None:
            raise _refuse("warmup_steps", f"{steps} steps: uft sets warmup as a ratio of the steps, and this run's "
                          "length " + ("is not a whole multiple of it" if max_steps else "(num_epochs) depends on "
                                       "the data"),
                          "give warmup_ratio instead (axolotl takes it too), or max_steps with warmup_steps")
        return ratio
    if ledger.has("warmup_ratio"):
        return _number(ledger, "warmup_ratio", "training.warmup_ratio")
    ledger.result.defaults.append(("warmup_ratio", "training.warmup_ratio"))
    if max_steps:
        steps = min(int(0.03 * max_steps), 100)
        steps = 2 if steps == 1 else steps
        ratio = _exact_ratio(steps, max_steps) if steps else 0.0
        if ratio is not None:
            return ratio
    ledger.result.notes.append("warmup: the config sets none; axolotl then warms up for 3% of the steps, rounded "
                               "down and at most 100 steps; the spec says warmup_ratio 0.03 (rounded up by the "
                               "trainers, and not capped); set warmup_ratio in the spec to choose")
    return 0.03


def _exact_ratio(steps: int, total: int) -> float | None:
    """A ratio whose product with the run's steps is exactly `steps` (so rounding up or down gives the same)."""
    ratio = steps / total
    for candidate in (ratio, math.nextafter(ratio, 0), math.nextafter(ratio, 1)):
        if candidate * total == steps and 0 <= candidate < 1:
            return candidate
    return None


def _checkpointing(ledger: KeyLedger) -> bool:
    value = ledger.take("gradient_checkpointing", "training.gradient_checkpointing")
    if value in ("offload", "offload_disk"):
        ledger.result.notes.append(f"gradient_checkpointing {value}: the spec says gradient checkpointing; where "
                                   "the saved activations live (GPU, CPU or disk) is memory, not training")
        return True
    if not isinstance(value, bool):
        raise _wrong("gradient_checkpointing", value, "true, false, offload or offload_disk")
    return value


def _precision(ledger: KeyLedger) -> str:
    bf16 = ledger.take("bf16", "training.precision")
    fp16 = _bool(ledger, "fp16", "training.precision")
    if bf16 not in (True, False, None, "auto", "full"):
        raise _wrong("bf16", bf16, "true, false or auto")
    if bf16 == "full":
        ledger.result.notes.append("bf16 full: the spec trains in bf16; axolotl's bf16 evaluation is its own")
        return "bf16"
    if bf16 is True:
        return "bf16"
    if fp16:
        return "fp16"
    if bf16 == "auto":
        ledger.result.notes.append("bf16 auto: the spec's precision auto is bf16 where the GPU has it, as in "
                                   "axolotl; on a GPU without bf16 axolotl trains in fp16 and uft in fp32")
        return "auto"
    return "fp32"


def _optimizer(ledger: KeyLedger) -> str:
    name = _str(ledger, "optimizer", "training.optimizer")
    if name not in OPTIMIZERS:
        raise _refuse("optimizer", f"{name!r} has no uft equivalent", "use one of " + ", ".join(OPTIMIZERS))
    if name == "adamw_torch_fused":
        ledger.result.notes.append("optimizer adamw_torch_fused: the spec says adamw_torch, the same AdamW update "
                                   "(fused is the kernel, a speed choice)")
    return OPTIMIZERS[name]


def _report_to(ledger: KeyLedger) -> list[str]:
    trackers = []
    if _bool(ledger, "use_wandb", "training.report_to") or ledger.has("wandb_project"):
        trackers.append("wandb")
        named = [key for key in WANDB_NAMES if ledger.has(key)]
        for key in named:
            ledger.keep(key)
        if named:
            ledger.result.notes.append(
                f"{', '.join(named)} kept for the axolotl backend; the spec logs to wandb (report_to), and other "
                "backends file the run where wandb's own environment variables say (WANDB_PROJECT, WANDB_ENTITY, "
                "WANDB_NAME)")
    if _bool(ledger, "use_tensorboard", "training.report_to"):
        trackers.append("tensorboard")
    return trackers or ["none"]


# ----------------------------------------------------------------------------------------------
# What the user should know about kept keys, and empty ones


def _notes(ledger: KeyLedger) -> None:
    for key in ("deepspeed", "fsdp", "fsdp_config"):
        if ledger.has(key) and not ledger.done(key):
            ledger.keep(key, note=f"{key} is kept for the axolotl backend: how the job is sharded over GPUs; other "
                        "backends run the job their own way (" + LAUNCH.split(";")[1].strip() + ")")
    for key in ("special_tokens", "tokens", "added_tokens_overrides"):
        if ledger.has(key) and not ledger.done(key):
            ledger.keep(key, note=f"{key} is kept for the axolotl backend: uft's spec does not change the "
                        "tokenizer's tokens, so other backends train with the model's own")


def _nulls(ledger: KeyLedger) -> None:
    for key in ledger.leftovers():
        if ledger.native[key] is None:
            ledger.ignore(key, "empty (null): axolotl reads it as unset")
    for child in ledger._sections:
        _nulls(child)


def _name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem).strip("-.") or "imported"
    return stem[:100]
