"""The LLaMA-Factory backend: a native `llamafactory-cli train native/train.yaml` run in its own environment.

LLaMA-Factory 0.9.5 pins transformers <= 5.6, trl <= 0.24, datasets <= 4.0 and peft 0.18.x, so it runs in a
uv environment made from `requirements.lock` beside this file. `translate` writes what a LLaMA-Factory user
would write: `train.yaml` with LLaMA-Factory's own keys (every setting explicit: its defaults differ from
other frameworks, e.g. lora_alpha = 2 x rank and gradient checkpointing on), and `data/dataset_info.json`
with the data in its sharegpt/alpaca formats (as Parquet files, whose column types no loader guesses).

Hosts with a CUDA GPU get `requirements.lock` (PyPI's torch, a CUDA build, with its nvidia-* wheels). The
CPU lock, `requirements-cpu.lock` (PyTorch's `+cpu` torch and torchaudio, no nvidia wheels, no
torchvision), is not in the repo yet: LLaMA-Factory imports torchaudio in its data pipeline, PyPI's
torchaudio is a CUDA build that fails to load beside a CPU torch, and the CPU torchaudio is only on the
PyTorch CPU index, which the machine these locks were made on cannot reach (nor can CI's, so a CPU lock
also needs torchaudio's `+cpu` wheel in a folder of UV_FIND_LINKS there). Until it exists every host gets
`requirements.lock`. Refresh the locks (and make the CPU one where the index is reachable) with
    scripts/lock.sh llamafactory
which compiles `requirements.in` and then `requirements-cpu.in` against the first lock's versions (uv pip
compile --generate-hashes; a `+cpu` wheel from a folder in UV_FIND_LINKS, else the PyTorch CPU index).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from unified_ft import envs
from unified_ft.errors import Problem, SpecError
from unified_ft.hf_trainer import (
    OPTIMIZER,
    PRECISION,
    SCHEDULE,
    SEEDS,
    copy_trained,
    pick,
    record_shapes,
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
    problems_of,
    run_native_check,
)
from unified_ft.redact import redact_data
from unified_ft.runs import read_jsonl, write_jsonl
from unified_ft.spec import LORAPLUS_LR_EMBEDDING, JobSpec

HERE = Path(__file__).resolve().parent
RECIPE = envs.EnvRecipe(
    backend="llamafactory", lock=HERE / "requirements.lock", cpu_lock=HERE / "requirements-cpu.lock",
    imports=("llamafactory",),
    versions_of=("llamafactory", "torch", "torchvision", "transformers", "trl", "peft", "datasets", "accelerate"))

#: uft template names -> LLaMA-Factory `template` values (their renderings match uft's Jinja ones).
TEMPLATES = {"chatml": "chatml", "qwen": "qwen", "qwen2_5": "qwen", "llama3": "llama3", "mistral": "mistral",
             "gemma": "gemma", "phi3": "phi", "alpaca": "alpaca"}
#: Default system prompts that differ from LLaMA-Factory's template of the same family, written explicitly
#: (LLaMA-Factory's `qwen` carries Qwen2.5's "You are Qwen, created by Alibaba Cloud..." prompt).
DEFAULT_SYSTEM = {"qwen": "You are a helpful assistant."}
#: LLaMA-Factory templates that render exactly like a uft template (for imports).
TEMPLATE_ALIASES = {"qwen3_nothink": "chatml"}
STAGES = {"sft": "sft", "pt": "pt", "dpo": "dpo", "orpo": "dpo", "simpo": "dpo", "kto": "kto", "rm": "rm"}
PT_TEMPLATE = "default"
_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)
_NO_TOKENIZER_TEMPLATE = "LLaMA-Factory renders chats with its own templates: name one (chatml, qwen, llama3, ...)"

CAPABILITIES: dict[str, Capability] = {
    "method.sft": NATIVE, "method.pt": NATIVE, "method.dpo": NATIVE,
    "method.orpo": Capability("native", "stage dpo with pref_loss orpo"),
    "method.simpo": Capability("native", "stage dpo with pref_loss simpo"),
    "method.cpo": Capability("unsupported", "LLaMA-Factory has no CPO loss (its simpo and orpo are close relatives)"),
    "method.kto": Capability("native", "preference pairs become unpaired rows with kto_tag true/false"),
    "method.rm": NATIVE,
    "method.ppo": Capability("unsupported", "needs a reward model run first; not translated yet"),
    "method.grpo": Capability("unsupported", "LLaMA-Factory has no GRPO stage"),
    "adapter.lora": NATIVE, "adapter.dora": NATIVE, "adapter.rslora": NATIVE, "adapter.full": NATIVE,
    "adapter.loraplus": Capability("native", "loraplus_lr_ratio"),
    "adapter.pissa": Capability("native", "pissa_init, with pissa_convert to a plain LoRA adapter"),
    "adapter.freeze": Capability("native", "finetuning_type freeze, freeze_trainable_layers"),
    "adapter.qlora": _GPU,
    **{f"adapter.{a}": Capability("unsupported", "LLaMA-Factory has no prompt-learning adapters")
       for a in ("prefix", "prompt", "p_tuning")},
    **{f"optimizer.{o}": NATIVE for o in ("adamw_torch", "sgd", "adafactor")},
    "optimizer.adamw_8bit": _GPU, "optimizer.paged_adamw_8bit": _GPU,
    "precision.fp32": NATIVE, "precision.bf16": NATIVE, "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "mixed precision fp16 needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": NATIVE for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": NATIVE for t in TEMPLATES},
    "template.model": Capability("unsupported", _NO_TOKENIZER_TEMPLATE),
    "template.jinja": Capability("unsupported", _NO_TOKENIZER_TEMPLATE),
    "data.packing": NATIVE, "data.train_on_prompt": NATIVE,
    "data.mixing": Capability("native", "mixed by uft's data step before LLaMA-Factory sees it"),
    "training.gradient_checkpointing": NATIVE,
    "report_to.tensorboard": NATIVE, "report_to.wandb": NATIVE,
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("emulated", "LLaMA-Factory cannot read GGUF: uft dequantizes it once into a cached "
                             "safetensors folder"),
    **distributed_capabilities("LLaMA-Factory", {
        "distributed.ddp": Capability("native", "FORCE_TORCHRUN torchrun"),
        "distributed.multi_node": Capability("native", "NNODES, NODE_RANK"),
        "distributed.deepspeed": Capability("native", "deepspeed: the ds_z<stage>[_offload]_config.json LLaMA-Factory "
                                            "0.9.5 ships (ZeRO 0, 2, 3), FORCE_TORCHRUN; DeepSpeed needs CUDA",
                                            needs_gpu=True),
        "distributed.fsdp2": Capability("unsupported", "LLaMA-Factory 0.9.5 runs FSDP2 only as `accelerate launch "
                                        "--config_file fsdp2_config.yaml src/train.py`; `llamafactory-cli train` "
                                        "starts plain torchrun, which reads no accelerate config")},
        pending=("elastic",)),
    **loss_type_capabilities({"dpo": ("sigmoid", "hinge", "ipo", "kto_pair"), "kto": ("kto",)}, "LLaMA-Factory 0.9.5"),
}

#: Column types of the data files. LLaMA-Factory loads JSON through `datasets`, whose readers guess types
#: (pyarrow turns an all-date column into timestamps, pandas can turn "007" into 7.0); Parquet carries its
#: schema, so text stays text.
_MESSAGE = {"role": "string", "content": "string"}
COLUMN_TYPES = {"messages": [_MESSAGE], "chosen": _MESSAGE, "rejected": _MESSAGE, "text": "string",
                "tools": "string", "kto_tag": "bool"}

_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
         "system_tag": "system", "observation_tag": "tool"}


class LlamaFactoryBackend(envs.OwnEnvironment):
    """LLaMA-Factory 0.9.5, in its own uv environment."""

    name = "llamafactory"
    capabilities = CAPABILITIES
    recipe = RECIPE

    def import_native(self, path: Path, **options: Any) -> ImportResult:
        """A LLaMA-Factory training YAML as a spec; `dataset_info` names its dataset_info.json."""
        from .importer import import_config

        return import_config(path, **importer_options(self.name, options, ("dataset_info",)))

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write train.yaml, data/dataset_info.json and the data files into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        data_dir = out_dir / "data"
        data_dir.mkdir(exist_ok=True)
        config = native_config(spec, has_eval=data.eval_path is not None)
        sources = {"uft_train": ("train.parquet", data.train_path), "uft_eval": ("eval.parquet", data.eval_path)}
        info, files = {}, []
        for name, (file_name, source) in sources.items():
            if source is not None:
                has_tools = _write_dataset(spec, Path(source), data_dir / file_name)
                info[name] = dataset_entry(spec, file_name, has_tools)
                files.append(data_dir / file_name)
        (data_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        config_path = out_dir / "train.yaml"
        header = (f"# LLaMA-Factory job written by uft for spec {spec.name!r}.\n"
                  "# Run it with LLaMA-Factory alone: llamafactory-cli train train.yaml\n")
        config_path.write_text(header + yaml.safe_dump(redact_data(config), sort_keys=False, allow_unicode=True),
                               encoding="utf-8")
        files += [data_dir / "dataset_info.json", config_path]
        ds = deepspeed_config(spec)
        if ds:  # the shipped JSON beside train.yaml, which names it relative to the job folder
            files.append(Path(shutil.copyfile(HERE / ds, out_dir / ds)))
        cli = envs.env_dir(RECIPE) / "bin" / "llamafactory-cli"
        argv = [str(cli), "train", "train.yaml"]
        nodes = [NodeLaunch(r, argv, launch_env(spec, r)) for r in range(spec.distributed.nodes)]
        return NativeJob(native_dir=out_dir, files=files, argv=argv, nodes=nodes if len(nodes) > 1 else [],
                         env={"DISABLE_VERSION_CHECK": "1", "TOKENIZERS_PARALLELISM": "false",
                              **launch_env(spec)}, cwd=out_dir,
                         log_file=out_dir / "output" / "trainer_log.jsonl")

    def setting_problems(self, spec: JobSpec) -> list[Problem]:
        """A ZeRO stage / offload for which LLaMA-Factory ships no DeepSpeed config."""
        return problems_of(lambda: deepspeed_config(spec))

    def check(self, job: NativeJob) -> None:
        """LLaMA-Factory's own argument parser on train.yaml, inside its environment, without training."""
        program = ("import yaml\nfrom llamafactory.hparams import get_train_args\n"
                   "get_train_args(yaml.safe_load(open('train.yaml', encoding='utf-8')))")
        run_native_check(self.name, [str(envs.env_python(envs.create_env(RECIPE))), "-c", program], job.native_dir)

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A trainer_log.jsonl row as a standard metrics row (LLaMA-Factory logs no grad norm or tokens)."""
        if "current_steps" not in row or "loss" not in row:
            return None
        return {"step": row["current_steps"], "epoch": row.get("epoch"), "loss": row.get("loss"),
                "learning_rate": row.get("lr"), "grad_norm": None, "tokens": None,
                "elapsed_s": _seconds(row.get("elapsed_time")), "peak_memory_mb": None,
                "max_steps": row.get("total_steps")}

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs:
        """trainer_log.jsonl -> metrics.jsonl; the adapter (or full model) in output/ -> adapter/ (or model/)."""
        output = job.native_dir / "output"
        rows = [r for r in (self.progress(x) for x in read_jsonl(output / "trainer_log.jsonl")) if r]
        for row in rows:
            row.pop("max_steps", None)
        metrics_path = write_jsonl(run_dir / "metrics.jsonl", rows)
        adapter_dir = copy_trained(output, run_dir, ("checkpoint-*", "runs", "pissa_*", "*.jsonl", "*_results.json",
                                                     "trainer_state.json"))
        converted = output / "pissa_converted"  # a PiSSA adapter as plain LoRA on the original base
        if adapter_dir and (converted / "adapter_config.json").exists():
            shutil.copytree(converted, adapter_dir, dirs_exist_ok=True)
        return RunOutputs(adapter_dir=adapter_dir, metrics_path=metrics_path, final=final_metrics(rows),
                          versions={})  # the run's own versions: launch reads them back


def launch_env(spec: JobSpec, node_rank: int = 0) -> dict[str, str]:
    """LLaMA-Factory's own way to go multi-process: FORCE_TORCHRUN and torchrun's variables (none for one)."""
    d = spec.distributed
    if d.single_process:
        return {}
    return {"FORCE_TORCHRUN": "1", **torchrun_env(d, node_rank)}


#: The DeepSpeed configs LLaMA-Factory 0.9.5 ships in examples/deepspeed/ (copied verbatim beside this file), by
#: (zero_stage, offload): there is no ZeRO-1 one, and stage 3 offloads parameters with the optimizer.
DEEPSPEED_CONFIGS = {(0, "none"): "ds_z0_config.json", (2, "none"): "ds_z2_config.json",
                     (2, "optimizer"): "ds_z2_offload_config.json", (3, "none"): "ds_z3_config.json",
                     (3, "params"): "ds_z3_offload_config.json"}


def deepspeed_config(spec: JobSpec) -> str | None:
    """The shipped DeepSpeed config for strategy deepspeed (None for any other); a stage or offload LLaMA-Factory
    has none for is an error naming it."""
    d = spec.distributed
    if d.strategy != "deepspeed":
        return None
    name = DEEPSPEED_CONFIGS.get((d.zero_stage, d.offload))
    if name is None:
        have = ", ".join(f"zero_stage {z}" + (f" + offload {o}" if o != "none" else "") for z, o in DEEPSPEED_CONFIGS)
        stage_known = any(z == d.zero_stage for z, _ in DEEPSPEED_CONFIGS)
        where = "distributed.offload" if stage_known else "distributed.zero_stage"
        raise SpecError("LLaMA-Factory cannot run this DeepSpeed setting", [Problem(
            where, f"LLaMA-Factory 0.9.5 ships no DeepSpeed config for zero_stage {d.zero_stage} with offload "
            f"{d.offload}", f"use one it has: {have}; or backend trl / swift")])
    return name


def native_config(spec: JobSpec, has_eval: bool) -> dict[str, Any]:
    """LLaMA-Factory's train.yaml for a spec: every setting explicit, in LLaMA-Factory's own key names."""
    t, a, method = spec.training, spec.adapter, spec.method.name
    args = trainer_arguments(spec)
    config: dict[str, Any] = {
        "model_name_or_path": spec.model.path,
        "trust_remote_code": spec.model.trust_remote_code,
        "stage": STAGES[method],
        "do_train": True,
        "finetuning_type": {"full": "full", "freeze": "freeze"}.get(a.type, "lora"),
    }
    if spec.model.revision:
        config["model_revision"] = spec.model.revision
    if a.type in ("lora", "qlora", "dora"):
        targets = a.target_modules
        config.update({"lora_rank": a.r, "lora_alpha": a.alpha, "lora_dropout": a.dropout,
                       "lora_target": "all" if targets == "all-linear" else ",".join(targets),
                       "use_rslora": a.rslora, "use_dora": a.use_dora,
                       "loraplus_lr_ratio": a.loraplus_lr_ratio, "loraplus_lr_embedding": LORAPLUS_LR_EMBEDDING,
                       "pissa_init": a.init == "pissa"})
        if a.init == "pissa":  # LLaMA-Factory's -1 means exact SVD; converted so the adapter fits the original base
            config.update({"pissa_iter": a.pissa_iters or -1, "pissa_convert": True})
    if a.type == "qlora":
        config["quantization_bit"] = a.bits
    if a.type == "freeze":
        config["freeze_trainable_layers"] = a.trainable_layers
    if method in ("dpo", "orpo", "simpo"):
        config.update({"pref_beta": spec.method.beta, "pref_loss": method if method != "dpo" else
                       (spec.method.loss_type or "sigmoid")})
    if method == "simpo":
        config.update({"simpo_gamma": spec.method.gamma, "pref_ftx": spec.method.nll_weight})
    if method == "kto":
        config["pref_beta"] = spec.method.beta
    config.update({
        "dataset": "uft_train",
        "dataset_dir": "data",
        "template": _template(spec),
        **_default_system(spec),
        "cutoff_len": spec.data.max_length,
        "train_on_prompt": spec.data.train_on_prompt,
        "mask_history": False,  # every assistant turn carries loss, as in uft's canonical masking
        "packing": spec.data.packing,
        "disable_shuffling": True,  # the rows' order is uft's (data.shuffle), read as written
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "output_dir": "output",
        "logging_steps": args["logging_steps"],
        "save_strategy": "steps" if t.save_steps else "no",
        "plot_loss": False,
        "report_to": args["report_to"],
        **pick(args, (*SCHEDULE, *OPTIMIZER)),
        "disable_gradient_checkpointing": not t.gradient_checkpointing,  # LLaMA-Factory turns it on by default
        **pick(args, (*PRECISION, *SEEDS)),
    })
    if t.save_steps:
        config["save_steps"] = t.save_steps
    ds = deepspeed_config(spec)
    if ds:
        config["deepspeed"] = ds
    merge_passthrough(spec, "llamafactory", config)
    return config


def _template(spec: JobSpec) -> str:
    """LLaMA-Factory always wants a template; plain-text pretraining renders no chat, so `default` serves."""
    if spec.method.name == "pt" and spec.template.name == "model":
        return PT_TEMPLATE
    return TEMPLATES[spec.template.name]


def _default_system(spec: JobSpec) -> dict[str, str]:
    """The spec's system prompt (uft's data step has put it in every row already; written for a faithful
    eject), else uft's default for templates whose LLaMA-Factory twin has a different one."""
    if spec.template.system is not None:
        return {"default_system": spec.template.system}
    return {"default_system": DEFAULT_SYSTEM[spec.template.name]} if spec.template.name in DEFAULT_SYSTEM else {}


def dataset_entry(spec: JobSpec, file_name: str, has_tools: bool = False) -> dict[str, Any]:
    """The dataset_info.json entry for a converted file."""
    if spec.record_kind == "text":
        return {"file_name": file_name, "columns": {"prompt": "text"}}
    entry: dict[str, Any] = {"file_name": file_name, "formatting": "sharegpt",
                             "columns": {"messages": "messages", **({"tools": "tools"} if has_tools else {})},
                             "tags": dict(_TAGS)}
    if spec.method.name == "kto":
        entry["columns"]["kto_tag"] = "kto_tag"
    elif spec.record_kind == "preference":
        entry["ranking"] = True
        entry["columns"].update({"chosen": "chosen", "rejected": "rejected"})
    return entry


def _write_dataset(spec: JobSpec, source: Path, target: Path) -> bool:
    """Canonical records in LLaMA-Factory's sharegpt (role/content tags) or plain-text shapes, as Parquet;
    True if any row carries tools."""
    seen: list[bool] = []  # noted while the rows are written: a second pass read the whole file again

    def rows() -> Iterator[dict[str, Any]]:
        for row in llamafactory_rows(spec, source):
            if not seen and "tools" in row:
                seen.append(True)
            yield row
    write_present_columns(target, rows, COLUMN_TYPES)
    return bool(seen)


def llamafactory_rows(spec: JobSpec, source: Path) -> Iterator[dict[str, Any]]:
    """Canonical records in LLaMA-Factory's sharegpt (role/content tags) or plain-text shapes."""
    for shape, row in record_shapes(spec, read_jsonl(source), "LLaMA-Factory", source):
        tools = {"tools": row["tools"]} if row.get("tools") else {}
        if shape == "text":
            yield {"text": row["text"]}
        elif shape == "chat":
            yield {"messages": row["messages"], **tools}
        elif shape == "unpaired":  # each answer with a thumbs-up or thumbs-down
            yield {"messages": [*row["prompt"], *row["completion"]], "kto_tag": row["label"], **tools}
        else:
            yield {"messages": row["prompt"], "chosen": row["chosen"][0], "rejected": row["rejected"][0]}


def _seconds(elapsed: str | None) -> float | None:
    """LLaMA-Factory logs elapsed time as H:MM:SS."""
    if not elapsed or not re.fullmatch(r"\d+:\d{2}:\d{2}", elapsed):
        return None
    h, m, s = (int(x) for x in elapsed.split(":"))
    return float(h * 3600 + m * 60 + s)
