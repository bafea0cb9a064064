"""What the runners uft ships share: trl's, unsloth's (both train with trl's trainers) and ColossalAI's.

Copied beside a runner in a run's native/ folder, so it imports no part of uft: the standard library at
import time, torch/datasets/transformers/trl only inside the functions that need them. It holds the event
log, the record files read as literal text, SFT chats tokenized with uft's canonical masks, the sequential
sample order, trl's trainer classes by method, saving, and the versions and peak memory a run reports.

The event log, output/trainer_log.jsonl, is one JSON object per line, flushed as written (uft follows it for
progress, and `collect` turns its log rows into metrics.jsonl). Its rows:
  {"event": "start", "max_steps": N, "num_train_epochs": E, ...}   as the training loop begins
  {"step": N, "epoch": E, "loss": L, "learning_rate": LR, "grad_norm": G, "elapsed_s": S, "peak_memory_mb": M,
   ...}                                                            one per logging step (a trainer may add keys)
  {"event": "dropped", "split": "train", "count": N, "reason": R}  samples skipped (no supervised token left)
  {"event": "end", "global_step": N, "elapsed_s": S, "peak_memory_mb": M}
  {"event": "interrupted"}                                         Ctrl-C or SIGINT; the process exits 130
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

#: Packages whose versions a run reports (versions.json).
STACK = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "gguf", "bitsandbytes", "unsloth",
         "unsloth_zoo")


class EventLog:
    """Append-only JSONL writer (process 0 only), flushed per line so a follower sees progress at once."""

    def __init__(self, path: Path, rank: int = 0) -> None:
        self.path = path
        self.started = time.monotonic()
        self.is_main = rank == 0
        self.handle = path.open("a", encoding="utf-8") if self.is_main else None

    def write(self, row: dict) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(row, default=str) + "\n")
            self.handle.flush()


def run_logged(out: Path, train, rank: int = 0) -> int:
    """`train(log)` with the run's event log in out/trainer_log.jsonl; Ctrl-C is logged as interrupted (exit 130)."""
    out.mkdir(parents=True, exist_ok=True)
    log = EventLog(out / "trainer_log.jsonl", rank)
    try:
        return train(log)
    except KeyboardInterrupt:
        log.write({"event": "interrupted"})
        print("interrupted", file=sys.stderr)
        return 130


def jsonl_log_callback(log: EventLog):
    """A TrainerCallback mirroring the trainer's logs to `log`, which uft (or a person) can follow live."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            log.write({"event": "start", "max_steps": state.max_steps, "num_train_epochs": args.num_train_epochs})

        def on_log(self, args, state, control, logs=None, **kwargs):
            row = {"step": state.global_step, "epoch": state.epoch, **(logs or {})}
            row["elapsed_s"] = round(time.monotonic() - log.started, 3)
            row["peak_memory_mb"] = peak_memory_mb()
            log.write(row)

    return JsonlLog()


def read_in_order(trainer) -> None:
    """Batches in the data file's order, every epoch: the order is chosen when the data is written (uft's
    data.shuffle), so every framework given the same file trains on the same batches."""
    from torch.utils.data import SequentialSampler

    trainer._get_train_sampler = lambda *args, **kwargs: SequentialSampler(trainer.train_dataset)


def trainer_classes(method: str):
    import trl

    if method in ("sft", "pt"):
        return trl.SFTConfig, trl.SFTTrainer
    if method == "dpo":
        return trl.DPOConfig, trl.DPOTrainer
    if method == "kto":
        return trl.KTOConfig, trl.KTOTrainer
    if method == "rm":
        return trl.RewardConfig, trl.RewardTrainer
    if method == "orpo":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOConfig, ORPOTrainer
    if method in ("simpo", "cpo"):  # SimPO is CPO's trainer with the simpo loss
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        return CPOConfig, CPOTrainer
    raise SystemExit(f"method {method!r} is not supported by this runner")


def apply_freeze(model, freeze: dict | None) -> None:
    """Train only the last N decoder layers (LLaMA-Factory's `freeze`)."""
    if not freeze:
        return
    layers = model.model.layers
    keep = set(range(len(layers) - freeze["trainable_layers"], len(layers)))
    for name, param in model.named_parameters():
        parts = name.split(".")
        idx = next((int(p) for p in parts if p.isdigit()), None)
        param.requires_grad = idx in keep and ".layers." in name


def use_loraplus(trainer, loraplus: dict | None) -> None:
    """LoRA+: the trainer's own optimizer, with the B matrices at lr x ratio (peft's optimizer groups)."""
    if not loraplus:
        return
    from peft.optimizers import create_loraplus_optimizer

    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    kwargs["weight_decay"] = trainer.args.weight_decay
    trainer.optimizer = create_loraplus_optimizer(trainer.model, optimizer_cls, loraplus_lr_ratio=loraplus["lr_ratio"],
                                                  loraplus_lr_embedding=loraplus["lr_embedding"], **kwargs)


def save_pissa_init(model, out: Path, peft_cfg: dict | None) -> Path | None:
    """Keep the PiSSA starting adapter, which converting the trained one back to plain LoRA needs."""
    if not peft_cfg or not str(peft_cfg.get("init_lora_weights", "")).startswith("pissa"):
        return None
    init_dir = out / "pissa_init"
    config = model.peft_config["default"]
    config.init_lora_weights = True  # saved as a plain LoRA start point (peft's documented recipe)
    if os.environ.get("RANK", "0") == "0":  # every process has the same start point; one writes it
        model.save_pretrained(str(init_dir))
    config.init_lora_weights = peft_cfg["init_lora_weights"]
    return init_dir


def save_trained(trainer, tokenizer, out: Path, pissa_dir: Path | None, log: EventLog) -> Path:
    """The adapter (peft) or full model, with the tokenizer, in out/final; the run's end event."""

    final = out / "final"
    if pissa_dir:
        # A PiSSA adapter only fits the rewritten base; saved this way it is a plain LoRA on the original base.
        if log.is_main:
            trainer.model.save_pretrained(str(final), path_initial_model_for_weight_conversion=str(pissa_dir))
    else:
        trainer.save_model(str(final))
    if log.is_main:  # every process ends here; one writes
        tokenizer.save_pretrained(str(final))
    log.write({"event": "end", "global_step": trainer.state.global_step,
               "elapsed_s": round(time.monotonic() - log.started, 3), "peak_memory_mb": peak_memory_mb()})
    return final


def datasets_for(cfg: dict, base: Path, tokenizer, method: str, log: EventLog):
    """Arrow-backed datasets (memory-mapped, not held in Python lists); SFT chats are tokenized with masks."""
    from chat_tokens import tokenize_chat  # uft's canonical masking, copied beside this file

    data = cfg["data"]
    loaded = []
    for key in ("train", "eval"):
        if not data.get(key):
            loaded.append(None)
            continue
        dataset = load_records(base / data[key])
        if method == "sft":
            dataset = dataset.map(
                lambda row: tokenize_chat(tokenizer, row["messages"], cfg["trainer"]["max_length"],
                                          data["train_on_prompt"], row.get("tools")),
                remove_columns=dataset.column_names, desc=f"Tokenizing {key} chats")
            before = len(dataset)
            dataset = dataset.filter(lambda row: 1 in row["assistant_masks"])
            if len(dataset) == 0:
                raise SystemExit(f"error: no {key} sample keeps an assistant token within max_length "
                                 f"({cfg['trainer']['max_length']} tokens); raise data.max_length")
            if len(dataset) < before:
                # Said out loud, never silent: these samples would carry no loss at all.
                log.write({"event": "dropped", "split": key, "count": before - len(dataset),
                           "reason": "no assistant token left within max_length"})
                print(f"warning: {before - len(dataset)} {key} samples have no assistant token within "
                      f"max_length and were skipped", file=sys.stderr)
        loaded.append(dataset)
    return loaded[0], loaded[1]


#: Column types of uft's record files (unified_ft/data/records.py), given to `datasets` explicitly: its JSON
#: loader guesses types, and turns a column of ISO-date strings ("2024-01-01") into timestamps.
_MESSAGES = [{"role": "string", "content": "string"}]
RECORD_COLUMNS = {"messages": _MESSAGES, "prompt": _MESSAGES, "chosen": _MESSAGES, "rejected": _MESSAGES,
                  "completion": _MESSAGES, "tools": "string", "text": "string", "label": "bool"}


def load_records(path: Path):
    """A JSONL record file as an Arrow-backed Dataset whose text is exactly the file's text.

    The rows are parsed by Python's json module and written with explicit string features, so no value is
    ever reinterpreted as a date or number. The cache key includes the file's digest: an edited file is re-read.
    """
    from datasets import Dataset

    return Dataset.from_generator(_read_records, features=record_features(path),
                                  gen_kwargs={"path": str(path), "digest": _sha256(path)})


def record_features(path: Path):
    """`datasets.Features` for the columns that occur in a record file, in their first-seen order."""
    from datasets import Features, Value

    def feature(kind):
        if isinstance(kind, list):
            return [feature(kind[0])]
        if isinstance(kind, dict):
            return {name: feature(sub) for name, sub in kind.items()}
        return Value(kind)

    columns: dict[str, None] = {}
    for row in _read_records(str(path)):
        columns.update(dict.fromkeys(row))
    unknown = [name for name in columns if name not in RECORD_COLUMNS]
    if unknown:
        raise SystemExit(f"error: {path}: unknown record field(s) {', '.join(unknown)}; a record has only "
                         f"{', '.join(RECORD_COLUMNS)}")
    return Features({name: feature(RECORD_COLUMNS[name]) for name in columns})


def _read_records(path: str, digest: str = ""):
    """Rows of a JSONL file (`digest` only keys the datasets cache to the file's content)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_memory_mb() -> float:
    """Peak allocated GPU memory, or the process's peak RSS on CPU (MiB)."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def versions(names: tuple[str, ...] = STACK) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


