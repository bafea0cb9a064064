"""The unsloth backend: unsloth's FastLanguageModel and trl's trainers, in unsloth's own environment.

unsloth 2026.10.9 admits transformers <= 5.17 (nine releases excluded), trl <= 1.15, datasets < 5 and torch
< 2.15, so it runs in a uv environment made from `requirements.lock` beside this file. It has no config-file
CLI for fine-tuning: `translate` writes `unsloth_job.json` (every unsloth setting explicit) and `train.py` (a
copy of `runner.py`), which runs with unsloth alone: `python train.py unsloth_job.json`.

unsloth's own defaults differ from everyone's, and each is written explicitly: a 4-bit base (load_in_4bit
True), bf16 where it can, lora_alpha 16, gradient checkpointing "unsloth" (offloaded), random_state 3407,
model names swapped for unsloth's own hub copies (use_exact_model_name False), a "fixed" tokenizer, and
whole-sequence loss on its text path. uft gives it the chats already tokenized with uft's canonical masks
(chat_tokens.py), so the supervised tokens are the ones every backend trains on (and no EOS is doubled by
trl's text path). On CPU, unsloth also rewrites `adamw_torch` as the fused AdamW and turns bf16 off where the
CPU lacks it; the runner puts the first back and stops on the second.

Hosts with a CUDA GPU get `requirements.lock` (PyPI's CUDA torch 2.14.1 with torchvision 0.29.1: unsloth's
import refuses a torch/torchvision pair that does not belong together). Hosts without one get
`requirements-cpu.lock`: PyTorch's `torch==2.13.0+cpu` and no torchvision (unsloth's check passes when it is
absent; PyPI's torchvision is built for CUDA torch and fails to import beside a CPU one). There unsloth
prints "no GPU found, training on CPU" and trains text LoRA and full fine-tunes with trl's SFTTrainer;
4-bit loading, packing and the preference trainers need a GPU. unsloth refuses its CPU fallback when an
NVIDIA driver is present but torch has no CUDA, so a CPU build on a GPU host runs with CUDA_VISIBLE_DEVICES
empty. Refresh both locks with `scripts/lock.sh unsloth`.

Beyond one GPU, unsloth 2026.10 runs DDP under torchrun/accelerate, its own FSDP2 with UNSLOTH_FSDP2=1 and
tensor parallelism with UNSLOTH_TP_SIZE; it refuses pipeline parallelism (`DISTRIBUTED`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unified_ft import chat_tokens, envs, runner_support
from unified_ft.backends.trl import TrlBackend, pissa_init, trainer_settings, write_trl_data
from unified_ft.errors import Problem, SpecError
from unified_ft.hf_trainer import copy_runner, resolved_precision
from unified_ft.plugin import (
    AUTO_PRECISION,
    NATIVE,
    Capability,
    NativeJob,
    distributed_capabilities,
    loss_type_capabilities,
    merge_passthrough,
    run_native_check,
)
from unified_ft.redact import redact_data
from unified_ft.spec import LORAPLUS_LR_EMBEDDING, LOSS_TYPES, JobSpec
from unified_ft.templates import chat_template_text

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
JOB_FILE = "unsloth_job.json"
UNSLOTH_VERSION = "2026.10.9"
#: uft's standalone helpers the runner imports; copied beside it so the native folder runs without uft.
HELPERS = (Path(chat_tokens.__file__), Path(runner_support.__file__))
RECIPE = envs.EnvRecipe(
    backend="unsloth", lock=HERE / "requirements.lock", cpu_lock=HERE / "requirements-cpu.lock",
    imports=("unsloth",),
    versions_of=("unsloth", "unsloth_zoo", "torch", "torchvision", "transformers", "trl", "peft", "datasets",
                 "accelerate", "bitsandbytes", "xformers"))
#: How unsloth 2026.10 runs beyond one GPU (for the distributed mapping).
DISTRIBUTED = {"ddp": "torchrun or accelerate launch", "fsdp2": "UNSLOTH_FSDP2=1",
               "tensor_parallel": "UNSLOTH_TP_SIZE", "pipeline_parallel": "refused by unsloth itself"}
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: What peft's `all-linear` means for the decoder families unsloth trains: named, so the job says it.
ALL_LINEAR = {family: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
              for family in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text")}
#: Environment for every run: no statistics call to the hub (unsloth downloads a README to count installs).
BASE_ENV = {"UNSLOTH_DISABLE_STATISTICS": "1", "TOKENIZERS_PARALLELISM": "false"}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)
_PATCHED = "trl's trainer on unsloth's model (on CPU too, though unsloth's banner names SFTTrainer only)"
_NOT_PATCHED = "unsloth patches trl's SFT, DPO, ORPO and KTO trainers; use trl for this method"

CAPABILITIES: dict[str, Capability] = {
    "method.sft": NATIVE, "method.pt": NATIVE,
    **{f"method.{m}": Capability("native", _PATCHED) for m in ("dpo", "orpo", "kto")},
    **{f"method.{m}": Capability("unsupported", _NOT_PATCHED) for m in ("simpo", "cpo", "rm")},
    "method.ppo": Capability("unsupported", "trl 1.x keeps PPO outside its stable trainers"),
    "method.grpo": Capability("unsupported", "needs reward functions, which the spec does not model yet"),
    "adapter.lora": NATIVE, "adapter.full": Capability("native", "full_finetuning"), "adapter.rslora": NATIVE,
    "adapter.qlora": Capability("native", "load_in_4bit / load_in_8bit with bitsandbytes, which needs CUDA "
                                "(unsloth's CPU path loads no 4-bit base)", needs_gpu=True),
    "adapter.loraplus": Capability("native", "peft's create_loraplus_optimizer on unsloth's model"),
    "adapter.dora": Capability("native", "use_dora, through get_peft_model to peft"),
    "adapter.pissa": Capability("native", "init_lora_weights pissa; the adapter is converted to plain LoRA"),
    "adapter.freeze": Capability("unsupported", "unsloth trains LoRA or the whole model; use trl or LLaMA-Factory"),
    **{f"adapter.{a}": Capability("unsupported", "unsloth has no prompt-learning adapters")
       for a in ("prefix", "prompt", "p_tuning")},
    **{f"optimizer.{o}": NATIVE for o in ("adamw_torch", "sgd", "adafactor")},
    "optimizer.adamw_8bit": _GPU, "optimizer.paged_adamw_8bit": _GPU,
    "precision.fp32": NATIVE, "precision.bf16": NATIVE, "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "mixed precision fp16 needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": NATIVE for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": NATIVE for t in ("model", "chatml", "qwen", "qwen2_5", "llama3", "mistral", "gemma",
                                         "phi3", "alpaca", "jinja")},
    "data.packing": Capability("native", "unsloth packs only with FlashAttention; its CPU path turns packing off",
                               needs_gpu=True),
    "data.train_on_prompt": NATIVE,
    "data.mixing": Capability("native", "mixed by uft's data step before unsloth sees it"),
    "training.gradient_checkpointing": Capability("native", "use_gradient_checkpointing True (not unsloth's "
                                                  "offloaded \"unsloth\" mode, so every backend recomputes alike)"),
    "report_to.tensorboard": NATIVE, "report_to.wandb": NATIVE,
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("emulated", "unsloth cannot read GGUF: uft dequantizes it once into a cached "
                             "safetensors folder"),
    **distributed_capabilities("unsloth", {}, pending=("ddp", "fsdp2", "multi_node", "elastic")),
    **loss_type_capabilities({"dpo": tuple(x for x in LOSS_TYPES["dpo"] if x != "kto_pair"), "kto": LOSS_TYPES["kto"]},
                             "unsloth's trl 1.15"),
}


class UnslothBackend(envs.OwnEnvironment):
    """unsloth 2026.10, in its own uv environment."""

    name = "unsloth"
    capabilities = CAPABILITIES
    recipe = RECIPE

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write unsloth_job.json, the data files, train.py and its helpers into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        job = unsloth_job(spec, has_eval=data.eval_path is not None)
        files = [write_trl_data(spec, Path(data.train_path), out_dir / "train.jsonl")]
        if data.eval_path is not None:
            files.append(write_trl_data(spec, Path(data.eval_path), out_dir / "eval.jsonl"))
        job_path = out_dir / JOB_FILE
        job_path.write_text(json.dumps(redact_data(job), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files += [job_path, *copy_runner(RUNNER, HELPERS, out_dir)]
        (out_dir / "README.md").write_text(
            f"# unsloth {UNSLOTH_VERSION} job written by uft for spec {spec.name!r}\n\n"
            f"Run it with unsloth alone: `python train.py {JOB_FILE}` (uft's environment for it: "
            "`uft env path unsloth`).\n", encoding="utf-8")
        files.append(out_dir / "README.md")
        python = envs.env_python(envs.env_dir(RECIPE))
        return NativeJob(native_dir=out_dir, files=files, argv=[str(python), "train.py", JOB_FILE],
                         env=run_env(), cwd=out_dir, log_file=out_dir / "output" / "trainer_log.jsonl")

    def check(self, job: NativeJob) -> None:
        """trl's own config class built from the job's trainer settings, inside unsloth's environment."""
        python = envs.env_python(envs.create_env(RECIPE))
        program = ("import json, runner_support\njob = json.load(open('unsloth_job.json', encoding='utf-8'))\n"
                   "runner_support.trainer_classes(job['method'])[0](**job['trainer'])")
        run_native_check(self.name, [str(python), "-c", program], job.native_dir)

    # The runner writes what trl's does (runner_support): output/trainer_log.jsonl, output/final, versions.json.
    progress = TrlBackend.progress
    collect = TrlBackend.collect


def unsloth_job(spec: JobSpec, has_eval: bool) -> dict[str, Any]:
    """The job unsloth's runner executes: every setting explicit, in unsloth's and trl's own names."""
    a, t, method = spec.adapter, spec.training, spec.method.name
    precision = resolved_precision(spec)
    bits = getattr(a, "bits", None) if a.type == "qlora" else None
    model = {
        "model_name": spec.model.path,
        "max_seq_length": spec.data.max_length,
        "dtype": _DTYPES[precision],
        "load_in_4bit": bits == 4,  # unsloth's own default is True, even on CPU
        "load_in_8bit": bits == 8,
        "load_in_16bit": False,
        "full_finetuning": a.type == "full",
        "trust_remote_code": spec.model.trust_remote_code,
        "use_exact_model_name": True,  # else unsloth swaps a hub id for its own (pre-quantized) copy
        "fix_tokenizer": False,  # the base's tokenizer as every backend uses it
        "use_gradient_checkpointing": t.gradient_checkpointing,  # unsloth's own default is "unsloth"
        "random_state": t.seed,  # unsloth's own default is 3407
    }
    if spec.model.revision:
        model["revision"] = spec.model.revision
    trainer = trainer_settings(spec)
    peft = None
    if a.type in ("lora", "qlora", "dora"):
        peft = {"r": a.r, "lora_alpha": a.alpha,  # unsloth's own default alpha is 16
                "lora_dropout": a.dropout, "target_modules": target_modules(spec), "bias": "none",
                "use_rslora": a.rslora, "use_dora": a.use_dora, "loftq_config": {},
                "init_lora_weights": pissa_init(a.pissa_iters) if a.init == "pissa" else True,
                "use_gradient_checkpointing": t.gradient_checkpointing, "random_state": t.seed}
    passthrough = merge_passthrough(spec, "unsloth", trainer)
    return {
        "method": method,
        "model": model,
        "chat_template": chat_template_text(spec),
        "data": {"train": "train.jsonl", "eval": "eval.jsonl" if has_eval else None,
                 "train_on_prompt": spec.data.train_on_prompt},
        "peft": peft,
        "loraplus": ({"lr_ratio": a.loraplus_lr_ratio, "lr_embedding": LORAPLUS_LR_EMBEDDING}
                     if getattr(a, "loraplus_lr_ratio", None) is not None else None),
        "environment": {**BASE_ENV, **(OFFLINE_ENV if Path(spec.model.path).exists() else {})},
        "passthrough": passthrough,
        "trainer": trainer,
    }


def target_modules(spec: JobSpec) -> list[str] | str:
    """The LoRA target modules by name; peft's `all-linear` spelled out for the decoder families it names."""
    wanted = spec.adapter.target_modules
    if wanted != "all-linear":
        return [wanted] if isinstance(wanted, str) else list(wanted)
    config = Path(spec.model.path) / "config.json"
    family = json.loads(config.read_text(encoding="utf-8")).get("model_type") if config.is_file() else None
    if family in ALL_LINEAR:
        return ALL_LINEAR[family]
    if config.is_file():
        raise SpecError("unsloth needs the LoRA target modules by name for this model", [Problem(
            "adapter.target_modules", f"all-linear for a model of type {family!r} (config.json model_type) is not a "
            "list uft knows" if family else "all-linear, and the model's config.json names no model_type",
            "name the modules, e.g. [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]")])
    return "all-linear"  # a hub id: unsloth expands it as peft does (every linear layer but the output head)


def run_env() -> dict[str, str]:
    """A CPU torch build on a host with an NVIDIA driver: unsloth refuses its CPU fallback unless CUDA is hidden."""
    env = dict(BASE_ENV)
    if envs.choose_lock(RECIPE).build == "cpu" and envs.detected_gpus():
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
