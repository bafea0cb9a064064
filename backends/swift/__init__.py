"""The ms-swift backend: a native `swift sft|pt|rlhf` run in its own environment.

ms-swift 4.6 pins transformers < 5.20, trl < 1.0, datasets < 4.8.5 and peft < 0.21, so it runs in a uv
environment made from `requirements.lock` beside this file. `translate` writes what a swift user would
write: `config.yaml` (swift's own argument file: `swift sft config.yaml`), the same arguments as a readable
`train.sh`, and the data in swift's messages shapes as Parquet (typed columns: read as JSON, an all-date
column would become timestamps). Every setting is explicit: swift's defaults differ from
the other frameworks (lora_alpha 32, lora_dropout 0.05, weight_decay 0.1, adam_beta2 0.95, gradient
accumulation chosen so the total batch is >= 16, gradient checkpointing on, fp16 on an fp32 model, 3
epochs, a timestamped output folder), and any of them left implicit would make a bake-off unfair.

Hosts with a CUDA GPU get `requirements.lock` (PyPI's torch, a CUDA build, with its nvidia-* wheels); hosts
without one get `requirements-cpu.lock` (the same versions, with PyTorch's `torch==2.13.0+cpu` and without
the nvidia wheels and torchvision); `UFT_TORCH_BUILD=cpu|cuda` overrides the choice. Refresh both with
    scripts/lock.sh swift
which compiles `requirements.in` and then `requirements-cpu.in` against the first lock's versions (uv pip
compile --generate-hashes; the `+cpu` wheel from a folder in UV_FIND_LINKS, else the PyTorch CPU index).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from unified_ft import envs
from unified_ft.errors import Problem, SpecError
from unified_ft.hf_trainer import (
    PRECISION,
    SCHEDULE,
    SEEDS,
    copy_trained,
    pick,
    record_shapes,
    resolved_precision,
    trainer_arguments,
)
from unified_ft.launchers import torchrun_env
from unified_ft.parquet import write_present_columns
from unified_ft.plugin import (
    AUTO_PRECISION,
    NATIVE,
    Capability,
    ImportResult,
    NativeJob,
    NodeLaunch,
    RunOutputs,
    distributed_capabilities,
    final_metrics,
    importer_options,
    loss_type_capabilities,
    merge_passthrough,
    override_notes,
    problems_of,
    run_native_check,
)
from unified_ft.redact import is_secret_key, redact_data
from unified_ft.runs import read_jsonl, write_jsonl
from unified_ft.spec import LOSS_TYPES, JobSpec

HERE = Path(__file__).resolve().parent
SWIFT_VERSION = "4.6.0"
RECIPE = envs.EnvRecipe(
    backend="swift", lock=HERE / "requirements.lock", cpu_lock=HERE / "requirements-cpu.lock", imports=("swift",),
    versions_of=("ms-swift", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "modelscope"))

#: uft template names -> swift `--template` values that render the same tokens (swift's `qwen` has the same
#: default system prompt as uft's). swift has no mistral or alpaca template.
TEMPLATES = {"chatml": "chatml", "qwen": "qwen", "qwen2_5": "qwen2_5", "llama3": "llama3", "gemma": "gemma",
             "phi3": "phi3"}
#: transformers `model_type` (config.json) -> swift `--model_type`, for a local model swift can't infer.
MODEL_TYPES = {"qwen2": "qwen2", "qwen3": "qwen3", "llama": "llama", "mistral": "mistral", "gemma": "gemma",
               "gemma2": "gemma2", "gemma3_text": "gemma3_text", "phi3": "phi3"}
#: spec training.precision -> swift's --torch_dtype (what unified_ft.modeling loads for the other backends).
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
RLHF_TYPES = ("dpo", "orpo", "simpo", "cpo", "kto", "rm")
#: save_steps meaning "only the final checkpoint": swift always saves at the last step unless saving is off.
SAVE_AT_END = 1_000_000
#: transformers' Adam settings, which trl and LLaMA-Factory use; swift's own adam_beta2 is 0.95.
ADAM = {"adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8}
#: Keys uft writes that backend_options.swift may override (merge_passthrough refuses any other), each with
#: why it may; `uft plan` notes every override a spec makes. A swift command imported with its own Adam
#: values or weight dtype keeps them this way; the other two are what uft derives from the model folder.
OVERRIDABLE = {"adam_beta1": "swift's own default is 0.9", "adam_beta2": "swift's own default is 0.95",
               "adam_epsilon": "swift's own default is 1e-08",
               "torch_dtype": "an imported swift command's own weight dtype (swift's float32 weights under fp16 "
                              "mixed precision; uft loads the precision's dtype)",
               "model_type": "uft reads it from the model's config.json",
               "trainable_parameters": "uft names the last adapter.trainable_layers decoder layers"}
#: What a swift checkpoint holds besides the trained weights (optimizer and RNG state, swift's own records).
CHECKPOINT_BOOKKEEPING = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json", "args.json",
                          "README.md")
#: swift reads JSON through `datasets`, whose pyarrow reader turns a column of ISO-date strings into
#: timestamps (swift then drops every such row); Parquet carries its schema, so text stays text.
DATA_FILE = "train.parquet"
_MESSAGES = [{"role": "string", "content": "string"}]
COLUMN_TYPES = {"messages": _MESSAGES, "text": "string", "tools": "string", "rejected_response": "string",
                "label": "bool"}
#: Environment for a run: hub ids resolve on the Hugging Face hub (like every other backend), not ModelScope.
BASE_ENV = {"USE_HF": "1", "TOKENIZERS_PARALLELISM": "false"}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TRUST_REMOTE_CODE_NOTE = ("ms-swift 4.6 loads every model with trust_remote_code on and has no setting to turn "
                          "it off; spec model.trust_remote_code: false cannot be enforced on this backend (a local "
                          "model folder without *.py files runs no remote code)")
_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)
_NO_TEMPLATE = "ms-swift renders chats with its own templates: name one (chatml, qwen, llama3, gemma, phi3)"

CAPABILITIES: dict[str, Capability] = {
    "method.sft": NATIVE, "method.pt": NATIVE,
    **{f"method.{m}": Capability("native", f"swift rlhf --rlhf_type {m}") for m in RLHF_TYPES},
    "method.kto": Capability("native", "preference pairs become unpaired rows with label true/false"),
    "method.ppo": Capability("unsupported", "swift's ppo needs a reward model run and value head; not translated yet"),
    "method.grpo": Capability("unsupported", "needs reward functions, which the spec does not model yet"),
    "adapter.lora": NATIVE, "adapter.dora": NATIVE, "adapter.rslora": NATIVE, "adapter.full": NATIVE,
    "adapter.loraplus": Capability("native", "lorap_lr_ratio"),
    "adapter.pissa": Capability("native", "init_weights pissa; swift's converted adapter is collected"),
    "adapter.freeze": Capability("emulated", "tuner_type full with every parameter frozen except the last "
                                 "layers (freeze_parameters_ratio 1, trainable_parameters)"),
    "adapter.qlora": _GPU,
    **{f"adapter.{a}": Capability("unsupported", "ms-swift's CLI has no prompt-learning adapters")
       for a in ("prefix", "prompt", "p_tuning")},
    **{f"optimizer.{o}": NATIVE for o in ("adamw_torch", "sgd", "adafactor")},
    "optimizer.adamw_8bit": _GPU, "optimizer.paged_adamw_8bit": _GPU,
    "precision.fp32": NATIVE, "precision.bf16": NATIVE, "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "mixed precision fp16 needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": NATIVE for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": NATIVE for t in TEMPLATES},
    "template.model": Capability("emulated", "swift's registered template for the hub model (no --template); "
                                 "a local model needs a named template"),
    **{f"template.{t}": Capability("unsupported", _NO_TEMPLATE) for t in ("jinja", "mistral", "alpaca")},
    "data.packing": Capability("native", "swift packs only with flash-attention (attn_impl flash_attn)",
                               needs_gpu=True),
    "data.train_on_prompt": Capability("native", "loss_scale all"),
    "data.mixing": Capability("native", "mixed by uft's data step before swift sees it"),
    "training.gradient_checkpointing": NATIVE,
    "report_to.tensorboard": NATIVE, "report_to.wandb": NATIVE,
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("emulated", "ms-swift cannot read GGUF: uft dequantizes it once into a cached "
                             "safetensors folder"),
    **distributed_capabilities("ms-swift", {
        "distributed.ddp": Capability("native", "NPROC_PER_NODE torchrun"),
        "distributed.multi_node": Capability("native", "NNODES, NODE_RANK"),
        "distributed.deepspeed": Capability("native", "--deepspeed zero0-3 / zero2_offload / zero3_offload (swift's "
                                            "presets); DeepSpeed needs CUDA", needs_gpu=True),
        "distributed.fsdp2": Capability("native", "--fsdp fsdp2.json (swift's fsdp2 preset, saving a full state "
                                        "dict); needs CUDA", needs_gpu=True)},
        pending=("megatron", "elastic")),
    **loss_type_capabilities({"dpo": tuple(x for x in LOSS_TYPES["dpo"] if x not in ("kto_pair", "sigmoid_norm")),
                              "kto": LOSS_TYPES["kto"]}, "ms-swift 4.6 (trl 0.29)"),
}


class SwiftBackend(envs.OwnEnvironment):
    """ms-swift 4.6, in its own uv environment."""

    name = "swift"
    capabilities = CAPABILITIES
    recipe = RECIPE

    def import_native(self, path: Path, **options: Any) -> ImportResult:
        """A swift command (shell script, args.json or swift config file) as a spec."""
        from .importer import import_swift

        importer_options(self.name, options)
        return import_swift(path)

    def notes(self, spec: JobSpec) -> list[str]:
        """Warnings the user must see before the run: what swift does that the spec cannot stop, and which of
        uft's values backend_options.swift overrides."""
        notes = [] if spec.model.trust_remote_code else [TRUST_REMOTE_CODE_NOTE]
        derived = {"model_type": None} if (Path(spec.model.path) / "config.json").is_file() else {}
        derived.update({"trainable_parameters": None} if spec.adapter.type == "freeze" else {})
        return notes + override_notes(spec, self.name, {**ADAM, "torch_dtype": torch_dtype(spec), **derived},
                                      OVERRIDABLE)

    def setting_problems(self, spec: JobSpec) -> list[Problem]:
        """A ZeRO stage / offload for which swift has no DeepSpeed preset."""
        return problems_of(lambda: sharding_args(spec))

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write config.yaml, train.sh and data/train.parquet into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "data").mkdir(exist_ok=True)
        train_file = out_dir / "data" / DATA_FILE
        command, args = native_args(spec, f"data/{DATA_FILE}")  # its errors come before any file is written
        write_present_columns(train_file, lambda: swift_rows(spec, read_jsonl(Path(data.train_path))), COLUMN_TYPES)
        env = run_env(spec)
        # Files hold no secret: a secret-named variable reaches swift through the child's environment only.
        file_args, file_env = redact_data(args), {k: v for k, v in env.items() if not is_secret_key(k)}
        config_path = out_dir / "config.yaml"
        header = (f"# ms-swift {SWIFT_VERSION} job written by uft for spec {spec.name!r}.\n"
                  f"# Run it with ms-swift alone: swift {command} config.yaml   (or: bash train.sh)\n")
        config_path.write_text(header + yaml.safe_dump({"ENV": file_env, **file_args}, sort_keys=False,
                                                       allow_unicode=True), encoding="utf-8")
        script = out_dir / "train.sh"
        script.write_text(shell_script(spec, command, file_args, file_env), encoding="utf-8")
        script.chmod(0o755)
        extra = []
        if args.get("fsdp") == FSDP_FILE:
            extra.append(out_dir / FSDP_FILE)
            extra[0].write_text(json.dumps(fsdp_config(spec), indent=2) + "\n", encoding="utf-8")
        swift = envs.env_dir(RECIPE) / "bin" / "swift"
        argv = [str(swift), command, "config.yaml"]
        nodes = [NodeLaunch(r, argv, {"NODE_RANK": str(r)}) for r in range(spec.distributed.nodes)]
        return NativeJob(native_dir=out_dir, files=[train_file, config_path, script, *extra], argv=argv,
                         nodes=nodes if len(nodes) > 1 else [], env=env, cwd=out_dir,
                         log_file=out_dir / "output" / "logging.jsonl")

    def check(self, job: NativeJob) -> None:
        """swift's own argument classes on config.yaml, inside its environment, without training."""
        python = envs.env_python(envs.create_env(RECIPE))
        run_native_check(self.name, [str(python), str(HERE / "swift_check.py"), job.argv[1], "config.yaml"],
                         job.native_dir)

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A logging.jsonl row as a standard metrics row."""
        steps = row.get("global_step/max_steps")
        if "loss" not in row or not steps:
            return None
        step, max_steps = (int(x) for x in str(steps).split("/"))
        return {"step": step, "epoch": row.get("epoch"), "loss": row["loss"], "learning_rate": row.get("learning_rate"),
                "grad_norm": row.get("grad_norm"), "tokens": None, "elapsed_s": _seconds(row.get("elapsed_time")),
                "peak_memory_mb": _mb(row.get("memory(GiB)")), "max_steps": max_steps}

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs:
        """logging.jsonl -> metrics.jsonl; the last checkpoint's adapter (or model) -> adapter/ (or model/)."""
        output = job.native_dir / "output"
        rows = [r for r in (self.progress(x) for x in read_jsonl(output / "logging.jsonl")) if r]
        for row in rows:
            row.pop("max_steps", None)
        metrics_path = write_jsonl(run_dir / "metrics.jsonl", rows)
        checkpoint = last_checkpoint(output)
        converted = checkpoint / "converted" / "default"  # a PiSSA adapter as plain LoRA on the original base
        source = converted if (converted / "adapter_config.json").exists() else checkpoint
        adapter_dir = copy_trained(source, run_dir, CHECKPOINT_BOOKKEEPING)
        final = final_metrics(rows)
        final.update(dropped_rows(run_dir / "logs"))
        return RunOutputs(adapter_dir=adapter_dir, metrics_path=metrics_path, final=final,
                          versions={})  # the run's own versions: launch reads them back


def native_args(spec: JobSpec, train_file: str) -> tuple[str, dict[str, Any]]:
    """(swift subcommand, its arguments): every setting explicit, in swift's own argument names."""
    t, a, method = spec.training, spec.adapter, spec.method.name
    trainer = trainer_arguments(spec)
    command = {"sft": "sft", "pt": "pt"}.get(method, "rlhf")
    args: dict[str, Any] = {"rlhf_type": method} if command == "rlhf" else {}
    passthrough = spec.backend_options.get("swift", {})
    args["model"] = spec.model.path
    if spec.model.revision:
        args["model_revision"] = spec.model.revision
    inferred = None if "model_type" in passthrough else model_type(spec)
    if inferred:
        args["model_type"] = inferred
    template = _template(spec)
    if template:
        args["template"] = template
    if spec.template.system is not None:  # the rows already carry it (uft's data step); for a faithful import
        args["system"] = spec.template.system
    args["use_chat_template"] = method != "pt"  # pt trains on plain text; also tells an importer the command
    args["use_hf"] = True
    args["check_model"] = False  # else swift asks ModelScope whether a local model is current
    args["tuner_type"] = "full" if a.type in ("full", "freeze") else "lora"
    if a.type in ("lora", "qlora", "dora"):
        args.update({"lora_rank": a.r, "lora_alpha": a.alpha, "lora_dropout": a.dropout,
                     "target_modules": [a.target_modules] if isinstance(a.target_modules, str) else a.target_modules,
                     "use_rslora": a.rslora, "use_dora": a.use_dora,
                     "init_weights": _init_weights(a.init, a.pissa_iters)})
        if a.loraplus_lr_ratio is not None:
            args.update({"lorap_lr_ratio": a.loraplus_lr_ratio})
    if a.type == "qlora":
        args.update({"quant_method": "bnb", "quant_bits": a.bits, "bnb_4bit_quant_type": "nf4",
                     "bnb_4bit_use_double_quant": True})
    if a.type == "freeze":
        args["freeze_parameters_ratio"] = 1.0
        if "trainable_parameters" not in passthrough:  # else derived from a config.json there may not be
            args["trainable_parameters"] = trainable_layers(spec)
    beta, loss_type = getattr(spec.method, "beta", None), getattr(spec.method, "loss_type", None)
    if beta is not None:
        args["beta"] = beta
    if method in ("simpo", "cpo"):
        args["cpo_alpha"] = spec.method.nll_weight  # swift's own default is 1.0 for both
    if method == "simpo":
        args["simpo_gamma"] = spec.method.gamma  # swift's own default is 1
    if loss_type is not None:
        args["loss_type"] = loss_type
    if method == "kto":
        args.update({"desirable_weight": 1.0, "undesirable_weight": 1.0})
    args.update({
        "dataset": [train_file],
        "split_dataset_ratio": 0.0,
        "dataset_shuffle": False,  # the rows' order is uft's (data.shuffle), read as written:
        "train_dataloader_shuffle": False,  # no load-time shuffle, no shuffling batch sampler
        "dataset_num_proc": 1,
        "dataloader_num_workers": 0,
        "max_length": spec.data.max_length,
        "truncation_strategy": "right",  # truncate, as the spec says (swift's default drops long rows)
        "loss_scale": _loss_scale(spec),
        "packing": spec.data.packing,
        "output_dir": "output",
        "add_version": False,  # else output lands in a timestamped subfolder
        "logging_steps": trainer["logging_steps"],
        "logging_first_step": False,
        "save_strategy": "steps",
        "save_steps": t.save_steps or SAVE_AT_END,
        "save_only_model": True,
        "eval_strategy": "no",  # uft's shared evaluation judges the result
        "report_to": list(t.report_to),
        **pick(trainer, (*SCHEDULE, "optim")),
        **ADAM,
        **pick(trainer, ("weight_decay", "max_grad_norm", "gradient_checkpointing")),
        "torch_dtype": torch_dtype(spec),
        **pick(trainer, (*PRECISION, *SEEDS)),
    })
    args.update(sharding_args(spec))
    merge_passthrough(spec, "swift", args, OVERRIDABLE)
    return command, args


#: swift 4.6's DeepSpeed presets (swift/config/<name>.json) by (zero_stage, offload): zero2_offload moves the
#: optimizer to CPU, zero3_offload the parameters and the optimizer; no preset offloads at stage 1, or only the
#: optimizer at stage 3.
DEEPSPEED_PRESETS = {(0, "none"): "zero0", (1, "none"): "zero1", (2, "none"): "zero2", (3, "none"): "zero3",
                     (2, "optimizer"): "zero2_offload", (3, "params"): "zero3_offload"}
#: The FSDP2 config the job writes beside config.yaml (swift's --fsdp takes a preset name or a JSON file).
FSDP_FILE = "fsdp2.json"


def sharding_args(spec: JobSpec) -> dict[str, Any]:
    """--deepspeed <preset> or --fsdp fsdp2.json for those strategies; an offload swift has no preset for is an
    error naming it."""
    d = spec.distributed
    if d.strategy == "fsdp2":
        return {"fsdp": FSDP_FILE}
    if d.strategy != "deepspeed":
        return {}
    preset = DEEPSPEED_PRESETS.get((d.zero_stage, d.offload))
    if preset is None:
        raise SpecError("ms-swift cannot run this DeepSpeed setting", [Problem(
            "distributed.offload", f"ms-swift {SWIFT_VERSION} has no DeepSpeed preset for zero_stage {d.zero_stage} "
            f"with offload {d.offload}", "offload optimizer at zero_stage 2, or params at zero_stage 3")])
    return {"deepspeed": preset}


def fsdp_config(spec: JobSpec) -> dict[str, Any]:
    """swift's own fsdp2 preset, except: a full state dict (swift saves with save_only_model, which a sharded one
    refuses, and the adapter/model is whole), activation checkpointing only if the spec asks for gradient
    checkpointing (the preset turns it on), and `offload` for offload: params."""
    offload = " offload" if spec.distributed.offload == "params" else ""
    return {"fsdp": "full_shard auto_wrap" + offload, "fsdp_config": {
        "fsdp_version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_ram_efficient_loading": True, "state_dict_type": "FULL_STATE_DICT",
        "activation_checkpointing": spec.training.gradient_checkpointing}}


def torch_dtype(spec: JobSpec) -> str:
    """The base weights' dtype: the precision's, as the trl runner and LLaMA-Factory load them (bf16 weights
    take half of fp32's memory). fp16 with every weight trained (full, freeze) stays float32: swift upcasts
    fp16 trainable parameters to fp32 only for adapters, and transformers cannot unscale fp16 gradients
    (LLaMA-Factory keeps trainable parameters in fp32 too)."""
    return weight_dtype(resolved_precision(spec), spec.adapter.type)


def weight_dtype(precision: str, adapter_type: str) -> str:
    """swift's --torch_dtype for a resolved precision and adapter type (see `torch_dtype`)."""
    return "float32" if precision == "fp16" and adapter_type in ("full", "freeze") else TORCH_DTYPES[precision]


def model_type(spec: JobSpec) -> str | None:
    """swift's model_type for a local model, read from its config.json; None for a hub id (swift infers it)."""
    config = Path(spec.model.path) / "config.json"
    if not config.is_file():
        return None
    found = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if found not in MODEL_TYPES:
        raise SpecError("ms-swift cannot tell what kind of model this is", [Problem(
            f"model.path ({spec.model.path})", f"config.json model_type {found!r} has no ms-swift model_type "
            f"that uft knows ({', '.join(sorted(MODEL_TYPES))})",
            "name swift's model type in backend_options.swift.model_type (see `swift sft --help`)")])
    return MODEL_TYPES[found]


def trainable_layers(spec: JobSpec) -> list[str]:
    """Parameter-name prefixes of the last N decoder layers (uft's `freeze`), from the model's config.json."""
    config = Path(spec.model.path) / "config.json"
    if not config.is_file():
        raise SpecError("adapter.type freeze on ms-swift needs the model's layer count", [Problem(
            "adapter.type", f"no local config.json under {spec.model.path}",
            "use a local model folder, or name the layers in backend_options.swift.trainable_parameters")])
    layers = json.loads(config.read_text(encoding="utf-8"))["num_hidden_layers"]
    first = max(0, layers - spec.adapter.trainable_layers)
    return [f"model.layers.{i}." for i in range(first, layers)]


def run_env(spec: JobSpec) -> dict[str, str]:
    """No hub at all for a local model (swift otherwise reaches for ModelScope); hub ids pass through to HF."""
    local = Path(spec.model.path).exists()
    d = spec.distributed
    processes = torchrun_env(d, 0) if not d.single_process else {}  # swift starts torchrun
    return {**BASE_ENV, **(OFFLINE_ENV if local else {}), **processes}


def shell_script(spec: JobSpec, command: str, args: dict[str, Any], env: dict[str, str]) -> str:
    """The same arguments as a readable shell script, one flag per line."""
    lines = [(f"#!/usr/bin/env bash\n# ms-swift {SWIFT_VERSION} job written by uft for spec {spec.name!r}.\n"
              "# Run it with ms-swift alone: bash train.sh, where `swift` is ms-swift "
              f"{SWIFT_VERSION}'s command: uft's\n# environment for it is `uft env path swift` "
              "(source \"$(uft env path swift)/bin/activate\" first).\n"
              "set -euo pipefail\ncd \"$(dirname \"$0\")\"\n")]
    lines += [f"export {k}={shlex.quote(v)}\n" for k, v in env.items()]
    flags = []
    for key, value in args.items():
        values = value if isinstance(value, list) else [value]
        flags.append(f"--{key} " + " ".join(shlex.quote(_text(v)) for v in values))
    lines.append(f"swift {command} \\\n    " + " \\\n    ".join(flags) + "\n")
    return "".join(lines)


def swift_rows(spec: JobSpec, records: Any) -> Any:
    """Canonical records in swift's shapes: messages (+ rejected_response, or label for kto)."""
    for shape, row in record_shapes(spec, records, "ms-swift"):
        if shape == "text":
            yield {"text": row["text"]}
        elif shape == "chat":
            yield {"messages": row["messages"], **({"tools": row["tools"]} if row.get("tools") else {})}
        elif shape == "unpaired":  # each answer with a thumbs-up or thumbs-down
            yield {"messages": [*row["prompt"], *row["completion"]], "label": row["label"]}
        else:
            yield {"messages": [*row["prompt"], *row["chosen"]], "rejected_response": row["rejected"][0]["content"]}


def last_checkpoint(output: Path) -> Path:
    """The folder swift saved last (swift writes no separate final folder)."""
    found = sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        raise FileNotFoundError(f"ms-swift saved no checkpoint in {output}")
    return found[-1]


_FILTERED = re.compile(r"Dataset filtered, origin length: (\d+), filtered dataset length: (\d+)")


def dropped_rows(logs: Path) -> dict[str, int]:
    """Rows swift's preprocessor dropped, counted from its own log lines (it drops them with no error)."""
    dropped = 0
    for name in ("stdout.log", "stderr.log"):
        path = logs / name
        if path.exists():
            for before, after in _FILTERED.findall(path.read_text(encoding="utf-8", errors="replace")):
                dropped += int(before) - int(after)
    return {"dropped_rows": dropped} if dropped else {}


def _template(spec: JobSpec) -> str | None:
    """swift's --template; None lets swift take the model's registered template (uft's `model`)."""
    if spec.template.name != "model":
        return TEMPLATES[spec.template.name]
    if spec.method.name == "pt":
        return "dummy"  # plain text renders no chat
    if Path(spec.model.path).exists():
        raise SpecError("ms-swift needs a template for a local model", [Problem(
            "template", "`model` (the tokenizer's own template) leaves the choice to swift, which knows only "
            "registered hub models", f"name one of {', '.join(TEMPLATES)}")])
    return None


def _loss_scale(spec: JobSpec) -> str:
    """uft's masking: every assistant turn carries loss (or every token with train_on_prompt / pt)."""
    if spec.data.train_on_prompt or spec.method.name == "pt":
        return "all"
    return "last_round" if spec.method.name in RLHF_TYPES else "default"


def _init_weights(init: str, iters: int | None) -> str:
    if init == "pissa":
        return "pissa" if not iters else f"pissa_niter_{iters}"
    return "true"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _seconds(elapsed: str | None) -> float | None:
    """swift logs elapsed time as e.g. '1h 2m 3s'."""
    if not elapsed:
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([dhms])", str(elapsed))
    return float(sum(int(n) * units[u] for n, u in parts)) if parts else None


def _mb(gib: Any) -> float | None:
    try:
        return round(float(gib) * 1024, 1)
    except (TypeError, ValueError):
        return None
