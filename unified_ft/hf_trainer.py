"""What every backend built on Hugging Face's Trainer shares: trl, LLaMA-Factory and ms-swift (next, unsloth).

They all take the same TrainingArguments-level settings under transformers' own names, refuse an unresolved
precision, write canonical records in a few row shapes, and leave a peft adapter (or full weights) to copy
into the run directory. Each of those is decided here once; a translator only chooses where its keys go.
(The metrics row is shared too: uft's trainer probe writes it the same way for every backend.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .data.records import as_unpaired
from .plugin import NOT_SHARED, NativeJob, RunOutputs, final_metrics, single_answers
from .runs import read_jsonl, write_jsonl
from .spec import JobSpec

SCHEDULE = ("per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "num_train_epochs",
            "max_steps", "lr_scheduler_type", "warmup_ratio")
OPTIMIZER = ("optim", "weight_decay", "max_grad_norm")
PRECISION = ("bf16", "fp16")
SEEDS = ("seed", "data_seed")


def resolved_precision(spec: JobSpec) -> str:
    """fp32, bf16 or fp16: `auto` is the plan's to resolve (it knows the machine), never a translator's."""
    if spec.training.precision == "auto":
        raise ValueError("precision 'auto' must be resolved by the plan before translation")
    return spec.training.precision


def trainer_arguments(spec: JobSpec) -> dict[str, Any]:
    """The spec's training settings as transformers' TrainingArguments name them, every one explicit."""
    t, precision = spec.training, resolved_precision(spec)
    return {
        "per_device_train_batch_size": t.per_device_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
        "num_train_epochs": t.epochs if t.epochs is not None else 1.0,
        "max_steps": t.max_steps if t.max_steps is not None else -1,
        "lr_scheduler_type": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "optim": t.optimizer,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "gradient_checkpointing": t.gradient_checkpointing,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "seed": t.seed,
        "data_seed": t.seed,  # the data order is uft's; the seed is the same for both
        "logging_steps": t.logging_steps,
        "report_to": "none" if t.report_to == ["none"] else list(t.report_to),
    }


def pick(arguments: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Some of `trainer_arguments`, in the order a translator writes them."""
    return {name: arguments[name] for name in names}


def record_shapes(spec: JobSpec, records: Iterable[dict[str, Any]], framework: str, source: object = "data"
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each canonical record as (shape, record): "text", "chat", "pair" (one chosen and one rejected answer) or
    "unpaired" (a KTO answer with its label; a pair becomes two). A framework maps each shape to its rows."""
    for row in records:
        if "text" in row:
            yield "text", row
        elif "messages" in row:
            yield "chat", row
        else:
            single_answers(row, framework, source)
            if spec.method.name == "kto":  # unpaired: each answer with a thumbs-up or thumbs-down
                yield from (("unpaired", r) for r in as_unpaired(row))
            else:
                yield "pair", row


def copy_trained(source: Path, run_dir: Path, ignore: Iterable[str] = ()) -> Path | None:
    """A framework's saved output into the run: a peft adapter to adapter/ (returned), full weights to model/.
    What is not for sharing stays behind (training_args.bin pickles every setting, and a pickle runs code)."""
    patterns = shutil.ignore_patterns(*ignore, *NOT_SHARED)
    if (source / "adapter_config.json").exists():
        shutil.copytree(source, run_dir / "adapter", ignore=patterns)
        return run_dir / "adapter"
    if (source / "config.json").exists():
        shutil.copytree(source, run_dir / "model", ignore=patterns)
    return None


def collect_runner_output(progress: Callable[[dict[str, Any]], dict[str, Any] | None], run_dir: Path,
                          job: NativeJob) -> RunOutputs:
    """What a runner uft ships (trl's, unsloth's, ColossalAI's) leaves in native/output, as the standard outputs:
    trainer_log.jsonl -> metrics.jsonl (through the backend's `progress`); final/ -> adapter/ (peft) or model/
    (full weights); versions.json -> the versions that ran."""
    output = job.native_dir / "output"
    rows = [r for r in (progress(x) for x in read_jsonl(output / "trainer_log.jsonl")) if r and "step" in r]
    metrics_path = write_jsonl(run_dir / "metrics.jsonl", rows)
    adapter_dir = copy_trained(output / "final", run_dir)
    versions_file = output / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    return RunOutputs(adapter_dir=adapter_dir, metrics_path=metrics_path, final=final_metrics(rows),
                      versions=versions)


def copy_runner(runner: Path, helpers: Iterable[Path], out_dir: Path) -> list[Path]:
    """A runner uft ships, as native/train.py, with uft's standalone helpers beside it (so the folder runs
    without uft); returns the files written."""
    copied = [Path(shutil.copyfile(runner, out_dir / "train.py"))]
    copied += [Path(shutil.copyfile(helper, out_dir / helper.name)) for helper in helpers]
    return copied
