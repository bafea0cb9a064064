"""uft's own trl job back as a spec: the config.yaml that the trl translator (backends/trl/__init__.py) wrote, with
the data files beside it.

Every setting the translator writes is read back into the spec key it came from, so spec -> translate trl ->
import gives the same portable settings and backend_options. What the translator has already done to the data
stays done: the rows beside the config are uft's prepared rows (in the seeded order, any template.system already
in them), so the imported spec reads them as they are (data.shuffle false) rather than doing it twice.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from unified_ft.data import detect_format
from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, ImportResult, KeyLedger
from unified_ft.shell_args import option_words
from unified_ft.spec import TEMPLATE_NAMES
from unified_ft.templates import JINJA_TEMPLATES

from .importer import ARGUMENTS, OPTIMIZERS, arguments, distributed_section
from .launch_line import LaunchLine, script_index

_HEADER = re.compile(r"^# trl job written by uft for spec '([^']+)'\.", re.MULTILINE)
_RUN = re.compile(r"^# Run it with trl alone: (accelerate launch .*)$", re.MULTILINE)
SECTIONS = ("method", "model", "chat_template", "data", "peft", "loraplus", "freeze", "quantization",
            "passthrough", "trainer")
TRANSLATOR = "written by uft's trl translator, which derives it again from the spec"


def import_uft_job(path: Path, text: str, native: dict[str, Any]) -> ImportResult:
    """The spec a uft trl config.yaml was written from (see the module docstring)."""
    ledger = KeyLedger(native, "trl", known=SECTIONS)
    out = ledger.result
    method = ledger.take("method", "method.name")
    trainer_defaults, _ = arguments(method if method not in ("pt",) else "sft")
    passthrough = list(native.get("passthrough") or [])
    ledger.ignore("passthrough", "the list of backend_options.trl keys (read with the trainer section)")
    trainer = ledger.section("trainer", known=trainer_defaults)
    header = _HEADER.search(text)
    spec: dict[str, Any] = {
        "name": header.group(1) if header else path.parent.name or "imported",
        "model": _model(ledger.section("model")),
        "template": _template(ledger),
        "method": _method(method, trainer),
        "adapter": _adapter(ledger),
        "data": _data(path, ledger.section("data"), trainer, method),
        "training": _training(trainer),
    }
    distributed = _distributed(path, text, method, ledger, spec["training"])
    if distributed:
        spec["distributed"] = distributed
    for key in passthrough:
        trainer.keep(key)
    result = ledger.finish(spec)
    options = spec.get("backend_options", {}).get("trl", {})
    if isinstance(options.get("trainer"), dict):  # trl's trainer config keys, as backend_options.trl holds them
        spec["backend_options"]["trl"] = {**options.pop("trainer"), **options}
        result.kept = {key.removeprefix("trainer."): value for key, value in result.kept.items()}
    out.notes.append(f"{path.name} is uft's own trl job: the rows beside it are uft's prepared data (already in "
                     "the seeded order, with any system prompt in them), read as they are (data.shuffle false)")
    return result


def _distributed(path: Path, text: str, method: str, ledger: KeyLedger, training: dict[str, Any]
                 ) -> dict[str, Any] | None:
    """The process count from the command in the header (`accelerate launch --num_processes N ...`), which
    config.yaml itself does not hold."""
    found = _RUN.search(text)
    if found is None:
        return None
    words = shlex.split(found.group(1))[2:]
    split = script_index(words, ARGUMENTS["accelerate"]) or len(words)
    options, _ = option_words(words[:split], lambda key: ARGUMENTS["accelerate"].get(key, True))
    if options.get("main_process_port") == ["0"]:  # "any free port" on one machine: no endpoint in the spec
        options.pop("main_process_ip", None)
        options.pop("main_process_port")
    line = LaunchLine(method, {}, "accelerate", options, where=f"{path} (header)")
    return distributed_section(line, ledger, training)


def _model(model: KeyLedger) -> dict[str, Any]:
    spec = {"path": model.take("name_or_path", "model.path"),
            "trust_remote_code": bool(model.take("trust_remote_code", "model.trust_remote_code"))}
    for key in ("gguf_file", "revision"):
        value = model.take(key, f"model.{key}")
        if value is not None:
            spec[key] = value
    model.ignore(["dtype", "head"], TRANSLATOR + " (dtype from training.precision, head from the method)")
    return spec


def _template(ledger: KeyLedger) -> Any:
    text = ledger.take("chat_template", "template")
    if text is None:
        return "model"
    name = next((n for n in TEMPLATE_NAMES if JINJA_TEMPLATES.get(n) == text), None)
    return name if name else {"name": "jinja", "jinja": text}


def _method(method: str, trainer: KeyLedger) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": method}
    if trainer.has("beta"):
        spec["beta"] = trainer.take("beta", "method.beta")
    if method in ("simpo", "cpo"):
        trainer.take("loss_type", "method.name")
        spec["nll_weight"] = trainer.take("cpo_alpha", "method.nll_weight")
        if method == "simpo":
            spec["gamma"] = trainer.take("simpo_gamma", "method.gamma")
    elif trainer.has("loss_type"):
        spec["loss_type"] = trainer.take("loss_type", "method.loss_type")
    return spec


def _adapter(ledger: KeyLedger) -> dict[str, Any]:
    peft, freeze = ledger.section("peft"), ledger.section("freeze")
    quantization, loraplus = ledger.section("quantization"), ledger.section("loraplus")
    if freeze.has("trainable_layers"):
        return {"type": "freeze", "trainable_layers": freeze.take("trainable_layers", "adapter.trainable_layers")}
    kind = peft.take("type", "adapter.type")
    peft.ignore(["task_type", "bias"], TRANSLATOR + " (task type from the method; bias none)")
    if kind is None:
        return {"type": "full"}
    if kind in ("prefix", "prompt", "p_tuning"):
        return {"type": kind, "num_virtual_tokens": peft.take("num_virtual_tokens", "adapter.num_virtual_tokens")}
    if kind != "lora":
        raise SpecError("This uft trl job cannot be imported", [Problem(
            "peft.type", f"{kind!r} is not an adapter uft's trl translator writes", "translate the spec again")])
    adapter: dict[str, Any] = {
        "type": "dora" if peft.take("use_dora", "adapter.type") else "lora", "r": peft.take("r", "adapter.r"),
        "alpha": peft.take("lora_alpha", "adapter.alpha"), "dropout": peft.take("lora_dropout", "adapter.dropout"),
        "target_modules": peft.take("target_modules", "adapter.target_modules"),
        "rslora": peft.take("use_rslora", "adapter.rslora")}
    init = str(peft.take("init_lora_weights", "adapter.init"))
    if init.startswith("pissa"):
        adapter.update(init="pissa", pissa_iters=int(init.rpartition("_")[2]) if "niter" in init else 0)
    if quantization.has("bits"):
        adapter.update(type="qlora", bits=quantization.take("bits", "adapter.bits"))
    if loraplus.has("lr_ratio"):
        adapter["loraplus_lr_ratio"] = loraplus.take("lr_ratio", "adapter.loraplus_lr_ratio")
        loraplus.ignore("lr_embedding", TRANSLATOR + " (LoRA+'s embedding learning rate, the same on every backend)")
    return adapter


def _data(path: Path, data: KeyLedger, trainer: KeyLedger, method: str) -> dict[str, Any]:
    files = {}
    for key in ("train", "eval"):
        name = data.take(key, f"data.{key}")
        if name is None:
            continue
        file = path.parent / str(name)
        if not file.is_file():
            raise SpecError("This uft trl job cannot be imported", [Problem(
                f"data.{key}", f"{file} is missing", "import the folder uft translated, with its data files")])
        files[key] = {"path": str(file.resolve()), "format": detect_format(file)}
    spec: dict[str, Any] = {"train": [files["train"]], "max_length": trainer.take("max_length", "data.max_length"),
                            "train_on_prompt": data.take("train_on_prompt", "data.train_on_prompt"),
                            "shuffle": False}
    if "eval" in files:
        spec["eval"] = files["eval"]
    if method in ("sft", "pt"):
        spec["packing"] = trainer.take("packing", "data.packing")
    trainer.ignore(["dataset_text_field", "completion_only_loss"], TRANSLATOR + " (plain-text rows for method pt)")
    return spec


def _training(trainer: KeyLedger) -> dict[str, Any]:
    take = trainer.take
    max_steps = take("max_steps", "training.max_steps")
    epochs = take("num_train_epochs", "training.epochs")
    report = take("report_to", "training.report_to")
    optimizer = take("optim", "training.optimizer")
    bf16, fp16 = take("bf16", "training.precision"), take("fp16", "training.precision")
    training = {
        **({"max_steps": max_steps} if max_steps and max_steps > 0 else {"epochs": epochs}),
        "learning_rate": take("learning_rate", "training.learning_rate"),
        "lr_scheduler": take("lr_scheduler_type", "training.lr_scheduler"),
        "warmup_ratio": take("warmup_steps", "training.warmup_ratio"),  # below 1: a ratio (transformers 5)
        "per_device_batch_size": take("per_device_train_batch_size", "training.per_device_batch_size"),
        "gradient_accumulation_steps": take("gradient_accumulation_steps", "training.gradient_accumulation_steps"),
        "gradient_checkpointing": take("gradient_checkpointing", "training.gradient_checkpointing"),
        "precision": "bf16" if bf16 else "fp16" if fp16 else "fp32",
        "optimizer": OPTIMIZERS.get(optimizer, optimizer),
        "weight_decay": take("weight_decay", "training.weight_decay"),
        "max_grad_norm": take("max_grad_norm", "training.max_grad_norm"),
        "seed": take("seed", "training.seed"),
        "logging_steps": take("logging_steps", "training.logging_steps"),
        "report_to": ["none"] if report in ("none", None) else list(report),
    }
    if take("save_strategy", "training.save_steps") == "steps":
        training["save_steps"] = take("save_steps", "training.save_steps")
    trainer.ignore("output_dir", BOOKKEEPING)
    trainer.ignore("data_seed", TRANSLATOR + " (the same as training.seed)")
    trainer.ignore("per_device_eval_batch_size", TRANSLATOR + " (the train batch size)")
    trainer.ignore("eval_strategy", TRANSLATOR + " (no evaluation during training: uft evaluates after it)")
    return training
