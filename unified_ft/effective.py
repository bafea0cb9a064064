"""What the framework really did: the trainer probe attached to a run, its read-back into effective.json,
and the comparison "spec vs what <backend> did".

Nothing here is copied from the spec: every value comes from the probe's observation of the framework's own
trainer (trainer_probe.py, run inside the framework's environment), from the adapter the framework saved,
and from uft's own data files (to name which rows the framework trained on first). A value the read-back
could not find is null with a note, never a guess; the schema is `specs/effective.schema.json`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .plugin import NativeJob
from .runs import read_jsonl, write_jsonl
from .spec import DataSpec, JobSpec

EFFECTIVE_VERSION = 1
PROBE_SOURCE = Path(__file__).with_name("trainer_probe.py")
#: transformers' Adam settings: what uft asks of every backend unless backend_options say otherwise.
ADAM_DEFAULTS = {"adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8}


def attach_probe(job: NativeJob, probe_dir: Path) -> None:
    """Put uft's trainer probe on the framework's PYTHONPATH as sitecustomize.py, writing into `probe_dir`.

    The native files stay exactly what the framework is given (an ejected folder runs without it); only
    the launched process carries the probe, through its environment.
    """
    probe_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROBE_SOURCE, probe_dir / "sitecustomize.py")
    inherited = job.env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    job.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(probe_dir), inherited) if p)
    job.env["UFT_PROBE_OUT"] = str(probe_dir)


class Sample(BaseModel):
    """One training sample of the first optimizer step, as the framework's collator built it."""

    row: int | None = Field(description="Index in uft's data/train.jsonl of the record this sample was made from "
                            "(null: not identified).")
    input_ids: list[int] | None = Field(None, description="Token ids, padding removed (first samples only).")
    text: str | None = Field(None, description="The token ids decoded by the framework's tokenizer.")
    label_mask: list[int] | None = Field(None, description="1 where the token carries loss, 0 where not.")
    tokens: int | None = Field(None, description="Number of tokens (padding removed).")
    supervised_tokens: int | None = Field(None, description="Tokens that carry loss.")


class Samples(BaseModel):
    """The training samples after the framework's preprocessing."""

    first_step: list[Sample] = Field(description="Every sample of the first optimizer step, in the order fed.")
    uft_rows: int | None = Field(description="Training rows uft's data step wrote.")
    framework_rows: int | None = Field(description="Training samples the framework holds after its preprocessing.")
    dropped_rows: int | None = Field(description="uft_rows - framework_rows (null when packing joins rows).")
    at_max_length: int | None = Field(description="Samples exactly max_length tokens long: probably truncated.")
    supervised_tokens_total: int | None = Field(description="Tokens carrying loss over one pass of the data.")
    supervised_tokens_per_sample: list[int] | None = Field(
        None, description="Tokens carrying loss per sample, in the framework's order (first 50).")


class Batch(BaseModel):
    """Samples per optimizer step and how many steps and epochs ran."""

    per_device: int | None = Field(description="Samples per device per forward pass.")
    accumulation: int | None = Field(description="Gradient accumulation steps.")
    processes: int | None = Field(description="Data-parallel processes (world size).")
    effective: int | None = Field(description="per_device x accumulation x processes.")
    optimizer_steps: int | None = Field(description="Optimizer steps the trainer planned (and, in steps_done, ran).")
    steps_done: int | None = Field(description="Optimizer steps that ran.")
    epochs: float | None = Field(description="Epochs the trainer planned.")


class Schedule(BaseModel):
    """The learning-rate schedule as the optimizer saw it."""

    scheduler: str | None = Field(description="The trainer's lr_scheduler_type.")
    peak: float | None = Field(description="The optimizer's initial (peak) learning rate.")
    warmup_steps: int | None = Field(description="Warmup steps the trainer computed.")
    per_step: list[float] = Field(description="The learning rate each optimizer step used, step 1 first.")


class Adapter(BaseModel):
    """The adapter as the framework saved it (adapter_config.json) and what the trainer trained."""

    type: str | None = Field(description="peft_type of the saved adapter; \"none (full weights saved)\" when the run "
                             "saved the whole model instead; null when neither was found.")
    target_modules: list[str] | None = Field(description="Module names that got the adapter (leaf names, sorted).")
    r: int | None = Field(None, description="LoRA rank.")
    alpha: float | None = Field(None, description="LoRA alpha.")
    dropout: float | None = Field(None, description="LoRA dropout.")
    rslora: bool | None = Field(None, description="Rank-stabilised scaling.")
    dora: bool | None = Field(None, description="DoRA.")
    trainable_parameters: int | None = Field(description="Parameters with gradients during training.")
    total_parameters: int | None = Field(description="All parameters of the trained model.")


class Precision(BaseModel):
    """Weights, compute and quantization."""

    weights: dict[str, int] = Field(description="Parameter count per dtype, as loaded for training.")
    compute: str | None = Field(description="bf16, fp16 (mixed precision) or fp32.")
    quantization: dict[str, Any] | None = Field(description="The base model's quantization config, if any.")


class Optimizer(BaseModel):
    """The optimizer as built by the trainer."""

    name: str | None = Field(description="The trainer's optim setting.")
    optimizer_class: str | None = Field(description="The optimizer's Python class.")
    weight_decay: float | None = Field(description="Weight decay of the decayed parameter group.")
    betas: list[float] | None = Field(description="Adam betas.")
    epsilon: float | None = Field(description="Adam epsilon.")
    max_grad_norm: float | None = Field(description="Gradient clipping norm.")


class Order(BaseModel):
    """Whether and how the framework reorders samples."""

    sampler: str | None = Field(description="random, sequential or length_grouped (the trainer's sampler).")
    reordered_at_load: bool | None = Field(description="True if the framework's dataset no longer starts with uft's "
                                           "first rows (a load-time shuffle).")
    first_step_rows: list[int | None] = Field(description="uft row indices of the first step's samples.")
    first_step_in_file_order: bool | None = Field(
        None, description="True if the first step trained on uft's first rows in file order (null: rows not "
        "identified, or identical rows make it ambiguous).")


class Effective(BaseModel):
    """effective.json: what the framework really did, read back from its own trainer and outputs."""

    schema_version: int = Field(EFFECTIVE_VERSION, description="Version of this schema.")
    backend: str = Field(description="The backend that ran.")
    samples: Samples
    batch: Batch
    learning_rate: Schedule
    adapter: Adapter
    precision: Precision
    seed: int | None = Field(description="The trainer's seed.")
    data_seed: int | None = Field(description="The trainer's data seed.")
    optimizer: Optimizer
    gradient_checkpointing: bool | None = Field(description="Whether the model ran with gradient checkpointing.")
    order: Order
    versions: dict[str, str] = Field(description="Versions of the framework and its stack, recorded by the run.")
    environment: str | None = Field(None, description="The Python environment (sys.prefix) the framework ran in.")
    notes: list[str] = Field(default_factory=list, description="What the read-back could not find, and why.")


def read_observed(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "probe" / "observed.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def probe_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The probe's metrics rows: one schema and meaning on every backend ([] when the probe saw none)."""
    path = run_dir / "probe" / "metrics.jsonl"
    return list(read_jsonl(path)) if path.is_file() else []


def read_back(run_dir: Path, spec: JobSpec, backend: str, uft_rows: int | None) -> Effective:
    """effective.json's content for a finished run; whatever is missing is null with a note."""
    observed = read_observed(run_dir)
    notes: list[str] = []
    if observed is None:
        notes.append("the trainer probe wrote nothing (probe/observed.json is missing): the framework did not "
                     "train through transformers.Trainer, or stopped before training began")
        observed = {}
    notes += [f"the probe hit an error: {e.strip().splitlines()[-1]}" for e in observed.get("errors", [])]
    args = observed.get("arguments", {})
    records = _uft_records(run_dir / "data" / "train.jsonl")
    samples = _samples(observed, records, uft_rows, spec.data, notes)
    return Effective(
        backend=backend, samples=samples,
        batch=_batch(observed, args), learning_rate=_schedule(observed, args),
        adapter=_adapter(run_dir, observed, notes), precision=_precision(observed),
        seed=args.get("seed"), data_seed=args.get("data_seed"), optimizer=_optimizer(observed, args),
        gradient_checkpointing=observed.get("model", {}).get("gradient_checkpointing"),
        order=_order(observed, records, samples.first_step, notes), versions=observed.get("versions", {}),
        environment=observed.get("python_prefix"), notes=notes)


def write_effective(run_dir: Path, effective: Effective) -> Path:
    path = run_dir / "effective.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(effective.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_effective(run_dir: Path) -> Effective | None:
    try:
        return Effective.model_validate_json((run_dir / "effective.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _samples(observed: dict, records: list[list[str]], uft_rows: int | None, data_spec: DataSpec,
             notes: list[str]) -> Samples:
    data = observed.get("data", {})
    first = []
    for index, raw in enumerate(observed.get("first_step", [])):
        labels = raw.get("labels")
        supervised = raw.get("supervised") if labels is None else sum(1 for x in labels if x != -100)
        first.append(Sample(row=match_row(raw.get("text"), records), input_ids=raw.get("input_ids"),
                            text=raw.get("text"), label_mask=[int(x != -100) for x in labels] if labels else None,
                            tokens=len(raw["input_ids"]) if raw.get("input_ids") else raw.get("tokens"),
                            supervised_tokens=supervised))
        if index == 0 and labels is None:
            notes.append("the first step's batches carry no labels: supervised tokens per sample are unknown")
    framework_rows = data.get("samples")
    lengths, supervised = data.get("lengths"), data.get("supervised_tokens")
    packed = data_spec.packing
    dropped = None if framework_rows is None or uft_rows is None or packed else uft_rows - framework_rows
    return Samples(first_step=first, uft_rows=uft_rows, framework_rows=framework_rows, dropped_rows=dropped,
                   at_max_length=sum(1 for n in lengths if n >= data_spec.max_length) if lengths else None,
                   supervised_tokens_total=sum(supervised) if supervised else None,
                   supervised_tokens_per_sample=supervised[:50] if supervised else None)


def _batch(observed: dict, args: dict) -> Batch:
    per_device, accumulation, world = (args.get(k) for k in ("per_device_train_batch_size",
                                                             "gradient_accumulation_steps", "world_size"))
    effective = per_device * accumulation * world if None not in (per_device, accumulation, world) else None
    schedule = observed.get("schedule", {})
    return Batch(per_device=per_device, accumulation=accumulation, processes=world, effective=effective,
                 optimizer_steps=schedule.get("max_steps"), steps_done=observed.get("done", {}).get("global_step"),
                 epochs=schedule.get("num_train_epochs"))


def _schedule(observed: dict, args: dict) -> Schedule:
    groups = observed.get("optimizer", {}).get("groups") or [{}]
    return Schedule(scheduler=args.get("lr_scheduler_type"), peak=groups[0].get("lr"),
                    warmup_steps=observed.get("schedule", {}).get("warmup_steps"),
                    per_step=observed.get("learning_rate", []))


#: `Adapter.type` of a run that saved the whole model and no adapter.
FULL_WEIGHTS = "none (full weights saved)"


def _adapter(run_dir: Path, observed: dict, notes: list[str]) -> Adapter:
    model = observed.get("model", {})
    counts = {"trainable_parameters": model.get("trainable_parameters"),
              "total_parameters": model.get("total_parameters")}
    config_path = run_dir / "adapter" / "adapter_config.json"
    if not config_path.is_file():
        full = (run_dir / "model" / "config.json").is_file()  # no adapter but the whole model: a full fine-tune
        return Adapter(type=FULL_WEIGHTS if full else None, target_modules=None, **counts)
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    targets = saved.get("target_modules")
    if isinstance(targets, str):
        notes.append(f"the saved adapter names its target modules by a pattern: {targets!r}")
        targets = [targets]
    return Adapter(type=saved.get("peft_type"), target_modules=leaf_names(targets) if targets else None,
                   r=saved.get("r"), alpha=saved.get("lora_alpha"), dropout=saved.get("lora_dropout"),
                   rslora=saved.get("use_rslora"), dora=saved.get("use_dora"), **counts)


def leaf_names(modules: list[str]) -> list[str]:
    """q_proj for model.layers.0.self_attn.q_proj: frameworks save full paths or leaf names."""
    return sorted({name.rsplit(".", 1)[-1] for name in modules})


def _precision(observed: dict) -> Precision:
    precision = observed.get("precision", {})
    compute = None
    if precision:
        compute = "bf16" if precision.get("bf16") else "fp16" if precision.get("fp16") else "fp32"
    model = observed.get("model", {})
    return Precision(weights=model.get("parameter_dtypes", {}), compute=compute, quantization=model.get("quantization"))


def _optimizer(observed: dict, args: dict) -> Optimizer:
    found = observed.get("optimizer", {})
    groups = [g for g in found.get("groups", []) if g.get("parameters")]
    decays = [g["weight_decay"] for g in groups if g.get("weight_decay") is not None]
    first = groups[0] if groups else {}
    return Optimizer(name=args.get("optim"), optimizer_class=found.get("class"),
                     weight_decay=max(decays) if decays else None, betas=first.get("betas"),
                     epsilon=first.get("eps"), max_grad_norm=args.get("max_grad_norm"))


def _order(observed: dict, records: list[list[str]], first_step: list[Sample], notes: list[str]) -> Order:
    sampler = observed.get("sampler")
    kind = None
    if sampler:
        lowered = sampler.lower()
        in_order = "sequential" in lowered or ("distributed" in lowered and "shuffle=false" in lowered)  # strided
        kind = "length_grouped" if "length" in lowered else "random" if "random" in lowered else \
            "sequential" if in_order else sampler
    first_rows = [match_row(text, records) for text in observed.get("data", {}).get("first_rows_text", [])]
    reordered = None
    if first_rows and None not in first_rows and len({tuple(r) for r in records[:len(first_rows)]}) == len(first_rows):
        reordered = first_rows != list(range(len(first_rows)))
    elif first_rows:
        notes.append("whether the framework reordered rows at load could not be told (rows not identified, or "
                     "the first rows are identical)")
    rows = [s.row for s in first_step]
    counts = Counter(tuple(r) for r in records)
    clear = bool(rows) and None not in rows and all(counts[tuple(records[r])] == 1 for r in rows)
    return Order(sampler=kind, reordered_at_load=reordered, first_step_rows=rows,
                 first_step_in_file_order=rows == list(range(len(rows))) if clear else None)


def _uft_records(path: Path) -> list[list[str]]:
    """The texts of each of uft's training records, in file order (what a sample is matched against)."""
    if not path.is_file():
        return []
    found = []
    for row in read_jsonl(path):
        if "text" in row:
            found.append([row["text"]])
        else:
            messages = row.get("messages") or [*row.get("prompt", []), *row.get("chosen", row.get("completion", []))]
            found.append([m.get("content") or "" for m in messages])
    return found


def match_row(text: str | None, records: list[list[str]]) -> int | None:
    """The record whose texts appear, in order, in a decoded sample: most texts, then most characters, matched
    ("answer 12" beats "answer 1" in a sample of row 12); the first such record on a tie."""
    if not text:
        return None
    best, best_score = None, (0, 0)
    for index, texts in enumerate(records):
        parts = chars = at = 0
        for part in texts:
            found = text.find(part, at) if part else at
            if found < 0:
                break
            parts, chars, at = parts + 1, chars + len(part), found + len(part)
        if (parts, chars) > best_score:
            best, best_score = index, (parts, chars)
    return best


class Check(BaseModel):
    """One row of "spec vs what the backend did"."""

    setting: str
    spec: Any
    did: Any
    same: bool | None  # None: shown, not judged (the spec does not fix it)


def compare(spec: JobSpec, effective: Effective, backend: str) -> list[Check]:
    """Every setting the spec fixes against what the framework did; a difference is `same: False`."""
    t, e, a = spec.training, effective, spec.adapter
    rows: list[Check] = []

    def add(setting: str, wanted: Any, did: Any, judged: bool = True) -> None:
        same = None if not judged or did is None else _same(wanted, did)
        rows.append(Check(setting=setting, spec=wanted, did=did, same=same))

    add("samples after preprocessing", e.samples.uft_rows, e.samples.framework_rows, not spec.data.packing)
    add("samples at max_length (truncated)", 0, e.samples.at_max_length, judged=False)
    add("effective batch", spec.effective_batch, e.batch.effective)
    if t.max_steps is not None:
        add("optimizer steps", t.max_steps, e.batch.optimizer_steps)
    if t.epochs is not None:
        add("epochs", t.epochs, e.batch.epochs)
    add("learning rate (peak)", t.learning_rate, e.learning_rate.peak)
    add("lr scheduler", t.lr_scheduler, e.learning_rate.scheduler)
    if e.batch.optimizer_steps:
        add("warmup steps", math.ceil(t.warmup_ratio * e.batch.optimizer_steps), e.learning_rate.warmup_steps)
    if a.type in ("lora", "qlora", "dora"):
        add("adapter saved (peft type)", "LORA", e.adapter.type)
        add("adapter rank", a.r, e.adapter.r)
        add("adapter alpha", a.alpha, e.adapter.alpha)
        add("adapter dropout", a.dropout, e.adapter.dropout)
        explicit = isinstance(a.target_modules, list)
        add("adapter target modules", leaf_names(a.target_modules) if explicit else a.target_modules,
            e.adapter.target_modules, judged=explicit)
        add("rsLoRA", a.rslora, e.adapter.rslora)
        add("DoRA", a.use_dora, e.adapter.dora)
    add("trainable parameters", None, e.adapter.trainable_parameters, judged=False)
    add("compute precision", t.precision, e.precision.compute)
    add("weights", None, e.precision.weights, judged=False)
    add("quantization bits", getattr(a, "bits", None), _bits(e.precision.quantization))
    add("seed", t.seed, e.seed)
    add("optimizer", t.optimizer, e.optimizer.name)
    add("weight decay", t.weight_decay, e.optimizer.weight_decay)
    options = spec.backend_options.get(backend, {})
    adam = {k: options.get(k, v) for k, v in ADAM_DEFAULTS.items()}
    if t.optimizer.startswith(("adamw", "paged_adamw")):
        add("adam betas", [adam["adam_beta1"], adam["adam_beta2"]], e.optimizer.betas)
        add("adam epsilon", adam["adam_epsilon"], e.optimizer.epsilon)
    add("gradient clipping", t.max_grad_norm, e.optimizer.max_grad_norm)
    add("gradient checkpointing", t.gradient_checkpointing, e.gradient_checkpointing)
    add("sampler (rows read as uft wrote them)", "sequential", e.order.sampler)
    add("reorders rows at load", False, e.order.reordered_at_load)
    add("first step trains uft's first rows", True, e.order.first_step_in_file_order)
    return rows


def _bits(quantization: dict | None) -> int | None:
    if not quantization:
        return None
    if quantization.get("load_in_4bit"):
        return 4
    if quantization.get("load_in_8bit"):
        return 8
    return quantization.get("bits")


def _same(wanted: Any, did: Any) -> bool:
    if isinstance(wanted, float) or isinstance(did, float):
        try:
            return math.isclose(float(wanted), float(did), rel_tol=1e-6, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(wanted, list) and isinstance(did, list):
        return len(wanted) == len(did) and all(_same(w, d) for w, d in zip(wanted, did, strict=True))
    return wanted == did


def differences(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.same is False]


def standard_metrics(run_dir: Path) -> list[dict[str, Any]] | None:
    """Rewrite metrics.jsonl from the probe's rows (one meaning on every backend); None if the probe saw none."""
    rows = probe_metrics(run_dir)
    if not rows:
        return None
    write_jsonl(run_dir / "metrics.jsonl", rows)
    return rows


def shown_value(value: Any) -> str:
    """A value for the table: short and plain."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        text = ", ".join(shown_value(v) for v in value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, dict):
        return ", ".join(f"{k} {shown_value(v)}" for k, v in value.items())
    return str(value)


def inspect_run(run_dir: Path) -> tuple[JobSpec, Effective, list[Check]]:
    """A finished run's spec, effective.json and their comparison; a clear error for anything else."""
    from .errors import UftError
    from .runs import load_finished_run

    spec, _manifest, _trained = load_finished_run(Path(run_dir))
    effective = load_effective(Path(run_dir))
    if effective is None:
        raise UftError(f"{run_dir} has no readable effective.json (made by a uft without the read-back, or the "
                       "read-back failed: see manifest.json)\n    fix: run the spec again with `uft run`")
    return spec, effective, compare(spec, effective, effective.backend)
