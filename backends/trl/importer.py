"""The way back: a trl job as a uft spec. Three kinds of file, told apart by their content:

- trl's CLI YAML (`trl sft|dpo|kto|reward --config x.yaml`): the flat union of trl's ScriptArguments,
  ModelConfig and the trainer's config (the method: `--method`, else sft, as `trl sft --config` reads it);
- a shell script or command line: `trl dpo --config x.yaml --learning_rate ...` (flags override the YAML, as in
  trl), `accelerate launch [options] trl/scripts/sft.py ...`, `python examples/scripts/cpo.py ...`; the method
  is the subcommand's or the script's;
- the config.yaml that uft's own trl translator wrote (see own_job.py).

Names, defaults and value kinds come from arguments.json (dumped from trl by dump_arguments.py; the core never
imports trl), so trl's own defaults are written out explicitly (bf16 on unless fp16, gradient checkpointing on,
3 epochs, ...) and a typo is told from a real argument. accelerate's options say how the job is launched; they are
ignored with that reason, except --mixed_precision where trl's own bf16/fp16 leave it in force.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from unified_ft.data import detect_format
from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, LAUNCH, RESUME, WORKERS, ImportResult, KeyLedger, check_tool, unknown_notes
from unified_ft.shell_args import find_command, scalar
from unified_ft.userfile import load_yaml, read_user_file

from .launch_line import LAUNCH_PATTERN, METHODS, LaunchLine, read_launch_line

ARGUMENTS = json.loads((Path(__file__).parent / "arguments.json").read_text())
READ_HINT = "give trl's config YAML, the shell script (or command line) that runs trl, or uft's trl config.yaml"
#: `--method` values: uft's names, and trl's subcommand names for them.
METHOD_NAMES = {**METHODS, **{m: m for m in ("sft", "dpo", "kto", "rm", "orpo", "cpo")}}

IGNORED = {"output_dir": BOOKKEEPING, "logging_dir": BOOKKEEPING, "overwrite_output_dir": BOOKKEEPING,
           "run_name": BOOKKEEPING, "push_to_hub": BOOKKEEPING, "hub_model_id": BOOKKEEPING,
           "hub_strategy": BOOKKEEPING, "hub_private_repo": BOOKKEEPING, "logging_first_step": BOOKKEEPING,
           "dataloader_num_workers": WORKERS, "dataset_num_proc": WORKERS, "dataset_streaming": WORKERS,
           "streaming": WORKERS,
           "resume_from_checkpoint": RESUME, "ddp_timeout": LAUNCH, "ignore_bias_buffers": LAUNCH,
           "accelerate_config": LAUNCH, "do_train": "uft trains whenever it runs a job",
           "env": "environment variables for the run: set them where you run it",
           "per_device_eval_batch_size": "evaluation batch size: speed only; uft's trl job uses the train batch",
           "eval_steps": "evaluation during training: uft evaluates once after training (on data.eval)",
           "attn_implementation": "the attention kernel (eager, sdpa, flash): speed and memory, the same math; "
                                  "uft loads the model with transformers' default"}
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "sgd": "sgd",
              "adafactor": "adafactor", "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit",
              "paged_adamw_8bit": "paged_adamw_8bit"}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
TRACKERS = ("none", "tensorboard", "wandb")
PRECISIONS = {"bf16": "bf16", "fp16": "fp16", "no": "fp32"}
#: accelerate launch's options that say how many processes train (and where they meet): the spec's distributed.
PROCESSES = {"num_processes": "distributed.processes_per_node", "num_machines": "distributed.nodes",
             "main_process_ip": "distributed.rendezvous.endpoint",
             "main_process_port": "distributed.rendezvous.endpoint",
             "max_restarts": "distributed.rendezvous.max_restarts"}
#: trl arguments the spec has no place for, with what they are. The script's and model's arguments cannot be
#: kept in backend_options.trl either (trl's trainer config would refuse them), so any other one left is refused too.
UNMODELLED = {"lora_modules_to_save": "extra modules trained in full beside LoRA",
              "lora_target_parameters": "LoRA on parameters (MoE experts) rather than modules",
              "model_init_kwargs": "extra from_pretrained arguments",
              "test_split_size": "a held-out share of the dataset mixture (use data.eval_split in the spec)"}


def arguments(method: str) -> tuple[dict[str, Any], dict[str, str]]:
    """trl's CLI arguments for a method's trainer: {name: default} and {name: kind}."""
    trainer = "cpo" if method == "simpo" else method
    kinds = ARGUMENTS["kinds"]
    defaults = {**ARGUMENTS["script"], **ARGUMENTS["model"], **ARGUMENTS["dataset_mixture"],
                **ARGUMENTS["trainers"][trainer]}
    return defaults, {**kinds["script"], **kinds["model"], **kinds["dataset_mixture"], **kinds["trainers"][trainer]}


def import_trl(path: str | Path, method: str | None = None) -> ImportResult:
    """A trl config YAML, trl launch script or uft's own trl config.yaml as a spec (see the module docstring)."""
    path = Path(path)
    text = read_user_file(path, "trl config", READ_HINT)
    native = _yaml_mapping(path, text)
    if native is not None and _is_uft_job(native):
        from .own_job import import_uft_job

        if method is not None and _method_option(method, path) != native["method"]:
            raise SpecError("--method contradicts the job", [Problem(
                f"{path} (method)", f"uft's trl job is for {native['method']}, --method says {method}",
                "drop --method")])
        return import_uft_job(path, text, native)
    chosen, args, line = native_arguments(path, method, text, native)
    notes = [] if native is None or method else [
        f"{path.name} alone does not say the method: imported as sft, as `trl sft --config` reads it (give "
        "--method dpo|kto|reward|orpo|cpo for another)"]
    return build_spec(path, chosen, args, line, notes)


def native_arguments(path: Path, method: str | None = None, text: str | None = None,
                     native: dict[str, Any] | None = None) -> tuple[str, dict[str, Any], LaunchLine | None]:
    """(method, trl's arguments as trl reads them, the launch line or None for a config YAML) of a trl file."""
    if text is None:
        text = read_user_file(path, "trl config", READ_HINT)
        native = _yaml_mapping(path, text)
    if native is not None:
        chosen = _method_option(method, path) or "sft"
        check_tool(native, "trl", str(path))
        return chosen, _typed(native, chosen, path), None
    line = read_launch_line(path, text, ARGUMENTS["accelerate"])
    if method is not None and _method_option(method, path) != line.method:
        raise SpecError("--method contradicts the command", [Problem(
            line.where, f"the command runs {line.method}, --method says {method}", "drop --method")])
    return line.method, _command_args(path, line), line


def _yaml_mapping(path: Path, text: str) -> dict[str, Any] | None:
    """The file as a YAML mapping, or None when it is a shell script or command line (told by content, whatever
    its suffix)."""
    try:
        data = load_yaml(text, str(path), "trl config").data
    except SpecError:
        if path.suffix in (".yaml", ".yml"):
            raise
        return None
    if isinstance(data, dict) and data:
        return data
    if find_command(text, LAUNCH_PATTERN) is not None:
        return None
    raise SpecError(f"{path} is not a trl config", [Problem(
        str(path), "expected a mapping of keys or a trl command line" if data else "the file is empty",
        "give trl's CLI YAML (model_name_or_path, dataset_name, ...) or the command that runs trl")])


def _is_uft_job(native: dict[str, Any]) -> bool:
    """uft's trl translator writes method, model, trainer and peft sections (and a comment header saying so)."""
    return isinstance(native.get("trainer"), dict) and isinstance(native.get("model"), dict) and "method" in native


def _method_option(method: str | None, path: Path) -> str | None:
    if method is None:
        return None
    if method not in METHOD_NAMES:
        raise SpecError("Unknown --method for a trl config", [Problem(
            str(path), f"--method {method!r}", "use sft, dpo, kto, reward (rm), orpo or cpo")])
    return METHOD_NAMES[method]


def _command_args(path: Path, line: LaunchLine) -> dict[str, Any]:
    """The command's trl arguments as trl reads them: a `--config` YAML first, then the flags over it."""
    words = dict(line.words)
    base: dict[str, Any] = {}
    if "config" in words:
        config = path.parent / " ".join(words.pop("config"))
        text = read_user_file(config, "trl config", "the command's --config file must be beside the script")
        data = load_yaml(text, str(config), "trl config").data
        if not isinstance(data, dict):
            raise SpecError(f"{config} is not a trl config", [Problem(
                str(config), "expected a mapping of keys", "give trl's CLI YAML as --config")])
        base = _typed(data, line.method, config)
    flags = {}
    defaults, kinds = arguments(line.method)
    for key, values in words.items():
        name, value = _flag(key, values, defaults, kinds)
        flags[name] = value
    return {**base, **flags}


def _flag(key: str, values: list[str], defaults: dict[str, Any], kinds: dict[str, str]) -> tuple[str, Any]:
    """One `--key words...` as HfArgumentParser reads it: a bare bool flag is true, `--no_x` turns off a bool
    that defaults to true, a list takes every word, a number is typed by trl's field."""
    if key.startswith("no_") and kinds.get(key[3:]) == "bool" and defaults.get(key[3:]) is True and not values:
        return key[3:], False
    kind = kinds.get(key) or ("bool" if ARGUMENTS["accelerate"].get(key) is False else "")
    if kind == "bool":
        return key, True if not values else str(values[0]).lower() in ("true", "1", "yes", "y")
    if kind == "list":
        return key, list(values)
    if not values:
        return key, True
    text = " ".join(values)
    return key, _typed_value(kind, text)


def _typed_value(kind: str, value: Any) -> Any:
    if isinstance(value, str) and kind in ("int", "float"):
        try:
            number = float(value)
        except ValueError:
            return value  # trl's parser refuses it; the spec check names it
        return int(number) if kind == "int" and number.is_integer() else number
    if kind == "str" or not isinstance(value, str):
        return value
    return scalar(value)


def _typed(native: dict[str, Any], method: str, path: Path) -> dict[str, Any]:
    """A config YAML's values as trl's parser reads them (PyYAML reads `1e-4` as text; argparse types it)."""
    _, kinds = arguments(method)
    return {k: _typed_value(kinds.get(k, "str"), v) if isinstance(v, str) else v for k, v in native.items()}


def build_spec(path: Path, method: str, args: dict[str, Any], line: LaunchLine | None, notes: list[str]
               ) -> ImportResult:
    """The spec for trl arguments (merged config and flags) run as `method`."""
    defaults, _ = arguments(method)
    ledger = KeyLedger(args, "trl", known=set(defaults), defaults=defaults)
    out = ledger.result
    out.notes += notes
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)
    for key in sorted(set(args) - set(defaults)):  # trl passes options it does not know on to accelerate
        if key in ARGUMENTS["accelerate"] and key not in ("mixed_precision", *PROCESSES):
            ledger.ignore(key, LAUNCH + " (trl passes it to accelerate launch)")
    spec_method = _method(method, args, ledger)
    model = _model(ledger)
    adapter = _adapter(method, ledger, out)
    data = _data(path, method, args, ledger, out)
    training = _training(args, ledger, line, out)
    _refuse_unmodelled(method, ledger)
    weights = ledger.get("dtype")
    if training["precision"] != "fp32" and weights in ("float32", None):
        out.notes.append(f"trl loads the weights in float32 (dtype) and trains with {training['precision']} "
                         f"autocast; uft's training.precision {training['precision']} loads them in that dtype on "
                         "every backend (half the memory, half-precision master weights)")
    spec = {"name": _name(path), "model": model, "template": "model", "method": spec_method, "adapter": adapter,
            "data": data, "training": training}
    distributed = distributed_section(line, ledger, training)
    if distributed:
        spec["distributed"] = distributed
    _launcher(line, ledger)
    result = ledger.finish(spec)
    result.notes += unknown_notes(result)
    return result


def _refuse_unmodelled(method: str, ledger: KeyLedger) -> None:
    """Script, model and mixture arguments left over: kept, trl's trainer config would refuse them."""
    trainer = set(ARGUMENTS["trainers"]["cpo" if method == "simpo" else method])
    others = (set(ARGUMENTS["script"]) | set(ARGUMENTS["model"]) | set(ARGUMENTS["dataset_mixture"])) - trainer
    left = [key for key in ledger.leftovers() if key in others and ledger.has(key)]
    if left:
        raise SpecError("This trl config cannot be imported", [Problem(
            key, f"{UNMODELLED.get(key, 'a trl script or model argument')} has no place in uft's spec",
            f"remove {key}, or write the job as a uft spec by hand") for key in left])


def _method(method: str, args: dict[str, Any], ledger: KeyLedger) -> dict[str, Any]:
    take = ledger.take
    spec_method: dict[str, Any] = {"name": method}
    if method == "cpo" and args.get("loss_type") == "simpo":
        spec_method["name"] = "simpo"
        take("loss_type", "method.name")
        spec_method.update(gamma=take("simpo_gamma", "method.gamma"))
    elif method == "cpo":
        loss = take("loss_type", "method.loss_type")
        if loss != "sigmoid":
            raise SpecError("This trl config cannot be imported", [Problem(
                "loss_type", f"CPO loss {loss!r} has no uft method", "uft imports CPO's sigmoid loss and simpo")])
    if method in ("dpo", "kto", "orpo", "cpo"):
        spec_method["beta"] = take("beta", "method.beta")
    if method == "cpo":
        spec_method["nll_weight"] = take("cpo_alpha", "method.nll_weight")
    if method in ("dpo", "kto"):
        loss = take("loss_type", "method.loss_type")
        loss = loss[0] if isinstance(loss, list) and len(loss) == 1 else loss
        if isinstance(loss, list):
            raise SpecError("This trl config cannot be imported", [Problem(
                "loss_type", f"a mixture of DPO losses {loss}", "uft trains one DPO loss; give one loss_type")])
        if loss not in ("sigmoid", "kto"):
            spec_method["loss_type"] = loss
    return spec_method


def _model(ledger: KeyLedger) -> dict[str, Any]:
    take = ledger.take
    model: dict[str, Any] = {"path": take("model_name_or_path", "model.path"),
                             "trust_remote_code": bool(take("trust_remote_code", "model.trust_remote_code"))}
    if not model["path"]:
        raise SpecError("This trl config names no model", [Problem(
            "model_name_or_path", "missing", "add model_name_or_path (a hub id or a local folder)")])
    revision = take("model_revision", "model.revision")
    if revision not in (None, "main"):
        model["revision"] = revision
    ledger.ignore("dtype", "the weights' dtype follows training.precision in uft (bf16: bfloat16 weights)")
    return model


def _adapter(method: str, ledger: KeyLedger, out: ImportResult) -> dict[str, Any]:
    take = ledger.take
    task = "SEQ_CLS" if method == "rm" else "CAUSAL_LM"
    if not take("use_peft", "adapter.type"):
        if ledger.get("load_in_4bit") or ledger.get("load_in_8bit"):
            raise SpecError("This trl config cannot be imported", [Problem(
                "load_in_4bit", "a quantized base without use_peft trains nothing trl can save",
                "add use_peft (QLoRA)")])
        _ignore_unused_lora(ledger)
        return {"type": "full"}
    target = take("lora_target_modules", "adapter.target_modules")
    if isinstance(target, list) and len(target) == 1 and target[0] == "all-linear":
        target = "all-linear"  # trl's ModelConfig turns a one-word list into the word
    adapter = {"type": "dora" if take("use_dora", "adapter.type") else "lora",
               "r": take("lora_r", "adapter.r"), "alpha": take("lora_alpha", "adapter.alpha"),
               "dropout": take("lora_dropout", "adapter.dropout"),
               "target_modules": target if target else "all-linear",
               "rslora": bool(take("use_rslora", "adapter.rslora"))}
    if not target:
        out.notes.append("no lora_target_modules: peft uses the model's own default modules (often q_proj and "
                         "v_proj); the spec says all-linear, set adapter.target_modules to match exactly")
    if not ledger.has("lora_task_type") or ledger.get("lora_task_type") == task:
        take("lora_task_type", f"method.name ({task})")
    else:
        raise SpecError("This trl config cannot be imported", [Problem(
            "lora_task_type", f"{ledger.get('lora_task_type')!r} does not fit method {method}",
            f"use {task} (or drop it)")])
    bits = 4 if take("load_in_4bit", "adapter.bits") else 8 if take("load_in_8bit", "adapter.bits") else None
    if bits:
        adapter.update(type="qlora", bits=bits)
        if take("bnb_4bit_quant_type", "adapter.bits (nf4)") != "nf4":
            raise SpecError("This trl config cannot be imported", [Problem(
                "bnb_4bit_quant_type", f"{ledger.get('bnb_4bit_quant_type')!r}", "uft's QLoRA is nf4: use nf4")])
        ledger.ignore(["use_bnb_nested_quant", "bnb_4bit_quant_storage"], "uft's QLoRA writes nf4 with double "
                      "quantization on every backend")
        if not ledger.get("use_bnb_nested_quant"):
            out.notes.append("trl quantizes without double quantization here (use_bnb_nested_quant false); uft's "
                             "QLoRA uses it on every backend (a little less memory, the same nf4 weights)")
    else:
        _ignore_unused_lora(ledger, quantization_only=True)
    return adapter


def _ignore_unused_lora(ledger: KeyLedger, quantization_only: bool = False) -> None:
    keys = ["bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_quant_storage", "load_in_4bit", "load_in_8bit"]
    if not quantization_only:
        keys += ["lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_dora", "use_rslora",
                 "lora_task_type"]
    ledger.ignore(keys, "LoRA/quantization settings have no effect without use_peft" if not quantization_only
                  else "quantization settings have no effect without load_in_4bit/load_in_8bit")


def _data(path: Path, method: str, args: dict[str, Any], ledger: KeyLedger, out: ImportResult) -> dict[str, Any]:
    take = ledger.take
    fmt = {"sft": "auto", "kto": "unpaired"}.get(method, "preference")
    train = _mixture(path, fmt, ledger) if ledger.has("datasets") and ledger.get("datasets") else None
    if train is None:
        ledger.ignore("datasets", "empty: dataset_name is read instead")
        name = take("dataset_name", "data.train")
        if not name:
            raise SpecError("This trl config names no dataset", [Problem(
                f"{path} (dataset_name)", "missing", "add dataset_name (a hub id or a local file)")])
        train = [_dataset(path, name, fmt, ledger.get("dataset_config"),
                          take("dataset_train_split", "data.train[0].split"))]
        take("dataset_config", "data.train[0].subset")
    data: dict[str, Any] = {"train": train, "max_length": take("max_length", "data.max_length")}
    if method == "sft":
        data["packing"] = bool(take("packing", "data.packing"))
        data["train_on_prompt"] = _train_on_prompt(ledger, out)
        ledger.ignore("dataset_text_field", "the column of plain-text rows: uft's data step writes its own rows")
    if take("eval_strategy", "data.eval") not in (None, "no"):
        split = take("dataset_test_split", "data.eval.split")
        data["eval"] = {**train[0], "split": split} if "hub" in train[0] else None
        if data["eval"] is None:
            raise SpecError("This trl config cannot be imported", [Problem(
                "eval_strategy", "evaluation on a test split of a local file", "give data.eval in the spec")])
        out.notes.append(f"eval_strategy {args['eval_strategy']}: trl evaluates on the {split} split during "
                         "training; uft evaluates once after training, on the same split (data.eval)")
    else:
        ledger.ignore("dataset_test_split", "no evaluation (eval_strategy no)")
    return data


def _train_on_prompt(ledger: KeyLedger, out: ImportResult) -> bool:
    """trl's SFT trains on every token of a conversation unless assistant_only_loss (and on the completion only
    of prompt-completion rows unless completion_only_loss is false): uft's data.train_on_prompt."""
    assistant_only = ledger.take("assistant_only_loss", "data.train_on_prompt")
    completion_only = ledger.take("completion_only_loss", "data.train_on_prompt")
    if assistant_only or completion_only:
        return False
    if completion_only is None:
        out.notes.append("trl's SFT puts loss on every token of a conversation by default (assistant_only_loss "
                         "false), so the spec says data.train_on_prompt: true; set it false to train on the "
                         "answers only (trl's assistant_only_loss)")
    return True


def _mixture(path: Path, fmt: str, ledger: KeyLedger) -> list[dict[str, Any]]:
    """trl's `datasets:` mixture (a list of {path, name, split, ...}) as data.train."""
    items = ledger.get("datasets")
    if not isinstance(items, list):
        raise SpecError("This trl config cannot be imported", [Problem(
            "datasets", "expected a list of {path: ...}", "write datasets as a list of mappings")])
    known = set(ARGUMENTS["dataset"])
    train = []
    for index, item in enumerate(items):
        child = ledger.item("datasets", index, item if isinstance(item, dict) else {"path": item}, known=known)
        for key in ("data_dir", "data_files", "columns", "fraction"):
            if child.has(key):
                raise SpecError("This trl config cannot be imported", [Problem(
                    f"datasets[{index}].{key}", "has no uft equivalent yet", "give the file itself as path")])
        name = child.take("path", f"data.train[{index}]")
        train.append(_dataset(path, name, fmt, child.take("name", f"data.train[{index}].subset"),
                              child.take("split", f"data.train[{index}].split", "train")))
    ledger.ignore("dataset_name", "datasets is given: trl reads the mixture instead")
    return train


def _dataset(path: Path, name: str, fmt: str, subset: str | None, split: str | None) -> dict[str, Any]:
    local = path.parent / str(name)
    if local.is_file():
        return {"path": str(local.resolve()), "format": detect_format(local) if fmt == "auto" else fmt}
    return {"hub": str(name), "split": split or "train", **({"subset": subset} if subset else {}), "format": fmt}


def _training(args: dict[str, Any], ledger: KeyLedger, line: LaunchLine | None, out: ImportResult
              ) -> dict[str, Any]:
    take = ledger.take
    max_steps = take("max_steps", "training.max_steps")
    if max_steps and max_steps > 0:
        ledger.ignore("num_train_epochs", "max_steps is set: transformers stops there and ignores the epochs")
        length: dict[str, Any] = {"max_steps": max_steps}
    else:
        length = {"epochs": float(take("num_train_epochs", "training.epochs"))}
    scheduler = take("lr_scheduler_type", "training.lr_scheduler")
    optimizer = take("optim", "training.optimizer")
    report = take("report_to", "training.report_to")
    report = [report] if isinstance(report, str) else list(report or ["none"])
    for key, value, known in (("lr_scheduler_type", scheduler, SCHEDULERS), ("optim", optimizer, OPTIMIZERS),
                              ("report_to", report, TRACKERS)):
        bad = [v for v in (value if isinstance(value, list) else [value]) if v not in known]
        if bad:
            raise SpecError("This trl config cannot be imported", [Problem(
                key, f"{', '.join(map(str, bad))} has no uft equivalent",
                f"use one of {', '.join(known)} (uft maps those), or remove {key}")])
    seed = take("seed", "training.seed")
    if ledger.get("data_seed") not in (None, seed):
        raise SpecError("This trl config cannot be imported", [Problem(
            "data_seed", f"{ledger.get('data_seed')} differs from seed {seed}",
            "uft orders the data by training.seed: drop data_seed or give seed the same value")])
    ledger.ignore("data_seed", "the same as seed: uft orders the data by training.seed")
    training = {
        **length,
        "learning_rate": take("learning_rate", "training.learning_rate"),
        "lr_scheduler": scheduler,
        "warmup_ratio": _warmup(args, ledger, max_steps),
        "per_device_batch_size": take("per_device_train_batch_size", "training.per_device_batch_size"),
        "gradient_accumulation_steps": take("gradient_accumulation_steps", "training.gradient_accumulation_steps"),
        "gradient_checkpointing": bool(take("gradient_checkpointing", "training.gradient_checkpointing")),
        "precision": _precision(ledger, line, out),
        "optimizer": OPTIMIZERS[optimizer],
        "weight_decay": take("weight_decay", "training.weight_decay"),
        "max_grad_norm": take("max_grad_norm", "training.max_grad_norm"),
        "seed": seed,
        "logging_steps": _whole("logging_steps", take("logging_steps", "training.logging_steps")),
        "report_to": report,
    }
    strategy = take("save_strategy", "training.save_steps")
    if strategy == "steps" and ledger.has("save_steps"):
        training["save_steps"] = _whole("save_steps", take("save_steps", "training.save_steps"))
    elif strategy in ("steps", "no"):
        ledger.ignore("save_steps", "no intermediate checkpoints: uft saves the final model")
        if strategy == "steps":
            out.notes.append(f"trl saves a checkpoint every {ledger.get('save_steps')} steps by default; the spec "
                             "saves the final model only (set training.save_steps to keep checkpoints)")
    else:
        raise SpecError("This trl config cannot be imported", [Problem(
            "save_strategy", f"{strategy!r}", "uft saves every N steps (training.save_steps) or at the end")])
    return training


def _whole(key: str, value: Any) -> int:
    """transformers reads a step count below 1 as a share of the run; uft counts steps."""
    if isinstance(value, float) and not value.is_integer():
        raise SpecError("This trl config cannot be imported", [Problem(
            key, f"{value} is a share of the training steps", f"give {key} as a whole number of steps")])
    return int(value)


def _warmup(args: dict[str, Any], ledger: KeyLedger, max_steps: int | None) -> float:
    """warmup_ratio, or warmup_steps (below 1 a ratio in transformers 5; whole steps as a ratio of max_steps)."""
    ratio = ledger.take("warmup_ratio", "training.warmup_ratio")
    steps = ledger.take("warmup_steps", "training.warmup_ratio")
    if ratio is not None and ledger.has("warmup_ratio") and not ledger.has("warmup_steps"):
        return float(ratio)
    if not steps:
        return float(ratio or 0.0)
    if steps < 1:
        return float(steps)
    share = steps / max_steps if max_steps and max_steps > 0 else None
    if share is None or share >= 1 or math.ceil(share * max_steps) != steps:
        raise SpecError("This trl config cannot be imported", [Problem(
            "warmup_steps", f"{steps} warmup steps over a run whose length is counted in epochs",
            "uft models warmup as a share of the steps: give warmup_ratio (or max_steps)")])
    return share


def _precision(ledger: KeyLedger, line: LaunchLine | None, out: ImportResult) -> str:
    """trl's bf16 defaults to `not fp16`; accelerate's --mixed_precision (before the script, or passed on by the
    trl CLI) applies when neither is on (TrainingArguments reads it from the launcher then)."""
    fp16 = ledger.take("fp16", "training.precision")
    bf16 = ledger.take("bf16", "training.precision")
    bf16 = (not fp16) if bf16 is None else bf16
    launcher = (line.launcher_options if line else {}).get("mixed_precision")
    value = (launcher or [None])[0] if launcher is not None else ledger.get("mixed_precision")
    row = "accelerate --mixed_precision"
    if fp16 or bf16:
        reason = "trl's own bf16/fp16 setting wins over the launcher's (TrainingArguments)"
        if launcher is not None:
            out.ignored[row] = reason
        ledger.ignore("mixed_precision", reason)
        return "fp16" if fp16 else "bf16"
    if value is None:
        return "fp32"
    if str(value) not in PRECISIONS:
        raise SpecError("This trl command cannot be imported", [Problem(
            "--mixed_precision", f"{value!r} has no uft precision", "use bf16, fp16 or no")])
    if launcher is not None:
        out.mapped.append((row, "training.precision"))
    else:
        ledger.take("mixed_precision", "training.precision")
    return PRECISIONS[str(value)]


def distributed_section(line: LaunchLine | None, ledger: KeyLedger, training: dict[str, Any]) -> dict[str, Any] | None:
    """accelerate's process count (before the script, or passed on by the trl CLI) as the spec's distributed
    section: the effective batch is per-device batch x accumulation x processes, so it must survive the import."""
    launcher = line.launcher_options if line else {}
    found: dict[str, str] = {}
    for key, target in PROCESSES.items():
        if key in launcher and launcher[key]:
            found[key] = launcher[key][0]
            ledger.result.mapped.append((f"accelerate --{key}", target))
        elif ledger.has(key) and key not in ledger.defaults:
            found[key] = str(ledger.take(key, target))
    if not found:
        return None
    where = "accelerate launch" if launcher else "trl (passed to accelerate launch)"
    try:
        counts = {key: int(found.get(key, 1)) for key in ("num_processes", "num_machines", "max_restarts")}
    except ValueError:
        raise SpecError("This trl command cannot be imported", [Problem(
            where, f"a process count that is not a number ({found})", "give --num_processes N as a number")]) from None
    processes, machines = counts["num_processes"], counts["num_machines"]
    if processes % machines:
        raise SpecError("This trl command cannot be imported", [Problem(
            "--num_processes", f"{processes} processes do not split over {machines} machines",
            "give a multiple of --num_machines (accelerate's --num_processes counts every machine's processes)")])
    distributed: dict[str, Any] = {"nodes": machines, "processes_per_node": processes // machines}
    rendezvous: dict[str, Any] = {"max_restarts": counts["max_restarts"]} if "max_restarts" in found else {}
    if machines > 1 or ("main_process_ip" in found and found.get("main_process_port", "0") != "0"):
        if "main_process_ip" not in found:
            raise SpecError("This trl command cannot be imported", [Problem(
                "--num_machines", f"{machines} machines with no --main_process_ip",
                "add --main_process_ip and --main_process_port (node 0's address)")])
        rendezvous["endpoint"] = f"{found['main_process_ip']}:{found.get('main_process_port', '29500')}"
    if rendezvous:
        distributed["rendezvous"] = rendezvous
    batch = training["per_device_batch_size"] * training["gradient_accumulation_steps"] * processes
    ledger.result.notes.append(
        f"{processes} processes ({where}): trl trains data parallel, an effective batch of {batch}; the spec says "
        f"distributed.processes_per_node {processes // machines} (ddp) so it trains the same way where a backend "
        "runs several processes")
    return distributed


def _launcher(line: LaunchLine | None, ledger: KeyLedger) -> None:
    """accelerate's own options and the command's environment, in the ledger with why they do not matter."""
    out = ledger.result
    if ledger.has("accelerate_config"):
        out.notes.append(f"accelerate_config {ledger.get('accelerate_config')} is not read: its process count goes "
                         "into distributed.processes_per_node by hand, its DeepSpeed/FSDP sharding into "
                         "distributed.strategy (uft's launcher starts the processes)")
    if line is None:
        return
    for key, value in line.launcher_options.items():
        name = f"accelerate --{key}"
        if key == "mixed_precision" or key in PROCESSES:
            continue  # read with the precision, or as the distributed section
        out.ignored[name] = LAUNCH
        if key == "config_file":
            out.notes.append(f"accelerate config {' '.join(value)} is not read: its process count (num_processes) "
                             "goes into distributed.processes_per_node by hand, its DeepSpeed/FSDP sharding into "
                             "distributed.strategy (uft's launcher starts the processes)")
    for key in line.env:
        out.ignored[f"env {key}"] = "environment for the run: set it where you run the job"


def _name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem).strip("-.") or "imported"
    return stem[:100]


__all__ = ["ARGUMENTS", "arguments", "distributed_section", "import_trl", "native_arguments"]
