"""The ColossalAI backend: a ColossalAI `Booster` training loop in its own environment.

ColossalAI has no fine-tuning CLI, so `translate` writes `colossalai_job.json` (every setting explicit: the
booster plugin and its sizes, precision, LoRA, optimizer, schedule, seed, data) and `train.py` (a copy of
`runner.py`: canonical records -> uft's masking -> `colossalai.launch_from_torch` -> `Booster(plugin)` ->
`booster.enable_lora` -> a plain loop with gradient accumulation, the spec's scheduler, AdamW and clipping),
with uft's `chat_tokens.py`, `modeling.py` and `runner_support.py` beside it. The folder runs without uft:
    python train.py colossalai_job.json          (one process; the runner sets the torch.distributed defaults)
    colossalai run --nproc_per_node N train.py colossalai_job.json
in the environment `uft env path colossalai`.

The plugin and its sizes are ColossalAI settings the portable spec does not model yet, so they come from
`backend_options.colossalai` (plugin: torch_ddp | low_level_zero | gemini | hybrid_parallel | torch_fsdp;
stage; tp_size; pp_size; zero_stage; microbatch_size; placement_policy), validated here with clear errors.
Only torch_ddp trains on a CPU (gloo); the others are CUDA-only in ColossalAI 0.5 and are refused by `uft run`
on a machine without a GPU (`gpu_needs`), while `uft translate` still writes their files.

Environment: colossalai 0.5.0 pins torch <= 2.5.1, transformers == 4.51.3 and peft <= 0.13.2, so it runs in a
uv environment made from `requirements.lock` beside this file (`scripts/lock.sh colossalai`). There is one lock
for every host (EnvRecipe.cpu_lock None): PyPI's torch 2.5.1 is a CUDA build with its nvidia-* wheels, and it
trains on a CPU as well; a `+cpu` lock would need PyTorch's CPU index, which this project's build machines
cannot reach. colossalai is an sdist on PyPI: it builds without torch at build time and, without BUILD_EXT=1,
compiles none of its CUDA kernels (they are JIT-built on first use on a GPU, and unused on a CPU).
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any

from unified_ft import chat_tokens, envs, modeling, runner_support
from unified_ft.errors import Problem, SpecError
from unified_ft.hf_trainer import collect_runner_output, copy_runner, resolved_precision, trainer_arguments
from unified_ft.launchers import torchrun
from unified_ft.modeling import model_config
from unified_ft.plugin import (
    AUTO_PRECISION,
    NATIVE,
    Capability,
    NativeJob,
    NodeLaunch,
    RunOutputs,
    distributed_capabilities,
    loss_type_capabilities,
    run_native_check,
)
from unified_ft.spec import LORAPLUS_LR_EMBEDDING, JobSpec
from unified_ft.templates import chat_template_text

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
HELPERS = (Path(chat_tokens.__file__), Path(modeling.__file__), Path(runner_support.__file__))
JOB_FILE = "colossalai_job.json"
COLOSSALAI_VERSION = "0.5.0"
RECIPE = envs.EnvRecipe(
    backend="colossalai", lock=HERE / "requirements.lock", cpu_lock=None, imports=("colossalai.booster", "peft"),
    versions_of=("colossalai", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers"))

#: ColossalAI 0.5's booster plugins that uft's runner drives, and what each takes from backend_options.
PLUGINS: dict[str, tuple[str, ...]] = {
    "torch_ddp": (),
    "low_level_zero": ("stage",),
    "gemini": ("placement_policy",),
    "hybrid_parallel": ("tp_size", "pp_size", "zero_stage", "microbatch_size"),
    "torch_fsdp": (),
}
#: Every key backend_options.colossalai may hold.
OPTION_KEYS = ("plugin", "stage", "tp_size", "pp_size", "zero_stage", "microbatch_size", "placement_policy")
#: Plugins whose `support_lora()` is True in ColossalAI 0.5 (HybridParallel asserts tp_size 1 in enable_lora).
LORA_PLUGINS = ("torch_ddp", "low_level_zero", "hybrid_parallel")
#: Plugins that train on a CPU (gloo); ColossalAI's others place chunks, streams and kernels on CUDA.
CPU_PLUGINS = ("torch_ddp",)
#: Precisions each plugin accepts (ColossalAI's own SUPPORTED_PRECISION lists).
PLUGIN_PRECISIONS = {"gemini": ("bf16", "fp16")}
_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)
_NO_PREFERENCE = ("ColossalAI's preference training (DPO, ORPO, KTO, SimPO) lives in its ColossalChat application, "
                  "not in the colossalai package this backend installs")

CAPABILITIES: dict[str, Capability] = {
    "method.sft": NATIVE, "method.pt": NATIVE,
    **{f"method.{m}": Capability("unsupported", _NO_PREFERENCE) for m in ("dpo", "orpo", "simpo", "cpo", "kto")},
    "method.rm": Capability("unsupported", "uft's ColossalAI runner trains causal language models only"),
    "method.ppo": Capability("unsupported", "ColossalChat's PPO is not part of the colossalai package"),
    "method.grpo": Capability("unsupported", "needs reward functions, which the spec does not model yet"),
    "adapter.lora": Capability("native", "booster.enable_lora (plugins torch_ddp, low_level_zero, hybrid_parallel "
                               "with tp_size 1)"),
    "adapter.dora": Capability("native", "peft 0.13's use_dora through booster.enable_lora"),
    "adapter.rslora": NATIVE,
    "adapter.full": NATIVE,
    "adapter.qlora": Capability("native", "booster.enable_lora with a BnbQuantizationConfig (bitsandbytes needs CUDA)",
                                needs_gpu=True),
    "adapter.freeze": Capability("emulated", "uft's runner turns off gradients outside the last N layers"),
    "adapter.loraplus": Capability("native", "peft's create_loraplus_optimizer"),
    "adapter.pissa": Capability("native", "peft init_lora_weights pissa; saved converted to plain LoRA (torch_ddp)"),
    **{f"adapter.{a}": Capability("unsupported", "booster.enable_lora takes a LoraConfig only")
       for a in ("prefix", "prompt", "p_tuning")},
    "optimizer.adamw_torch": NATIVE, "optimizer.sgd": NATIVE,
    **{f"optimizer.{o}": Capability("unsupported", "uft's ColossalAI runner builds torch's AdamW or SGD")
       for o in ("adamw_8bit", "paged_adamw_8bit", "adafactor")},
    "precision.fp32": NATIVE, "precision.bf16": NATIVE, "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "fp16 mixed precision with a loss scaler needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": Capability("native", "transformers.get_scheduler")
       for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": NATIVE for t in ("model", "chatml", "qwen", "qwen2_5", "llama3", "mistral", "gemma",
                                         "phi3", "alpaca", "jinja")},
    "data.packing": Capability("unsupported", "uft's ColossalAI runner feeds one sample per sequence"),
    "data.train_on_prompt": NATIVE,
    "data.mixing": Capability("native", "mixed by uft's data step before ColossalAI sees it"),
    "training.gradient_checkpointing": Capability("native", "the model's gradient_checkpointing_enable"),
    **{f"report_to.{r}": Capability("unsupported", "uft's ColossalAI runner logs to its own JSONL file only")
       for r in ("tensorboard", "wandb")},
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("emulated", "uft dequantizes the GGUF file once into a cached safetensors folder"),
    **distributed_capabilities("ColossalAI", {
        "distributed.ddp": Capability("native", "torchrun with the torch_ddp booster plugin; gloo on CPU"),
        "distributed.multi_node": Capability("native", "torchrun per node")},
        pending=("low_level_zero", "gemini", "hybrid_parallel", "elastic")),
    **loss_type_capabilities({}, "ColossalAI (no preference training)"),
}


def launch_argv(spec: JobSpec, python: str, node_rank: int = 0) -> list[str]:
    """The runner itself for one process; torchrun for several (what `colossalai run` starts on each node)."""
    d = spec.distributed
    if d.world_size == 1:
        return [python, "train.py", JOB_FILE]
    return torchrun(d, node_rank, ["train.py", JOB_FILE], [python, "-m", "torch.distributed.run"])


def options(spec: JobSpec) -> dict[str, Any]:
    """backend_options.colossalai as the plugin settings the runner is given, every one explicit; a bad value is
    a SpecError naming the key, before anything starts."""
    given = dict(spec.backend_options.get("colossalai", {}))
    where = "backend_options.colossalai"
    problems: list[Problem] = []
    for key in sorted(set(given) - set(OPTION_KEYS)):
        close = difflib.get_close_matches(key, OPTION_KEYS, n=1)
        problems.append(Problem(f"{where}.{key}", "is not a ColossalAI setting uft models",
                                (f"did you mean {close[0]!r}? " if close else "") + f"keys: {', '.join(OPTION_KEYS)}"))
    plugin = given.get("plugin", "torch_ddp")
    if plugin not in PLUGINS:
        close = difflib.get_close_matches(str(plugin), PLUGINS, n=1)
        problems.append(Problem(f"{where}.plugin", f"{plugin!r} is not a ColossalAI booster plugin uft drives",
                                (f"did you mean {close[0]!r}? " if close else "") + f"plugins: {', '.join(PLUGINS)}"))
        raise SpecError("backend_options.colossalai is not valid", problems)
    for key in sorted(set(given) & set(OPTION_KEYS) - {"plugin", *PLUGINS[plugin]}):
        users = [p for p, keys in PLUGINS.items() if key in keys]
        problems.append(Problem(f"{where}.{key}", f"plugin {plugin} takes no {key} (it is for {', '.join(users)})",
                                f"remove it, or choose plugin {users[0]}"))
    settings: dict[str, Any] = {"name": plugin}
    if plugin == "low_level_zero":
        settings["stage"] = given.get("stage", 1)  # ColossalAI's own default, written out
        if settings["stage"] not in (1, 2):
            problems.append(Problem(f"{where}.stage", f"ZeRO stage {settings['stage']!r} is not 1 or 2 (ColossalAI's "
                                    "low-level ZeRO shards optimizer states (1) and gradients (2))",
                                    "use stage 1 or 2; for sharded parameters (ZeRO-3) use plugin gemini"))
    if plugin == "gemini":
        settings["placement_policy"] = given.get("placement_policy", "static")
        if settings["placement_policy"] not in ("static", "auto"):
            problems.append(Problem(f"{where}.placement_policy", f"{settings['placement_policy']!r} is not a Gemini "
                                    "placement policy", "use static or auto"))
    if plugin == "hybrid_parallel":
        for key, default in (("tp_size", 1), ("pp_size", 1), ("zero_stage", 0)):
            settings[key] = given.get(key, default)
        for key in ("tp_size", "pp_size"):
            if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 1:
                problems.append(Problem(f"{where}.{key}", f"{settings[key]!r} is not a positive whole number",
                                        "give 1, 2, 4, ..."))
        if settings["zero_stage"] not in (0, 1, 2):
            problems.append(Problem(f"{where}.zero_stage", f"{settings['zero_stage']!r} is not 0, 1 or 2",
                                    "use 0 (none), 1 or 2"))
        if settings["pp_size"] != 1 or "microbatch_size" in given:
            settings["microbatch_size"] = given.get("microbatch_size", 1)
        if isinstance(settings["pp_size"], int) and settings["pp_size"] > 1:
            problems.append(Problem(f"{where}.pp_size", "pipeline parallelism runs through booster.execute_pipeline, "
                                    "which uft's ColossalAI runner does not drive yet",
                                    "use pp_size 1 (tp_size and zero_stage still shard the model)"))
        problems += _tp_problems(spec, settings["tp_size"], where)
    lora = spec.adapter.type in ("lora", "qlora", "dora")
    if lora and plugin not in LORA_PLUGINS:
        problems.append(Problem(f"{where}.plugin", f"ColossalAI's {plugin} plugin cannot train a LoRA adapter "
                                "(its support_lora() is False in ColossalAI 0.5)",
                                f"use plugin {', '.join(LORA_PLUGINS)} (tp_size 1), or adapter.type full"))
    if lora and plugin == "hybrid_parallel" and settings.get("tp_size", 1) != 1:
        problems.append(Problem(f"{where}.tp_size", "ColossalAI's enable_lora takes tp_size 1 only (HybridParallel "
                                f"asserts it); this spec asks tp_size {settings['tp_size']} with adapter.type "
                                f"{spec.adapter.type}", "use tp_size 1 (pp_size and zero_stage still shard), or "
                                "adapter.type full"))
    if spec.adapter.type == "qlora" and plugin not in ("torch_ddp", "low_level_zero"):
        problems.append(Problem(f"{where}.plugin", f"4-bit/8-bit QLoRA runs on torch_ddp or low_level_zero, not "
                                f"{plugin}", "use plugin torch_ddp or low_level_zero"))
    if getattr(spec.adapter, "init", "default") == "pissa" and plugin != "torch_ddp":
        problems.append(Problem("adapter.init", f"a PiSSA adapter is converted back to plain LoRA from the whole peft "
                                f"model, which plugin {plugin} does not hold on one process",
                                "use plugin torch_ddp, or adapter.init default"))
    precision = spec.training.precision
    allowed = PLUGIN_PRECISIONS.get(plugin)
    if allowed and precision in ("fp32", "bf16", "fp16") and precision not in allowed:
        problems.append(Problem("training.precision", f"ColossalAI's {plugin} plugin trains in "
                                f"{' or '.join(allowed)} only, not {precision}",
                                f"set training.precision {allowed[0]}, or use another plugin"))
    if problems:
        raise SpecError("backend_options.colossalai is not valid", problems)
    return settings


def _tp_problems(spec: JobSpec, tp_size: Any, where: str) -> list[Problem]:
    """Tensor parallelism splits attention heads (and key/value heads) across processes: they must divide."""
    if not isinstance(tp_size, int) or tp_size <= 1:
        return []
    config_path = Path(spec.model.path) / "config.json"
    if not config_path.is_file():
        return []  # a hub id: ColossalAI's own shardformer checks it when the model is loaded
    config = json.loads(config_path.read_text(encoding="utf-8"))
    found = []
    for key in ("num_attention_heads", "num_key_value_heads"):
        heads = config.get(key)
        if isinstance(heads, int) and heads % tp_size:
            divisors = [d for d in range(1, heads + 1) if heads % d == 0]
            found.append(Problem(f"{where}.tp_size", f"tp_size {tp_size} does not divide the model's {key} ({heads}, "
                                 f"from {config_path})", f"use a tp_size that divides {heads}: "
                                 f"{', '.join(map(str, divisors))}"))
    return found


def job_config(spec: JobSpec) -> dict[str, Any]:
    """colossalai_job.json: what runner.py needs, every setting explicit."""
    t, a, method = spec.training, spec.adapter, spec.method.name
    args = trainer_arguments(spec)
    plugin = options(spec)
    peft = None
    if a.type in ("lora", "qlora", "dora"):
        peft = {"task_type": "CAUSAL_LM", "r": a.r, "lora_alpha": a.alpha, "lora_dropout": a.dropout,
                "target_modules": a.target_modules, "use_rslora": a.rslora, "use_dora": a.use_dora, "bias": "none",
                "init_lora_weights": _init_weights(a.init, a.pissa_iters)}
    return {
        "colossalai": COLOSSALAI_VERSION,
        "method": method,
        "model": model_config(spec),
        "chat_template": chat_template_text(spec) if method != "pt" else None,
        "data": {"train": "data/train.jsonl", "max_length": spec.data.max_length,
                 "train_on_prompt": spec.data.train_on_prompt, "order": "sequential"},
        "plugin": plugin,
        "precision": resolved_precision(spec),
        "peft": peft,
        "loraplus": ({"lr_ratio": a.loraplus_lr_ratio, "lr_embedding": LORAPLUS_LR_EMBEDDING}
                     if getattr(a, "loraplus_lr_ratio", None) is not None else None),
        "freeze": {"trainable_layers": a.trainable_layers} if a.type == "freeze" else None,
        "quantization": {"bits": a.bits} if a.type == "qlora" else None,
        "training": {
            "per_device_batch_size": t.per_device_batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation_steps,
            "num_train_epochs": args["num_train_epochs"],
            "max_steps": args["max_steps"],
            "learning_rate": t.learning_rate,
            "lr_scheduler": t.lr_scheduler,
            "warmup_ratio": t.warmup_ratio,
            "optimizer": t.optimizer,
            "weight_decay": t.weight_decay,  # torch's AdamW would use 0.01 if not given
            "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8,  # transformers' values, as trl uses
            "max_grad_norm": t.max_grad_norm,
            "gradient_checkpointing": t.gradient_checkpointing,
            "seed": t.seed,
            "logging_steps": t.logging_steps,
            "save_steps": t.save_steps,
        },
        "output_dir": "output",
    }


class ColossalAIBackend(envs.OwnEnvironment):
    """ColossalAI 0.5's Booster, in its own uv environment."""

    name = "colossalai"
    capabilities = CAPABILITIES
    recipe = RECIPE

    def notes(self, spec: JobSpec) -> list[str]:
        """The booster plugin in use (validated now, before anything starts)."""
        settings = options(spec)
        sizes = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "name")
        chosen = "backend_options.colossalai.plugin" if "plugin" in spec.backend_options.get("colossalai", {}) \
            else "the default"
        return [f"ColossalAI booster plugin {settings['name']}{f' ({sizes})' if sizes else ''}: {chosen}"]

    def gpu_needs(self, spec: JobSpec) -> list[Problem]:
        """ColossalAI's plugins other than torch_ddp place their state on CUDA."""
        plugin = spec.backend_options.get("colossalai", {}).get("plugin", "torch_ddp")
        if plugin in CPU_PLUGINS or plugin not in PLUGINS:
            return []
        return [Problem("backend_options.colossalai.plugin", f"ColossalAI's {plugin} plugin needs a CUDA GPU and "
                        "this machine has none", "run it on a GPU machine, or use plugin torch_ddp")]

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write colossalai_job.json, train.py, uft's two helpers and data/train.jsonl into `out_dir`."""
        config = job_config(spec)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "data").mkdir(exist_ok=True)
        train_file = out_dir / "data" / "train.jsonl"
        shutil.copyfile(Path(data.train_path), train_file)
        job_path = out_dir / JOB_FILE
        job_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        files = [train_file, job_path, *copy_runner(RUNNER, HELPERS, out_dir)]
        (out_dir / "README.md").write_text(readme(spec, config), encoding="utf-8")
        files.append(out_dir / "README.md")
        python = envs.env_python(envs.env_dir(RECIPE))
        nodes = [NodeLaunch(r, launch_argv(spec, str(python), r)) for r in range(spec.distributed.nodes)]
        return NativeJob(native_dir=out_dir, files=files, argv=nodes[0].argv, nodes=nodes if len(nodes) > 1 else [],
                         env={"TOKENIZERS_PARALLELISM": "false"}, cwd=out_dir,
                         log_file=out_dir / "output" / "trainer_log.jsonl")

    def check(self, job: NativeJob) -> None:
        """The runner's own reading of colossalai_job.json (plugin, LoRA config, schedule), in its environment,
        without training."""
        python = envs.env_python(envs.create_env(RECIPE))
        run_native_check(self.name, [str(python), "train.py", JOB_FILE, "--check"], job.native_dir)

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A trainer_log.jsonl row as a standard metrics row (or the start event)."""
        if row.get("event") == "start":
            return {"event": "start", "max_steps": row.get("max_steps")}
        if "loss" not in row:
            return None
        return {key: row.get(key) for key in ("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens",
                                              "elapsed_s", "peak_memory_mb")}

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs:
        """trainer_log.jsonl -> metrics.jsonl; output/final -> adapter/ (peft) or model/ (full weights)."""
        return collect_runner_output(self.progress, run_dir, job)


def readme(spec: JobSpec, config: dict[str, Any]) -> str:
    plugin = config["plugin"]["name"]
    launch = ("python train.py colossalai_job.json" if plugin in CPU_PLUGINS
              else "colossalai run --nproc_per_node <GPUs> train.py colossalai_job.json")
    return (f"# ColossalAI {COLOSSALAI_VERSION} job written by uft for spec {spec.name!r}\n\n"
            f"Run it with ColossalAI alone (in uft's environment for it: `source \"$(uft env path colossalai)/bin/"
            f"activate\"`):\n\n    {launch}\n\n"
            "(`python train.py colossalai_job.json` runs one process; `colossalai run --nproc_per_node N train.py "
            "colossalai_job.json` runs N.)\n"
            f"Booster plugin: {plugin}. Every setting is in {JOB_FILE}; train.py is uft's runner, chat_tokens.py, "
            "modeling.py and runner_support.py are uft's masking, model loading and runner plumbing. Output: "
            "output/trainer_log.jsonl, output/final/.\n")


def _init_weights(init: str, iters: int | None) -> Any:
    if init == "pissa":
        return "pissa" if not iters else f"pissa_niter_{iters}"
    return True
