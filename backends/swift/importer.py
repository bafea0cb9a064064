"""The way back: a `swift sft|pt|rlhf` command (a shell script, swift's args.json, or a swift config file)
as a uft spec.

ms-swift's own defaults are written out explicitly (lora_alpha 32, lora_dropout 0.05, weight_decay 0.1,
accumulation ceil(16 / batch / GPUs), 3 epochs, ...), so the imported spec trains the same way on any
backend. Arguments the spec does not model are kept verbatim under `backend_options.swift`; an argument
swift does not know is reported (with a did-you-mean) and kept visible too; nothing is dropped.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

from unified_ft.data import detect_format
from unified_ft.errors import Problem, SpecError
from unified_ft.migrate import BOOKKEEPING, LAUNCH, RESUME, WORKERS, ImportResult, KeyLedger, unknown_notes
from unified_ft.shell_args import env_prefix, find_command, option_words, scalar, split_words, until_end
from unified_ft.spec import DataSpec
from unified_ft.templates import JINJA_TEMPLATES, model_family, template_for_model
from unified_ft.userfile import load_yaml, read_json_file, read_user_file

from . import ADAM, SAVE_AT_END, TEMPLATES, TORCH_DTYPES, weight_dtype

HERE = Path(__file__).resolve().parent
READ_HINT = "give the .sh script with the swift command, swift's args.json or its config file"
KNOWN = json.loads((HERE / "arguments.json").read_text(encoding="utf-8"))
DEFAULTS: dict[str, Any] = KNOWN["arguments"]
#: What a renamed argument is called now (swift 4 renamed train_type to tuner_type, with no alias).
RENAMED = {"train_type": "tuner_type"}
LIST_ARGS = {"dataset", "val_dataset", "target_modules", "report_to", "trainable_parameters", "freeze_parameters",
             "modules_to_save", "external_plugins", "loss_type"}
#: Arguments that change nothing uft trains (uft's run directories and data step replace them), with why.
#: Arguments with an effect (eval_steps, save_total_limit, per_device_eval_batch_size...) are kept instead.
IGNORED = {
    "output_dir": BOOKKEEPING, "add_version": BOOKKEEPING, "logging_dir": BOOKKEEPING,
    "create_checkpoint_symlink": BOOKKEEPING, "logging_first_step": BOOKKEEPING,
    "check_model": "swift's check of the model hub; uft resolves the model itself",
    "ignore_args_error": "swift's parser leniency; uft validates the spec itself",
    "dataloader_num_workers": WORKERS, "dataset_num_proc": WORKERS, "load_from_cache_file": WORKERS,
    "use_hf": "read to tell hub datasets and models apart (data.train[].hub_site)",
    "save_only_model": "uft keeps the final model (and adapter) only, not optimizer states",
    "save_strategy": "read with save_steps; uft saves the final model always",
    "save_steps": "uft's save-at-end value (no intermediate checkpoints)",
    "split_dataset_ratio": "no eval split (0), or a val_dataset is given instead",
    "data_seed": "uft's data step orders the rows by the spec's seed",
    "use_chat_template": "follows from the method (pt trains on plain text)",
    "resume_from_checkpoint": RESUME, "ddp_timeout": LAUNCH,
}
#: Ignored only at this value (what uft writes itself); any other value has an effect, so it is kept.
IGNORED_AT = {"eval_strategy": ("no", "evaluation during training off; uft evaluates after training")}
QUANT_KEYS = ("quant_method", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype")
#: Keys args.json holds that are swift's own records, not choices.
RECORDS = {"swift_version", "training_args", "model_info", "model_meta", "template_meta", "hub", "rank",
           "local_rank", "global_world_size", "local_world_size", "model_dir", "model_suffix", "is_multimodal",
           "evaluation_strategy", "ckpt_dir", "last_model_checkpoint", "best_model_checkpoint"}
#: args.json values swift fills in itself while parsing (from None or from other settings), not choices.
RESOLVED = {"accelerator_config", "bnb_4bit_compute_dtype", "debug", "fsdp", "greater_is_better",
            "include_num_input_tokens_seen", "lazy_tokenize", "max_memory", "metric_for_best_model", "run_name",
            "stream", "task_type", "temperature", "top_k", "top_p", "repetition_penalty",
            "vit_gradient_checkpointing", "model_kwargs", "columns", "max_new_tokens"}
ENV_HINTS = {"CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "MASTER_PORT", "NNODES", "NODE_RANK", "MASTER_ADDR",
             "USE_HF", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"}
#: ms-swift 2.x argument names, renamed in 3.0 (a script using them is for a swift uft does not read).
SWIFT_2_ARGS = {"model_id_or_path", "sft_type", "batch_size", "lora_target_modules", "lora_dropout_p", "model_type"}
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "sgd": "sgd",
              "adafactor": "adafactor", "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit",
              "paged_adamw_8bit": "paged_adamw_8bit"}


def import_swift(path: str | Path) -> ImportResult:
    """Read a shell script, args.json or swift config file and build the spec."""
    path = Path(path)
    command, args, env, explicit = read_native(path)
    return build_spec(path, command, args, env, explicit)


def read_native(path: Path) -> tuple[str, dict[str, Any], dict[str, str], set[str]]:
    """(sft|pt|rlhf, arguments, environment, the arguments the user chose rather than swift's defaults)."""
    if path.suffix == ".json":
        args = _mapping(path, read_json_file(path, "swift args.json", READ_HINT))
        version = str(args.get("swift_version", "unknown"))
        if not version.startswith("4."):
            raise SpecError("This args.json comes from a swift version uft does not read", [Problem(
                f"{path} (swift_version)", f"written by ms-swift {version}; uft reads 4.x (the lock has "
                f"{KNOWN['swift_version']})", "re-run the job with ms-swift 4.x, or import its shell command")])
        chosen = {k for k, v in args.items() if k not in RECORDS | RESOLVED and not k.startswith("_")
                  and v not in (None, {}, [], "") and DEFAULTS.get(k, object()) != v}
        return _command_of(args), args, {}, chosen
    text = read_user_file(path, "swift config", READ_HINT)
    if path.suffix in (".yaml", ".yml"):
        args = _config_args(path, load_yaml(text, str(path), "swift config").data or {})
        env = _env_of(path, args)
        return _command_of(args), args, env, set(args)
    return parse_script(path, text)


def parse_script(path: Path, text: str) -> tuple[str, dict[str, Any], dict[str, str], set[str]]:
    """The first `swift sft|pt|rlhf ...` command line of a shell script (continuations, env prefixes, quotes)."""
    found = find_command(text, r"(^|[\s/])swift\s+(sft|pt|rlhf)(\s|$)")
    megatron = find_command(text, r"(^|[\s/])megatron\s+(sft|pt|rlhf)(\s|$)")
    if found is None and megatron is not None:
        raise SpecError("This is an ms-swift Megatron job, which uft does not import", [Problem(
            f"{path}:{megatron[0]}", "`megatron sft|pt|rlhf` trains with Megatron-LM (tensor/pipeline parallelism, "
            "its own arguments: micro_batch_size, global_batch_size, lr, ...); no uft backend runs Megatron",
            "import the same job written for `swift sft|pt|rlhf` (per_device_train_batch_size, learning_rate, "
            "gradient_accumulation_steps), e.g. one of ms-swift's examples/train scripts")])
    if found is None:
        raise SpecError("No swift training command found", [Problem(
            str(path), "no `swift sft`, `swift pt` or `swift rlhf` command line", "give the script that trains")])
    words = split_words(path, *found, text, "swift")
    start = next(i for i, w in enumerate(words) if Path(w).name == "swift" and i + 1 < len(words)
                 and words[i + 1] in ("sft", "pt", "rlhf"))
    env = env_prefix(words, start)
    command, rest = words[start + 1], until_end(words[start + 2:])
    config_file = None
    if rest and rest[0].endswith((".yaml", ".yml", ".json")) and not rest[0].startswith("--"):
        config_file, rest = rest[0], rest[1:]  # `swift sft config.yaml`
    options, _ = option_words(rest)
    args = {k: _value(k, v) for k, v in options.items()}
    if "config" in args:  # `swift sft --config config.yaml`
        config_file = str(args.pop("config"))
    if config_file is not None:  # the command line overrides the config file, as in swift
        config_path = path.parent / config_file
        config = _config_args(config_path, load_yaml(read_user_file(config_path, "swift config", READ_HINT),
                                                     str(config_path), "swift config").data or {})
        env = {**_env_of(config_path, config), **env}
        args = {**config, **args}
    return command, args, env, set(args)


def _config_args(path: Path, data: Any) -> dict[str, Any]:
    """A config file's arguments as swift's argparse would read them: a list argument given as one string is
    one value (never walked char by char); a numeric argument written as a string (YAML reads `1e-4` as text)
    becomes the number, typed by swift's default."""
    args = dict(_mapping(path, data))
    for key, value in args.items():
        if key in LIST_ARGS and isinstance(value, str):
            args[key] = [value]
        elif isinstance(value, str) and type(DEFAULTS.get(key)) in (int, float):
            kind = type(DEFAULTS[key])
            with contextlib.suppress(ValueError):  # else swift's argparse refuses it; the spec check names it
                args[key] = kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
        elif isinstance(value, str) and key in DEFAULTS and DEFAULTS[key] is None and _NUMBER.fullmatch(value):
            args[key] = scalar(value)  # Optional[float|int] arguments (learning_rate, max_length)
    return args


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _env_of(path: Path, args: dict[str, Any]) -> dict[str, str]:
    """A swift config's `ENV:` mapping (taken out of the arguments)."""
    env = args.pop("ENV", None) or {}
    if not isinstance(env, dict):
        raise SpecError("The swift config cannot be imported", [Problem(
            f"{path} (ENV)", "ENV must be a mapping of environment variables", "write ENV: {NAME: value}")])
    return {str(k): str(v) for k, v in env.items()}


def _mapping(path: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError("The swift config cannot be imported", [Problem(
            str(path), f"expected a mapping of swift arguments, found {type(data).__name__}",
            "give swift's args.json, a config YAML of its arguments, or the shell script")])
    return data


def build_spec(path: Path, command: str, args: dict[str, Any], env: dict[str, str], explicit: set[str]
               ) -> ImportResult:
    args = {RENAMED.get(k, k): v for k, v in args.items()}
    chosen = {RENAMED.get(k, k) for k in explicit}
    # the ledger holds the user's choices; the rest of an args.json is swift's defaults and records
    ledger = KeyLedger({k: v for k, v in args.items() if k in chosen}, "swift",
                       known=DEFAULTS, defaults=DEFAULTS)
    out = ledger.result

    def get(key: str, default: Any = None) -> Any:
        value = args.get(key)
        return value if value is not None else (DEFAULTS.get(key) if default is None else default)

    def take(key: str, target: str, default: Any = None) -> Any:
        ledger.take(key, target, default)
        return get(key, default)

    method = _method(command, args, take)
    tuner = take("tuner_type", "adapter.type")
    adapter: dict[str, Any] = {"type": {"lora": "lora", "full": "full"}.get(tuner)}
    if adapter["type"] is None:
        raise SpecError("This swift command cannot be imported", [Problem(
            "tuner_type", f"{tuner!r} has no uft adapter", "uft imports tuner_type lora and full")])
    if tuner == "lora":
        targets = take("target_modules", "adapter.target_modules")
        init = str(take("init_weights", "adapter.init"))
        adapter.update({"r": take("lora_rank", "adapter.r"), "alpha": take("lora_alpha", "adapter.alpha"),
                        "dropout": take("lora_dropout", "adapter.dropout"),
                        "target_modules": "all-linear" if targets in (["all-linear"], "all-linear") else
                        list(targets), "rslora": take("use_rslora", "adapter.rslora")})
        if take("use_dora", "adapter.use_dora"):
            adapter["type"] = "dora"
        if args.get("lorap_lr_ratio") is not None:
            adapter["loraplus_lr_ratio"] = take("lorap_lr_ratio", "adapter.loraplus_lr_ratio")
        if init.startswith("pissa"):
            adapter.update(init="pissa", pissa_iters=int(init.rpartition("_")[2]) if "niter" in init else 0)
        elif init.lower() not in ("true", "1"):
            raise SpecError("This swift command cannot be imported", [Problem(
                "init_weights", f"{init!r} has no uft equivalent", "uft models the default init and pissa")])
        if args.get("quant_bits") is not None:
            adapter.update(type="qlora", bits=take("quant_bits", "adapter.bits"))
            ledger.ignore(QUANT_KEYS, "uft's QLoRA writes bitsandbytes nf4 with double quantization and the "
                          "compute dtype of training.precision on every backend")
    training = _training(args, env, tuner, adapter["type"], take, get, ledger)
    template = _template(args, method, take, out)
    system = take("system", "template.system")
    if system is not None:  # uft's data step puts it into every conversation, as swift's template does
        template = {"name": template, "system": str(system)}
    data = _data(path, args, env, method, take, out)
    model = {"path": take("model", "model.path")}
    if model["path"] is None:
        older = sorted(SWIFT_2_ARGS & set(args))
        if older:
            raise SpecError("This swift command is written for an older ms-swift", [Problem(
                ", ".join(f"--{a}" for a in older), "ms-swift 2.x arguments (renamed in swift 3)",
                f"uft reads ms-swift 3/4 arguments (its lock has {KNOWN['swift_version']}): --model, --train_type or "
                "--tuner_type, --per_device_train_batch_size, --target_modules")])
        raise SpecError("This swift command names no model", [Problem("model", "missing", "add --model")])
    if args.get("model_revision"):
        model["revision"] = take("model_revision", "model.revision")
    if not _hf(args, env) and not Path(str(model["path"])).exists():
        out.notes.append(f"model {model['path']} is a ModelScope id in this command; uft looks hub ids up on the "
                         "Hugging Face hub (most Qwen/Llama ids are the same on both)")
    out.spec = {"name": _name(path), "model": model, "template": template, "method": method, "adapter": adapter,
                "data": data, "training": training}
    for key, reason in IGNORED.items():
        ledger.ignore(key, reason)
    for key, (value, reason) in IGNORED_AT.items():
        if ledger.get(key) == value:
            ledger.ignore(key, reason)
    if args.get("deepspeed"):  # kept for swift (the spec's deepspeed strategy is not translated to swift yet)
        out.notes.append(f"deepspeed {args['deepspeed']} kept in backend_options.swift: swift shards with DeepSpeed "
                         "as this command does; other backends train without it (the same updates, more memory per "
                         "device) unless the spec sets distributed.strategy deepspeed and its zero_stage")
    world = int(env.get("NPROC_PER_NODE", "1") or 1)
    if world > 1:  # swift starts torchrun itself with this many processes
        out.spec["distributed"] = {"processes_per_node": world}
        out.mapped.append(("env NPROC_PER_NODE", "distributed.processes_per_node"))
    for key in env:
        if key != "NPROC_PER_NODE" or world == 1:
            out.ignored[f"env {key}"] = LAUNCH if key in ENV_HINTS else "not a training setting: set it when you run"
    result = ledger.finish(out.spec)
    out.notes += unknown_notes(result)
    return result


def _method(command: str, args: dict[str, Any], take) -> Any:
    if command != "rlhf":
        return command
    kind = take("rlhf_type", "method.name")
    if kind == "cpo" and args.get("loss_type") in ("simpo", ["simpo"]):
        kind = "simpo"  # how args.json records a simpo run
        take("loss_type", "method.name")
    if kind in ("grpo", "ppo", "gkd"):
        raise SpecError("This swift command cannot be imported yet", [Problem(
            "rlhf_type", f"{kind!r} trains on completions the model generates, scored by "
            + ("reward functions (--reward_funcs)" if kind == "grpo" else "a reward model" if kind == "ppo"
               else "a teacher model") + ", which the spec does not model yet; no uft backend trains it",
            "uft imports dpo, orpo, simpo, cpo, kto and rm; run this job with ms-swift itself")])
    if kind not in ("dpo", "orpo", "simpo", "cpo", "kto", "rm"):
        raise SpecError("This swift command cannot be imported yet", [Problem(
            "rlhf_type", f"{kind!r} has no uft method yet", "uft imports dpo, orpo, simpo, cpo, kto and rm")])
    method: dict[str, Any] = {"name": kind}
    if kind in ("dpo", "orpo", "simpo", "cpo", "kto"):
        method["beta"] = take("beta", "method.beta", 2.0 if kind == "simpo" else 0.1)
    if kind in ("simpo", "cpo"):
        method["nll_weight"] = take("cpo_alpha", "method.nll_weight")
    if kind == "simpo":
        method["gamma"] = take("simpo_gamma", "method.gamma")
    loss = args.get("loss_type")
    if kind in ("cpo", "orpo", "rm") and loss in ("sigmoid", ["sigmoid"]):
        take("loss_type", "method.name")  # the loss these methods always use
    if loss not in (None, [], "sigmoid", ["sigmoid"], "kto", ["kto"]) and kind in ("dpo", "kto"):
        method["loss_type"] = take("loss_type", "method.loss_type")
        method["loss_type"] = method["loss_type"][0] if isinstance(method["loss_type"], list) else method["loss_type"]
    return method


def _training(args, env, tuner, adapter_type, take, get, ledger: KeyLedger) -> dict[str, Any]:
    batch = take("per_device_train_batch_size", "training.per_device_batch_size")
    world = int(env.get("NPROC_PER_NODE", "1") or 1)
    accumulation = take("gradient_accumulation_steps", "training.gradient_accumulation_steps",
                        max(1, math.ceil(16 / batch / world)))  # swift's automatic choice
    if world > 1:
        ledger.result.notes.append(
            f"NPROC_PER_NODE={world}: swift trains data parallel on {world} processes, an effective batch of {batch} "
            f"per device x {accumulation} accumulation x {world} = {batch * accumulation * world}; the spec says "
            f"distributed.processes_per_node {world} (ddp), so it trains the same way where a backend runs several "
            "processes, and a backend that cannot refuses it by name (on one process, raise "
            "training.gradient_accumulation_steps to keep the effective batch)")
    max_steps = take("max_steps", "training.max_steps")
    epochs = take("num_train_epochs", "training.epochs")
    optimizer = take("optim", "training.optimizer")
    if optimizer not in OPTIMIZERS:
        raise SpecError("This swift command cannot be imported", [Problem(
            "optim", f"{optimizer!r} has no uft optimizer", f"uft maps {', '.join(sorted(OPTIMIZERS))}")])
    report = take("report_to", "training.report_to")
    training = {
        **({"max_steps": max_steps} if max_steps and max_steps > 0 else {"epochs": epochs}),
        "learning_rate": take("learning_rate", "training.learning_rate", 1e-5 if tuner == "full" else 1e-4),
        "lr_scheduler": take("lr_scheduler_type", "training.lr_scheduler"),
        "warmup_ratio": take("warmup_ratio", "training.warmup_ratio"),
        "per_device_batch_size": batch,
        "gradient_accumulation_steps": accumulation,
        "gradient_checkpointing": take("gradient_checkpointing", "training.gradient_checkpointing"),
        "precision": _precision(args, adapter_type, take, ledger),
        "optimizer": OPTIMIZERS[optimizer],
        "weight_decay": take("weight_decay", "training.weight_decay"),
        "max_grad_norm": take("max_grad_norm", "training.max_grad_norm"),
        "seed": take("seed", "training.seed"),
        "logging_steps": take("logging_steps", "training.logging_steps"),
        "report_to": [r for r in (report if isinstance(report, list) else [report])],
    }
    if args.get("save_steps") not in (None, SAVE_AT_END) and get("save_strategy") != "no":
        training["save_steps"] = take("save_steps", "training.save_steps")
    if args.get("warmup_steps"):
        raise SpecError("This swift command cannot be imported", [Problem(
            "warmup_steps", "uft models warmup as a ratio of the steps", "use --warmup_ratio")])
    for key in ("adam_beta1", "adam_beta2", "adam_epsilon"):  # swift's own choices, kept so swift trains the same
        if get(key) != ADAM[key]:
            ledger.keep(key, get(key), f"{key} {get(key)} (swift's) kept in backend_options.swift; other backends "
                        "use transformers' default")
        else:
            ledger.ignore(key, "transformers' default, which every backend uses")
    return training


def _precision(args, adapter_type: str, take, ledger: KeyLedger) -> str:
    """training.precision as swift decides it: bf16/fp16 when given, else mixed precision follows torch_dtype
    (bfloat16 -> bf16; float16 and float32 -> fp16); neither: the model's own dtype, `auto`. A torch_dtype other
    than the one uft writes for that precision (float32 weights under fp16) is kept for swift, with a note."""
    bf16, fp16 = take("bf16", "training.precision"), take("fp16", "training.precision")
    dtype = args.get("torch_dtype")
    if bf16 is None and fp16 is None and dtype is None:  # the model's own dtype: nothing to pin
        ledger.result.notes.append(
            "no --torch_dtype, --bf16 or --fp16: swift loads the model in its own dtype (config.json torch_dtype) and "
            "trains with mixed precision to match; the spec says precision auto, which uft resolves to bf16 on a GPU "
            "and fp32 without one (set training.precision to pin it)")
        return "auto"
    if bf16 is None and fp16 is None:  # swift's rule: mixed precision follows the model's dtype
        bf16, fp16 = dtype == "bfloat16", dtype in ("float16", "float32")
    precision = "bf16" if bf16 else "fp16" if fp16 else "fp32"
    if dtype is None:
        return precision
    if dtype == weight_dtype(precision, adapter_type):
        take("torch_dtype", "training.precision")
    else:
        ledger.keep("torch_dtype", dtype, f"torch_dtype {dtype} with {precision} mixed precision: kept in "
                    f"backend_options.swift so swift loads the weights in {dtype} as this command does; the other "
                    f"backends load them in {TORCH_DTYPES[precision]}, the dtype of precision {precision}")
    return precision


def _template(args, method, take, out: ImportResult) -> str:
    template = take("template", "template")
    model = args.get("model")
    if template is None and method == "pt":
        return "model"  # plain text: no chat template is rendered
    if template is None:
        out.notes.append(_no_template_note(str(model)))
        return template_for_model(str(model)) or "model"
    if template == "dummy" and method == "pt":
        return "model"
    reverse = {v: k for k, v in TEMPLATES.items()}
    if template not in reverse:
        raise SpecError("This swift command cannot be imported", [Problem(
            "template", f"swift template {template!r} has no uft equivalent",
            f"uft maps these: {', '.join(sorted(reverse))}; or drop --template to use the model's own")])
    return reverse[template]


def _no_template_note(model: str) -> str:
    """What `no --template` became: the uft template of the model's family, or why `model` and what to do."""
    found = model_family(model)
    if found and found[1]:
        return (f"no --template: swift uses {model}'s registered template; uft names it `template: {found[1]}` "
                f"(the {found[0]} chat format), so every backend renders it")
    why = f"no uft template for model family {found[0]}" if found else f"uft does not know {model}'s model family"
    return (f"no --template: swift uses {model}'s registered template; {why}; template: model uses the model's own "
            "chat template, which LLaMA-Factory cannot take — set template.name to the model's chat format "
            f"(uft has {', '.join(JINJA_TEMPLATES)}, or jinja) to train it on every backend")


def _data(path: Path, args, env, method, take, out: ImportResult) -> dict[str, Any]:
    datasets = take("dataset", "data.train") or []
    if not datasets:
        raise SpecError("This swift command names no dataset", [Problem("dataset", "missing", "add --dataset")])
    loss_scale = take("loss_scale", "data.train_on_prompt") or ("all" if method == "pt" else "default")
    if loss_scale not in ("default", "last_round", "all"):
        raise SpecError("This swift command cannot be imported", [Problem(
            "loss_scale", f"{loss_scale!r} has no uft equivalent", "uft maps default, last_round and all")])
    truncation = take("truncation_strategy", "data.max_length (uft truncates)")
    if truncation in (None, "delete"):
        out.notes.append("swift drops rows longer than max_length (truncation_strategy delete); uft truncates them")
    max_length = take("max_length", "data.max_length")
    if max_length is None:
        max_length = _model_max_length(args.get("model"), out)
    data: dict[str, Any] = {"train": [_dataset(path, d, args, env, method) for d in datasets],
                            "max_length": max_length, "packing": bool(take("packing", "data.packing")),
                            "train_on_prompt": loss_scale == "all" and method != "pt",
                            # swift reads rows in file order only with both of its shuffles off
                            "shuffle": bool(take("dataset_shuffle", "data.shuffle", True)) or
                            bool(take("train_dataloader_shuffle", "data.shuffle", True))}
    if data["shuffle"]:
        out.notes.append("swift shuffles the rows when it loads them (dataset_shuffle) and the batches every epoch "
                         "(train_dataloader_shuffle); uft shuffles the rows once (data.shuffle, the spec's seed) and "
                         "every backend, swift too, reads them in that order every epoch: the same rows, another order")
    if isinstance(method, dict) and method["name"] == "orpo" and args.get("loss_scale") is None:
        out.notes.append("swift's ORPO puts its NLL term on every assistant turn (loss_scale default for orpo); uft's, "
                         "as trl's, on the chosen answer only (last_round): the same for single-turn pairs")
    if args.get("streaming"):
        out.notes.append("streaming true (kept for swift): uft's data step first writes every row of the datasets "
                         "into one file, so a hub dataset is downloaded whole before training; bound a large one with "
                         "samples (`name#N` in swift, data.train[].samples in the spec)")
    val = take("val_dataset", "data.eval")
    if val:
        data["eval"] = _dataset(path, val[0], args, env, method)
    elif (args.get("split_dataset_ratio") or 0) > 0:
        data["eval_split"] = take("split_dataset_ratio", "data.eval_split")
    if (val or "eval_split" in data) and args.get("eval_strategy") in (None, "steps", "epoch"):
        out.notes.append("swift evaluates on the eval data during training here (every eval_steps); uft's translations "
                         "do not (eval_strategy no): uft's shared evaluation judges the result after training")
    return data


#: config.json keys swift reads for a model's maximum length (swift.utils.HfConfigFactory.get_max_model_len: the
#: smallest of those present, in the config or its text_config).
MAX_LENGTH_KEYS = ("seq_length", "max_position_embeddings", "n_positions", "model_max_length", "seq_len",
                   "max_seq_len", "max_sequence_length", "max_seq_length")


def _model_max_length(model: Any, out: ImportResult) -> int:
    """What swift's max_length None means: the model's max_model_len, from its config.json. Known here only for a
    local model folder; for a hub id the spec takes uft's default, and the note says so."""
    config = Path(str(model)) / "config.json" if model else None
    if config is not None and config.is_file():
        data = read_json_file(config, "model config", "a model folder's config.json")
        sections = [data, data.get("text_config") or {}] if isinstance(data, dict) else []
        found = sorted((v, k) for d in sections for k, v in d.items() if k in MAX_LENGTH_KEYS and isinstance(v, int))
        if found:
            length, key = found[0]
            out.notes.append(f"no --max_length: swift uses the model's maximum length, {key} {length} in {config}; "
                             f"the spec says the same, data.max_length {length}")
            return length
    default = DataSpec.model_fields["max_length"].default
    out.notes.append(f"no --max_length: swift uses the model's maximum length (max_position_embeddings or the like in "
                     f"{model}'s config.json), which uft cannot know without the model; the spec says uft's default, "
                     f"data.max_length {default}: set it to the model's length to cut samples where swift would")
    return default


def _dataset(path: Path, text: str, args, env, method) -> dict[str, Any]:
    """swift's `[hf::|ms::]id_or_path[:subset][#N]` as a uft dataset."""
    entry: dict[str, Any]
    local = _local_file(path, text)
    if local:
        entry = {"path": str(local)}
    else:
        site = "huggingface" if text.startswith("hf::") or _hf(args, env) else "modelscope"
        name = text.split("::", 1)[-1]
        name, _, samples = name.partition("#")
        local = _local_file(path, name)
        if local:
            entry = {"path": str(local.resolve())}
        else:
            hub, _, subset = name.partition(":")
            entry = {"hub": hub, "hub_site": site, **({"subset": subset} if subset else {})}
        if samples:
            entry["samples"] = int(samples)
    # a local file's format is told now; a hub dataset's when a run fetches it
    entry["format"] = detect_format(entry["path"]) if "path" in entry else "auto"
    return entry


def _local_file(path: Path, text: str) -> Path | None:
    """A dataset argument as an existing local file: beside the script (or, for args.json in swift's output
    folder, `<where swift ran>/output/v0-<time>/args.json`, beside the folder swift ran in)."""
    bases = (path.parent, *path.parents[1:3]) if path.name == "args.json" else (path.parent, path.parent.parent)
    for base in bases:
        candidate = base / text
        if candidate.is_file():
            return candidate.resolve()
    return None


def _hf(args: dict[str, Any], env: dict[str, str]) -> bool:
    return bool(args.get("use_hf")) or env.get("USE_HF", "0") not in ("0", "", "false", "False")


def _command_of(args: dict[str, Any]) -> str:
    if args.get("rlhf_type"):
        return "rlhf"
    return "pt" if args.get("use_chat_template") is False else "sft"


def _value(key: str, words: list[str]) -> Any:
    values = [scalar(w) for w in words]
    if key in LIST_ARGS:
        return values
    if not values:
        return True  # a bare flag
    return values[0] if len(values) == 1 else values


def _name(path: Path) -> str:
    stem = path.parent.name if path.name == "args.json" else path.stem
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-.") or "imported"
    return stem[:100]
