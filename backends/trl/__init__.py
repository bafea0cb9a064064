"""The trl backend: Hugging Face trl + peft, run with the current interpreter (the embedded default).

`translate` writes what a trl user would write by hand: `config.yaml` (trl's own SFTConfig/DPOConfig
keys, peft's LoraConfig keys), the data in trl's conversational JSONL shapes, and `train.py` (a copy of
`runner.py`), so `python train.py config.yaml` repeats the run with trl alone.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from unified_ft import chat_tokens, modeling, runner_support
from unified_ft.data.records import as_unpaired
from unified_ft.hf_trainer import (
    OPTIMIZER,
    PRECISION,
    SEEDS,
    collect_runner_output,
    copy_runner,
    pick,
    trainer_arguments,
)
from unified_ft.launchers import ACCELERATE_CONFIG, accelerate_config, accelerate_launch
from unified_ft.modeling import model_config
from unified_ft.plugin import (
    AUTO_PRECISION,
    NATIVE,
    BackendBase,
    Capability,
    EnvStatus,
    ImportResult,
    NativeJob,
    NodeLaunch,
    RunOutputs,
    distributed_capabilities,
    importer_options,
    loss_type_capabilities,
    merge_passthrough,
    module_available,
    run_native_check,
)
from unified_ft.redact import redact_data
from unified_ft.runs import read_jsonl, write_jsonl
from unified_ft.spec import LORAPLUS_LR_EMBEDDING, LOSS_TYPES, JobSpec
from unified_ft.templates import chat_template_text

RUNNER = Path(__file__).with_name("runner.py")
#: uft's standalone helpers the runner imports; copied beside it so the native folder runs without uft.
HELPERS = (Path(chat_tokens.__file__), Path(modeling.__file__), Path(runner_support.__file__))
STACK = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
INSTALL_HINT = "pip install torch==2.13.0 && pip install 'unified_ft[trl]'  (from a checkout: pip install -e '.[trl]')"

_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)

CAPABILITIES: dict[str, Capability] = {
    **{f"method.{m}": NATIVE for m in ("sft", "pt", "dpo", "kto", "rm")},
    "method.orpo": Capability("native", "trl.experimental.orpo"),
    "method.cpo": Capability("native", "trl.experimental.cpo"),
    "method.simpo": Capability("native", "trl.experimental.cpo with loss_type simpo"),
    "method.ppo": Capability("unsupported", "trl 1.x keeps PPO outside its stable trainers"),
    "method.grpo": Capability("unsupported", "needs reward functions, which the spec does not model yet"),
    **{f"adapter.{a}": NATIVE for a in ("lora", "dora", "full", "prefix", "prompt", "p_tuning")},
    "adapter.qlora": _GPU,
    "adapter.freeze": Capability("emulated", "uft's runner turns off gradients outside the last N layers"),
    "adapter.rslora": NATIVE,
    "adapter.loraplus": Capability("native", "peft's create_loraplus_optimizer"),
    "adapter.pissa": Capability("native", "peft init_lora_weights pissa; the adapter is converted to plain LoRA"),
    "adapter.dora": NATIVE,
    **{f"optimizer.{o}": NATIVE for o in ("adamw_torch", "sgd", "adafactor")},
    "optimizer.adamw_8bit": _GPU,
    "optimizer.paged_adamw_8bit": _GPU,
    **{f"precision.{p}": NATIVE for p in ("fp32", "bf16")},
    "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "mixed precision fp16 needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": NATIVE for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": NATIVE for t in ("model", "chatml", "qwen", "qwen2_5", "llama3", "mistral", "gemma",
                                         "phi3", "alpaca", "jinja")},
    "data.packing": NATIVE,
    "data.train_on_prompt": NATIVE,
    "data.mixing": Capability("native", "mixed by uft's data step before trl sees it"),
    "training.gradient_checkpointing": NATIVE,
    "report_to.tensorboard": NATIVE,
    "report_to.wandb": NATIVE,
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("native", "transformers dequantizes GGUF on load"),
    **distributed_capabilities("trl", {"distributed.ddp": Capability("native", "accelerate launch; gloo on CPU"),
                                       "distributed.multi_node": Capability("native", "accelerate launch per node"),
                                       "distributed.deepspeed": Capability(
                                           "native", "accelerate launch --config_file (DEEPSPEED); DeepSpeed needs "
                                           "CUDA", needs_gpu=True),
                                       "distributed.fsdp2": Capability(
                                           "native", "accelerate launch --config_file (FSDP, fsdp_version 2); "
                                           "needs CUDA", needs_gpu=True)},
                               pending=("elastic",)),
    **loss_type_capabilities({"dpo": tuple(x for x in LOSS_TYPES["dpo"] if x != "kto_pair"), "kto": LOSS_TYPES["kto"]},
                             "trl 1.16"),
}


class TrlBackend(BackendBase):
    """Plain Hugging Face trl, in the current Python environment."""

    name = "trl"
    capabilities = CAPABILITIES

    def environment(self) -> EnvStatus:
        missing = [m for m in STACK if not module_available(m)]
        if missing:
            return EnvStatus(False, f"missing in this environment: {', '.join(missing)}", install_hint=INSTALL_HINT)
        from importlib.metadata import version

        versions = {m: version(m) for m in STACK}
        return EnvStatus(True, f"current environment ({sys.executable})", versions)

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write config.yaml, the data files and train.py into `out_dir`; return the command."""
        out_dir.mkdir(parents=True, exist_ok=True)
        config = native_config(spec, has_eval=data.eval_path is not None)
        files = [write_trl_data(spec, Path(data.train_path), out_dir / "train.jsonl")]
        if data.eval_path is not None:
            files.append(write_trl_data(spec, Path(data.eval_path), out_dir / "eval.jsonl"))
        config_path = out_dir / "config.yaml"
        argv = launch_argv(spec, ["train.py", "config.yaml"])  # node 0's
        header = (f"# trl job written by uft for spec {spec.name!r}.\n"
                  f"# Run it with trl alone: {shown_command(argv)}\n")
        config_path.write_text(header + yaml.safe_dump(redact_data(config), sort_keys=False, allow_unicode=True),
                               encoding="utf-8")
        files += [config_path, *copy_runner(RUNNER, HELPERS, out_dir), *write_accelerate_config(spec, out_dir)]
        script = ["train.py", "config.yaml"]
        nodes = [NodeLaunch(r, launch_argv(spec, script, r)) for r in range(spec.distributed.nodes)]
        return NativeJob(native_dir=out_dir, files=files, argv=argv, nodes=nodes if len(nodes) > 1 else [],
                         env={"TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}, cwd=out_dir,
                         log_file=out_dir / "output" / "trainer_log.jsonl")

    def check(self, job: NativeJob) -> None:
        """trl's own config class built from config.yaml (what train.py would build), without training."""
        program = ("import yaml, train\ncfg = yaml.safe_load(open('config.yaml', encoding='utf-8'))\n"
                   "train.trainer_classes(cfg['method'])[0](**cfg['trainer'])")
        run_native_check(self.name, [sys.executable, "-c", program], job.native_dir)

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A native log row as a standard metrics row (or a start event), None for anything else."""
        if row.get("event") == "start":
            return {"event": "start", "max_steps": row.get("max_steps")}
        if "loss" not in row and "eval_loss" not in row:
            return None
        out = {"step": row.get("step"), "epoch": row.get("epoch"), "loss": row.get("loss"),
               "learning_rate": row.get("learning_rate"), "grad_norm": row.get("grad_norm"),
               "tokens": row.get("num_tokens"), "elapsed_s": row.get("elapsed_s"),
               "peak_memory_mb": row.get("peak_memory_mb")}
        if "eval_loss" in row:
            out["eval_loss"] = row["eval_loss"]
        return out

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs:
        """trainer_log.jsonl -> metrics.jsonl; output/final -> adapter/ (peft) or model/ (full weights)."""
        return collect_runner_output(self.progress, run_dir, job)

    def import_native(self, path: Path, **options: Any) -> ImportResult:
        """A trl job as a spec: trl's CLI YAML (`method`: which trainer it is for, default sft), a shell script or
        command line that runs trl (`trl dpo ...`, `accelerate launch trl/scripts/sft.py ...`), or the config.yaml
        of a trl job uft translated."""
        from .importer import import_trl

        return import_trl(path, **importer_options(self.name, options, ("method",)))


def launch_argv(spec: JobSpec, script: list[str], node_rank: int = 0) -> list[str]:
    """One process: the runner itself. Several: accelerate's launcher (trl's own way to go multi-process), with
    every setting on its command line (and, for DeepSpeed or FSDP2, the job's accelerate_config.yaml)."""
    d = spec.distributed
    if d.single_process:
        return [sys.executable, *script]
    return accelerate_launch(d, node_rank, script, _mixed_precision(spec),
                             [sys.executable, "-m", "accelerate.commands.launch"])


def _mixed_precision(spec: JobSpec) -> str:
    return {"bf16": "bf16", "fp16": "fp16"}.get(spec.training.precision, "no")


def write_accelerate_config(spec: JobSpec, out_dir: Path) -> list[Path]:
    """accelerate_config.yaml for a DeepSpeed or FSDP2 run (accelerate reads those plugins from a config file);
    nothing for ddp, whose launch line holds every setting."""
    if spec.distributed.strategy not in ("deepspeed", "fsdp2"):
        return []
    path = out_dir / ACCELERATE_CONFIG
    path.write_text(f"# accelerate config written by uft for spec {spec.name!r} "
                    f"(distributed.strategy {spec.distributed.strategy}).\n"
                    + yaml.safe_dump(accelerate_config(spec.distributed, _mixed_precision(spec)), sort_keys=False),
                    encoding="utf-8")
    return [path]


def shown_command(argv: list[str]) -> str:
    """The command as a person types it (`python train.py ...`, `accelerate launch ... train.py ...`); uft's
    importer reads the process count back from it (importing this folder is a round trip)."""
    words = list(argv)
    if words[:3] == [sys.executable, "-m", "accelerate.commands.launch"]:
        words[:3] = ["accelerate", "launch"]
    elif words[:1] == [sys.executable]:
        words[0] = "python"
    return shlex.join(words)


def native_config(spec: JobSpec, has_eval: bool) -> dict[str, Any]:
    """The trl config for a spec: every setting explicit, named as trl/peft name it."""
    a, method = spec.adapter, spec.method.name
    trainer = trainer_settings(spec)
    passthrough = merge_passthrough(spec, "trl", trainer)
    return {
        "method": method,
        "model": model_config(spec, head="sequence_classification" if method == "rm" else "causal_lm"),
        "chat_template": chat_template_text(spec),
        "data": {"train": "train.jsonl", "eval": "eval.jsonl" if has_eval else None,
                 "train_on_prompt": spec.data.train_on_prompt},
        "peft": _peft(spec),
        "loraplus": ({"lr_ratio": a.loraplus_lr_ratio, "lr_embedding": LORAPLUS_LR_EMBEDDING}
                     if getattr(a, "loraplus_lr_ratio", None) is not None else None),
        "freeze": {"trainable_layers": a.trainable_layers} if a.type == "freeze" else None,
        "quantization": {"bits": a.bits} if a.type == "qlora" else None,
        "passthrough": passthrough,
        "trainer": trainer,
    }


def trainer_settings(spec: JobSpec) -> dict[str, Any]:
    """trl's trainer config (SFTConfig, DPOConfig, ...) for a spec, every setting explicit; unsloth trains
    with trl's trainers and takes the same."""
    t, method = spec.training, spec.method.name
    args = trainer_arguments(spec)
    trainer: dict[str, Any] = {
        "output_dir": "output",
        **pick(args, ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type")),
        "warmup_steps": args["warmup_ratio"],  # transformers 5 reads a float below 1 as a ratio of total steps
        "per_device_train_batch_size": args["per_device_train_batch_size"],
        "per_device_eval_batch_size": args["per_device_train_batch_size"],
        **pick(args, ("gradient_accumulation_steps", "gradient_checkpointing", *PRECISION, *OPTIMIZER, *SEEDS,
                      "logging_steps")),
        "save_strategy": "steps" if t.save_steps else "no",
        "report_to": args["report_to"],
        "eval_strategy": "no",
        "max_length": spec.data.max_length,
    }
    if t.save_steps:
        trainer["save_steps"] = t.save_steps
    if method in ("sft", "pt"):
        trainer["packing"] = spec.data.packing
    if method == "pt":
        trainer["dataset_text_field"] = "text"
        trainer["completion_only_loss"] = False
    beta, loss_type = getattr(spec.method, "beta", None), getattr(spec.method, "loss_type", None)
    if beta is not None:
        trainer["beta"] = beta
    if loss_type is not None:
        trainer["loss_type"] = loss_type
    if method in ("simpo", "cpo"):
        trainer.update({"loss_type": "simpo" if method == "simpo" else "sigmoid", "cpo_alpha": spec.method.nll_weight})
        if method == "simpo":
            trainer["simpo_gamma"] = spec.method.gamma
    return trainer


def pissa_init(iters: int | None) -> str:
    """peft's init_lora_weights value: exact SVD, or fast SVD with `iters` iterations."""
    return "pissa" if not iters else f"pissa_niter_{iters}"


def _peft(spec: JobSpec) -> dict[str, Any] | None:
    a = spec.adapter
    task = "SEQ_CLS" if spec.method.name == "rm" else "CAUSAL_LM"
    if a.type in ("lora", "qlora", "dora"):
        return {"type": "lora", "task_type": task, "r": a.r, "lora_alpha": a.alpha, "lora_dropout": a.dropout,
                "target_modules": a.target_modules, "use_rslora": a.rslora, "use_dora": a.use_dora, "bias": "none",
                "init_lora_weights": pissa_init(a.pissa_iters) if a.init == "pissa" else True}
    if a.type == "prefix":
        return {"type": "prefix", "task_type": task, "num_virtual_tokens": a.num_virtual_tokens}
    if a.type == "prompt":
        return {"type": "prompt", "task_type": task, "num_virtual_tokens": a.num_virtual_tokens}
    if a.type == "p_tuning":
        return {"type": "p_tuning", "task_type": task, "num_virtual_tokens": a.num_virtual_tokens}
    return None


def write_trl_data(spec: JobSpec, source: Path, target: Path) -> Path:
    """Canonical records are already trl's conversational shapes; KTO wants unpaired rows."""
    if spec.method.name != "kto" or spec.record_kind == "unpaired":
        shutil.copyfile(source, target)
        return target
    return write_jsonl(target, [r for row in read_jsonl(source) for r in as_unpaired(row)])
