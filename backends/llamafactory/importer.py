"""The way back: a LLaMA-Factory training YAML (and its dataset_info.json entries) as a uft spec.

LLaMA-Factory's own defaults are written out explicitly (lora_alpha = 2 x rank, gradient checkpointing on,
cutoff_len 2048, ...), so the imported spec trains the same way on any backend. Keys the spec does not
model are kept verbatim under `backend_options.llamafactory`; nothing is dropped. The keys LLaMA-Factory 0.9.5
takes and their defaults are in arguments.json (made by dump_arguments.py inside its environment), so a
misspelt key is shown as unknown with a did-you-mean. v1 configs (`USE_V1=1`) are read by importer_v1.py;
chat, export and evaluation configs and vision-language training are refused, naming why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import (
    BOOKKEEPING,
    LAUNCH,
    RESUME,
    SIGNATURES,
    WORKERS,
    ImportResult,
    KeyLedger,
    check_tool,
    unknown_notes,
)
from unified_ft.spec import LORAPLUS_LR_EMBEDDING
from unified_ft.userfile import load_yaml, read_json_file, read_user_file

from . import DEFAULT_SYSTEM, PT_TEMPLATE, STAGES, TEMPLATE_ALIASES, TEMPLATES

HERE = Path(__file__).resolve().parent
#: Every key LLaMA-Factory's train parser takes, with its declared default (dump_arguments.py made it).
KNOWN = json.loads((HERE / "arguments.json").read_text(encoding="utf-8"))
#: Defaults LLaMA-Factory declares as None and works out while parsing, as the values it then trains with.
RESOLVED = {"warmup_ratio": 0.0}  # transformers: None means no warmup (warmup_steps 0)
#: LLaMA-Factory / transformers defaults, written out so nothing stays implicit (None: worked out later, e.g.
#: lora_alpha = 2 x lora_rank, packing = stage is pt; the importer does that itself).
DEFAULTS: dict[str, Any] = {**{k: v for k, v in KNOWN["arguments"].items() if v is not None}, **RESOLVED}
#: LLaMA-Factory optimizers and uft's: the fused AdamW kernel (transformers' default) is AdamW's update.
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "sgd": "sgd",
              "adafactor": "adafactor", "adamw_bnb_8bit": "adamw_8bit", "adamw_8bit": "adamw_8bit",
              "paged_adamw_8bit": "paged_adamw_8bit"}

#: Keys LLaMA-Factory parses as numbers (PyYAML reads `1e-4` as a string; HfArgumentParser makes it a float).
NUMERIC = {key for key, value in KNOWN["arguments"].items() if type(value) in (int, float)} | {
    "lora_alpha", "loraplus_lr_ratio", "max_samples", "save_steps", "warmup_steps", "quantization_bit",
    "eval_steps", "save_total_limit", "per_device_eval_batch_size", "pissa_iter", "warmup_ratio"}
#: Optimizers LLaMA-Factory swaps in for the whole run: only it trains this way (kept, with a note).
#: key -> (its name, the prefix of its own settings).
OWN_OPTIMIZERS = {"use_galore": ("GaLore", "galore_"), "use_apollo": ("APOLLO", "apollo_"),
                  "use_badam": ("BAdam", "badam_"), "use_adam_mini": ("Adam-mini", "adam_mini_"),
                  "use_muon": ("Muon", "muon_"), "use_llama_pro": ("LLaMA Pro (trains only the expanded blocks)", "")}
#: Keys only inference, chat, evaluation and export configs have (`llamafactory-cli chat|export|eval`).
NOT_TRAINING = ("export_dir", "infer_backend", "adapter_name_or_path", "task", "export_quantization_bit")
MULTIMODAL = ("image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels", "video_fps",
              "audio_sampling_rate", "freeze_vision_tower", "freeze_multi_modal_projector")

#: Keys that do not change what is trained under uft, each with why.
IGNORED = {
    "do_train": "uft trains whenever it runs a job",
    "output_dir": BOOKKEEPING, "overwrite_output_dir": BOOKKEEPING, "overwrite_cache": WORKERS,
    "plot_loss": "uft's report plots the loss of every run",
    "dataset_dir": "read to find dataset_info.json; the spec holds the resolved dataset paths",
    "save_strategy": "read with save_steps; uft saves the final model always",
    "preprocessing_num_workers": WORKERS, "dataloader_num_workers": WORKERS,
    "data_seed": "uft's data step orders the rows by the spec's seed",
    "mask_history": "uft always trains on every assistant turn, as LLaMA-Factory's default",
    "save_only_model": "uft keeps the final model (and adapter) only, not optimizer states",
    "resume_from_checkpoint": RESUME, "ddp_timeout": LAUNCH,
}


def import_config(config_path: str | Path, dataset_info: str | Path | None = None) -> ImportResult:
    """The spec as a dict, [(native key, spec key)] mapped, {native key: value} kept verbatim."""
    config_path = Path(config_path)
    text = read_user_file(config_path, "LLaMA-Factory config", "give its training YAML (examples/train_lora/...)")
    native = load_yaml(text, str(config_path), "LLaMA-Factory config").data
    if not isinstance(native, dict) or not native:
        raise SpecError(f"{config_path} is not a LLaMA-Factory config", [Problem(
            str(config_path), "expected a mapping of keys" if native else "the file is empty",
            "give LLaMA-Factory's training YAML (stage, model_name_or_path, dataset, ...)")])
    check_tool(native, "llamafactory", str(config_path))
    if is_v1(native):
        from .importer_v1 import import_v1

        return import_v1(native, config_path)
    _training_config(native, config_path)
    native = _numbers(native, config_path)
    ledger = KeyLedger(native, "llamafactory", known=KNOWN["arguments"], defaults=DEFAULTS)
    get, take = ledger.get, ledger.take
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)
    _own_optimizers(ledger)

    stage, pref_loss = take("stage", "method.name"), get("pref_loss")
    method_name = pref_loss if stage == "dpo" and pref_loss in ("orpo", "simpo") else stage
    if method_name not in STAGES:
        raise SpecError("This LLaMA-Factory config cannot be imported yet", [Problem(
            f"{config_path} (stage)", f"stage {stage!r}" + (f" with pref_loss {pref_loss!r}" if pref_loss else "") +
            " has no uft translation yet", "import sft, pt, dpo, orpo, simpo, kto or rm configs")])
    method: dict[str, Any] = {"name": method_name}
    if stage == "kto":
        method["beta"] = take("pref_beta", "method.beta")
    if stage == "dpo":
        take("pref_loss", "method.loss_type")
        method["beta"] = take("pref_beta", "method.beta")
        if pref_loss not in ("sigmoid", "orpo", "simpo"):
            method["loss_type"] = pref_loss
        if pref_loss == "simpo":
            method["gamma"] = take("simpo_gamma", "method.gamma")
            method["nll_weight"] = take("pref_ftx", "method.nll_weight")

    finetuning = take("finetuning_type", "adapter.type")
    adapter: dict[str, Any] = {"type": finetuning}
    if finetuning == "lora":
        rank = take("lora_rank", "adapter.r")
        alpha = take("lora_alpha", "adapter.alpha", rank * 2)  # LLaMA-Factory's default: twice the rank
        target = take("lora_target", "adapter.target_modules")
        adapter.update({"r": rank, "alpha": alpha, "dropout": take("lora_dropout", "adapter.dropout"),
                        "target_modules": "all-linear" if target == "all" else
                        [t.strip() for t in str(target).split(",")],
                        "rslora": take("use_rslora", "adapter.rslora")})
        if take("loraplus_lr_ratio", "adapter.loraplus_lr_ratio") is not None:
            adapter["loraplus_lr_ratio"] = native["loraplus_lr_ratio"]
        _only_default(ledger, "loraplus_lr_embedding", LORAPLUS_LR_EMBEDDING)
        ledger.ignore("pissa_convert", "uft always converts PiSSA adapters back to plain LoRA when it saves")
        if take("pissa_init", "adapter.init"):
            iters = take("pissa_iter", "adapter.pissa_iters")
            adapter.update(init="pissa", pissa_iters=0 if iters == -1 else iters)
        if take("use_dora", "adapter.use_dora"):
            adapter["type"] = "dora"
        if ledger.has("quantization_bit"):
            adapter.update(type="qlora", bits=take("quantization_bit", "adapter.bits"))
            _only_default(ledger, "quantization_method", "bnb")
    elif finetuning == "freeze":
        adapter["trainable_layers"] = take("freeze_trainable_layers", "adapter.trainable_layers")
        _only_default(ledger, "freeze_trainable_modules", "all")

    template = take("template", "template")
    reverse = {**{v: k for k, v in TEMPLATES.items() if k != "qwen"}, **TEMPLATE_ALIASES}  # LF's qwen: Qwen2.5's
    system = None
    if template == "qwen" and native.get("default_system") == DEFAULT_SYSTEM["qwen"]:
        take("default_system", "template")
        reverse["qwen"] = "qwen"
    elif ledger.has("default_system"):  # portable: uft's data step puts it in every conversation without one
        system = str(take("default_system", "template.system"))
        reverse["qwen"] = "qwen"  # with a system prompt in every row, uft's qwen and qwen2_5 render the same
    if method_name == "pt" and template in (PT_TEMPLATE, None):
        reverse[template] = "model"  # plain text: the template renders no chat
    if template not in reverse:
        raise SpecError("This LLaMA-Factory config cannot be imported", [Problem(
            "template", f"LLaMA-Factory template {template!r} has no uft equivalent",
            f"uft maps these: {', '.join(sorted(reverse))}")])

    bf16, fp16 = take("bf16", "training.precision"), take("fp16", "training.precision")
    max_steps = take("max_steps", "training.max_steps")
    epochs = take("num_train_epochs", "training.epochs")
    report = take("report_to", "training.report_to")
    training = {
        **({"max_steps": max_steps} if max_steps and max_steps > 0 else {"epochs": epochs}),
        "learning_rate": take("learning_rate", "training.learning_rate"),
        "lr_scheduler": take("lr_scheduler_type", "training.lr_scheduler"),
        "warmup_ratio": take("warmup_ratio", "training.warmup_ratio"),
        "per_device_batch_size": take("per_device_train_batch_size", "training.per_device_batch_size"),
        "gradient_accumulation_steps": take("gradient_accumulation_steps", "training.gradient_accumulation_steps"),
        "gradient_checkpointing": not take("disable_gradient_checkpointing", "training.gradient_checkpointing"),
        "precision": "bf16" if bf16 else "fp16" if fp16 else "fp32",
        "optimizer": _optimizer(take("optim", "training.optimizer"), ledger.result.notes),
        "weight_decay": take("weight_decay", "training.weight_decay"),
        "max_grad_norm": take("max_grad_norm", "training.max_grad_norm"),
        "seed": take("seed", "training.seed"),
        "logging_steps": take("logging_steps", "training.logging_steps"),
        "report_to": [report] if isinstance(report, str) else list(report),
    }
    if ledger.has("save_steps") and native.get("save_strategy", "steps") != "no":
        training["save_steps"] = take("save_steps", "training.save_steps")

    info_path = Path(dataset_info) if dataset_info else _dataset_info(config_path, native.get("dataset_dir", "data"))
    first_rows = take("max_samples", "data.train[].first_rows") if ledger.has("max_samples") else None
    data = {"train": [{**d, **({"first_rows": first_rows} if first_rows else {})}
                      for d in _datasets(take("dataset", "data.train"), info_path, method_name)],
            "max_length": take("cutoff_len", "data.max_length"),
            "packing": bool(take("packing", "data.packing", method_name == "pt")),  # LF packs pt by default
            "train_on_prompt": take("train_on_prompt", "data.train_on_prompt"),
            # LLaMA-Factory reads rows in file order with disable_shuffling, else its sampler shuffles them
            "shuffle": not take("disable_shuffling", "data.shuffle")}
    if ledger.has("eval_dataset"):
        data["eval"] = _datasets(take("eval_dataset", "data.eval"), info_path, method_name)[0]
    spec = {"name": _name(config_path), "model": {"path": take("model_name_or_path", "model.path"),
                                                  "trust_remote_code": take("trust_remote_code",
                                                                            "model.trust_remote_code")},
            "template": reverse[template] if system is None else {"name": reverse[template], "system": system},
            "method": method, "adapter": adapter, "data": data, "training": training}
    if ledger.has("model_revision"):
        spec["model"]["revision"] = take("model_revision", "model.revision")
    if data["shuffle"] and training.get("epochs", 0) > 1:
        ledger.result.notes.append(SHUFFLE_NOTE)
    result = ledger.finish(spec)
    result.notes += unknown_notes(result)
    return result


#: What uft's data.shuffle does differently from LLaMA-Factory's sampler (an equalisation, said out loud).
SHUFFLE_NOTE = ("LLaMA-Factory's sampler reshuffles the rows every epoch; uft shuffles them once by training.seed "
                "(data.shuffle) and every backend reads them in that order each epoch")

FUSED_NOTE = ("optim adamw_torch_fused (transformers' default, so LLaMA-Factory's) is written as adamw_torch: the "
              "same AdamW update, run without the fused kernel on every backend")


def is_v1(native: dict[str, Any]) -> bool:
    """A config in LLaMA-Factory v1's language (`USE_V1=1 llamafactory-cli sft`): it names the model with `model`
    and its plugins with `*_config` mappings, and has none of v0's signature keys."""
    v1 = {"model", "train_dataset", "micro_batch_size", *SIGNATURES["llamafactory-v1"]}
    return bool(v1 & set(native)) and not ({"model_name_or_path", "stage", "dataset"} & set(native))


def _training_config(native: dict[str, Any], config_path: Path) -> None:
    """Refuse, naming why, configs that train nothing (chat, export, eval) and multimodal training."""
    if "dataset" not in native and "stage" not in native and "do_train" not in native:
        found = [k for k in NOT_TRAINING if k in native]
        raise SpecError(f"{config_path} is not a LLaMA-Factory training config", [Problem(
            str(config_path), "it has no dataset and no stage" + (f" but {', '.join(found)}: a chat, export or "
                                                                 "evaluation config" if found else ""),
            "uft imports training configs (`llamafactory-cli train`, e.g. examples/train_lora/*.yaml); merge an "
            "adapter with `uft export`, chat with the run's model")])
    media = [k for k in MULTIMODAL if k in native]
    template = str(native.get("template") or "")
    if media or "_vl" in template or template.endswith("vl"):
        raise SpecError("This LLaMA-Factory config trains a vision-language model", [Problem(
            str(config_path), "multimodal training (" + ", ".join(media + ([f"template {template}"] if template
                                                                           else [])) + ") is not supported by uft",
            "uft fine-tunes text-only models; keep using LLaMA-Factory for this run")])


def _own_optimizers(ledger: KeyLedger) -> None:
    """GaLore, BAdam, APOLLO, ...: LLaMA-Factory's own optimizers, kept for it with a note (no other backend has
    them: there the run uses training.optimizer, as the plan of every other backend says)."""
    for key, (name, prefix) in OWN_OPTIMIZERS.items():
        if not ledger.native.get(key):
            continue
        for other in [k for k in ledger.native if prefix and k.startswith(prefix) or k == key]:
            ledger.keep(other)
        ledger.result.notes.append(
            f"{key}: LLaMA-Factory trains with {name}; kept in backend_options.llamafactory, so only the llamafactory "
            "backend trains this way, other backends use training.optimizer")
    if ledger.native.get("pure_bf16"):
        ledger.keep("pure_bf16", note=(
            "pure_bf16: LLaMA-Factory trains the bf16 weights themselves (no fp32 master copy); kept for the "
            "llamafactory backend; training.precision is what bf16/fp16 say (fp32 if neither), so set "
            "training.precision: bf16 for mixed precision on the other backends"))


def _optimizer(optim: str, notes: list[str]) -> str:
    if optim == "adamw_torch_fused":
        notes.append(FUSED_NOTE)
    if optim not in OPTIMIZERS:
        raise SpecError("This LLaMA-Factory config cannot be imported", [Problem(
            "optim", f"{optim!r} has no uft optimizer", f"uft maps these: {', '.join(sorted(OPTIMIZERS))}")])
    return OPTIMIZERS[optim]


def _numbers(native: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Numeric keys written as strings (`learning_rate: 1e-4`, which YAML 1.1 reads as text) as numbers, the way
    LLaMA-Factory's argument parser reads them; text that is no number is an error naming the key."""
    out = dict(native)
    for key in NUMERIC & set(native):
        value = native[key]
        if not isinstance(value, str):
            continue
        try:
            number = float(value)
        except ValueError:
            raise SpecError("The LLaMA-Factory config has a value of the wrong type", [Problem(
                f"{config_path} ({key})", f"{value!r} is not a number", f"write {key} as a number")]) from None
        out[key] = int(number) if number.is_integer() and isinstance(DEFAULTS.get(key, 0), int) else number
    return out


def _dataset_info(config_path: Path, dataset_dir: str) -> Path:
    """dataset_info.json where LLaMA-Factory looks (dataset_dir against the working directory), else beside the
    config (how configs copied out of a checkout are usually kept); an error lists both places."""
    places = [Path.cwd() / dataset_dir / "dataset_info.json", config_path.parent / dataset_dir / "dataset_info.json"]
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise SpecError("The config's datasets cannot be found", [Problem(
            "dataset_dir", "no dataset_info.json in " + " or ".join(str(p.parent) for p in places),
            "run uft import from the folder LLaMA-Factory runs in, or pass --dataset-info PATH")])
    return found


def _only_default(ledger: KeyLedger, key: str, default: Any) -> None:
    """A key uft writes with a fixed value: accepted at that value, an error (not a silent change) otherwise."""
    if ledger.get(key, default) != default:
        raise SpecError("This LLaMA-Factory config cannot be imported as it is", [Problem(
            key, f"{ledger.native[key]!r} differs from the value uft always uses ({default!r})",
            f"remove {key} (uft writes {default!r}) or keep using LLaMA-Factory for this run")])
    ledger.ignore(key, f"uft always uses {default!r}, the value the config has")


def _datasets(names: str, info_path: Path, method: str) -> list[dict[str, Any]]:
    """dataset_info.json entries as uft datasets (path resolved against the info file's folder)."""
    if not info_path.is_file():
        raise SpecError("The config's datasets cannot be found", [Problem(
            str(info_path), "no dataset_info.json here", "pass --dataset-info PATH")])
    info = read_json_file(info_path, "dataset_info.json", "pass --dataset-info PATH")
    if not isinstance(info, dict):
        raise SpecError("The dataset_info.json cannot be read", [Problem(
            str(info_path), "expected a JSON object of dataset entries", "give LLaMA-Factory's dataset_info.json")])
    found = []
    for name in [n.strip() for n in str(names).split(",") if n.strip()]:
        if name not in info:
            raise SpecError("The config names a dataset that is not registered", [Problem(
                f"{info_path} ({name})", "missing from dataset_info.json", "add its entry or fix the name")])
        entry = info[name]
        if not isinstance(entry, dict):
            raise SpecError("This dataset cannot be imported", [Problem(
                f"{info_path} ({name})", "the entry is not a JSON object", "give it file_name (and columns)")])
        fmt = _format(entry, method)
        found.append({**_source(entry, info_path, name), "format": fmt, "columns": _columns(entry, fmt)})
    return found


def _source(entry: dict[str, Any], info_path: Path, name: str) -> dict[str, Any]:
    """A local file (resolved against the info file's folder), or a Hugging Face hub reference."""
    if "file_name" in entry:
        return {"path": str((info_path.parent / entry["file_name"]).resolve())}
    if "hf_hub_url" in entry:
        hub = {"hub": entry["hf_hub_url"], "split": entry.get("split", "train")}
        return {**hub, "subset": entry["subset"]} if entry.get("subset") else hub
    kind = "a ModelScope/Modelers hub" if {"ms_hub_url", "om_hub_url"} & set(entry) else "a loading script"
    raise SpecError("This dataset cannot be imported", [Problem(
        f"{info_path} ({name})", f"points at {kind} dataset; uft reads local files and Hugging Face hub datasets",
        "download it to a local file and register it with file_name (or give its hf_hub_url)")])


def _format(entry: dict[str, Any], method: str) -> str:
    if method == "kto":
        return "unpaired"  # one answer per row with its kto_tag
    if entry.get("ranking"):
        return "preference"
    if method == "pt":
        return "text"
    if entry.get("formatting") == "sharegpt":
        return "messages" if entry.get("tags", {}).get("role_tag") == "role" else "sharegpt"
    return "alpaca"


def _columns(entry: dict[str, Any], fmt: str) -> dict[str, str]:
    """LLaMA-Factory column names as uft's; only those whose file column differs from uft's name."""
    sharegpt_turns = "messages" if entry.get("tags", {}).get("role_tag") == "role" else "conversations"
    canonical = {"text": {"prompt": "text"},
                 "alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
                 "sharegpt": {"messages": "conversations"},
                 "unpaired": {"prompt": "instruction", "query": "input", "response": "completion",
                              "kto_tag": "label", "messages": sharegpt_turns}}.get(fmt, {})
    columns = {}
    for lf_name, file_name in (entry.get("columns") or {}).items():
        ours = canonical.get(lf_name, lf_name)
        if ours != file_name:
            columns[ours] = file_name
    return columns


def _name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem).strip("-.") or "imported"
    return stem[:100]
