"""Run one fine-tuning job with Hugging Face trl + peft, from the config file beside it.

Usage: python train.py config.yaml

uft copies this program into a run's native/ folder next to config.yaml, the data files and
chat_tokens.py and modeling.py (uft's canonical masking and model loading), so the run can be repeated
with trl alone. It imports no part of uft. It writes:
  output/trainer_log.jsonl  one JSON object per logging step (plus start/end events)
  output/final/             the adapter (peft) or the full model
  output/versions.json      the package versions that ran
(What the trainer really did -- its samples, batches, learning rates -- is read by uft's trainer probe, which
uft puts beside a run it launches; see unified_ft/trainer_probe.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from chat_tokens import tokenize_chat  # noqa: E402  (uft's canonical masking, copied beside this file)
from modeling import load_model  # noqa: E402  (uft's model loading, copied beside this file)


def main(argv: list[str]) -> int:
    config_path = Path(argv[0] if argv else HERE / "config.yaml").resolve()
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    base = config_path.parent
    out = base / cfg["trainer"]["output_dir"]
    out.mkdir(parents=True, exist_ok=True)
    log = EventLog(out / "trainer_log.jsonl")
    try:
        return train(cfg, base, out, log)
    except KeyboardInterrupt:
        log.write({"event": "interrupted"})
        print("interrupted", file=sys.stderr)
        return 130


def train(cfg: dict, base: Path, out: Path, log: EventLog) -> int:
    import torch
    from transformers import TrainerCallback, set_seed

    seed = cfg["trainer"]["seed"]
    set_seed(seed)
    method = cfg["method"]
    (out / "versions.json").write_text(json.dumps(_versions(), indent=2))

    tokenizer, model = load_model(cfg["model"], cfg.get("quantization"), cfg.get("chat_template"))
    if cfg.get("quantization"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    _apply_freeze(model, cfg.get("freeze"))
    peft_config = _peft_config(cfg.get("peft"))

    train_ds, eval_ds = _datasets(cfg, base, tokenizer, method, log)
    trainer_kwargs = dict(cfg["trainer"])
    trainer_kwargs["output_dir"] = str(out)

    class JsonlLog(TrainerCallback):
        """Mirror the trainer's logs to a JSONL file that uft (or a person) can follow live."""

        def on_train_begin(self, args, state, control, **kwargs):
            log.write({"event": "start", "max_steps": state.max_steps, "num_train_epochs": args.num_train_epochs})

        def on_log(self, args, state, control, logs=None, **kwargs):
            row = {"step": state.global_step, "epoch": state.epoch, **(logs or {})}
            row["elapsed_s"] = round(time.monotonic() - log.started, 3)
            row["peak_memory_mb"] = _peak_memory_mb(torch)
            log.write(row)

    config_cls, trainer_cls = _classes(method)
    args = config_cls(**trainer_kwargs)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[JsonlLog()],
    )
    _read_in_order(trainer)
    _use_loraplus(trainer, cfg.get("loraplus"))
    pissa_dir = _save_pissa_init(trainer.model, out, cfg.get("peft"))
    trainer.train()
    final = out / "final"
    if pissa_dir:
        # A PiSSA adapter only fits the rewritten base; saved this way it is a plain LoRA on the original base.
        trainer.model.save_pretrained(str(final), path_initial_model_for_weight_conversion=str(pissa_dir))
    else:
        trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    log.write({"event": "end", "global_step": trainer.state.global_step,
               "elapsed_s": round(time.monotonic() - log.started, 3), "peak_memory_mb": _peak_memory_mb(torch)})
    return 0


class EventLog:
    """Append-only JSONL writer, flushed per line so a follower sees progress at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self.handle = path.open("a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.handle.write(json.dumps(row, default=str) + "\n")
        self.handle.flush()


def _read_in_order(trainer) -> None:
    """Batches in the data file's order, every epoch: the order is chosen when the data is written (uft's
    data.shuffle), so every framework given the same file trains on the same batches."""
    from torch.utils.data import SequentialSampler

    trainer._get_train_sampler = lambda *args, **kwargs: SequentialSampler(trainer.train_dataset)


def _apply_freeze(model, freeze: dict | None) -> None:
    """Train only the last N decoder layers (LLaMA-Factory's `freeze`)."""
    if not freeze:
        return
    layers = model.model.layers
    keep = set(range(len(layers) - freeze["trainable_layers"], len(layers)))
    for name, param in model.named_parameters():
        parts = name.split(".")
        idx = next((int(p) for p in parts if p.isdigit()), None)
        param.requires_grad = idx in keep and ".layers." in name


def _use_loraplus(trainer, loraplus: dict | None) -> None:
    """LoRA+: the trainer's own optimizer, with the B matrices at lr x ratio (peft's optimizer groups)."""
    if not loraplus:
        return
    from peft.optimizers import create_loraplus_optimizer

    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    kwargs["weight_decay"] = trainer.args.weight_decay
    trainer.optimizer = create_loraplus_optimizer(trainer.model, optimizer_cls, loraplus_lr_ratio=loraplus["lr_ratio"],
                                                  loraplus_lr_embedding=loraplus["lr_embedding"], **kwargs)


def _save_pissa_init(model, out: Path, peft_cfg: dict | None) -> Path | None:
    """Keep the PiSSA starting adapter, which converting the trained one back to plain LoRA needs."""
    if not peft_cfg or not str(peft_cfg.get("init_lora_weights", "")).startswith("pissa"):
        return None
    init_dir = out / "pissa_init"
    config = model.peft_config["default"]
    config.init_lora_weights = True  # saved as a plain LoRA start point (peft's documented recipe)
    model.save_pretrained(str(init_dir))
    config.init_lora_weights = peft_cfg["init_lora_weights"]
    return init_dir


def _peft_config(peft_cfg: dict | None):
    if not peft_cfg:
        return None
    import peft

    peft_cfg = dict(peft_cfg)
    kind = peft_cfg.pop("type")
    cls = {"lora": peft.LoraConfig, "prefix": peft.PrefixTuningConfig, "prompt": peft.PromptTuningConfig,
           "p_tuning": peft.PromptEncoderConfig}[kind]
    return cls(**peft_cfg)


def _classes(method: str):
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


def _datasets(cfg: dict, base: Path, tokenizer, method: str, log: EventLog):
    """Arrow-backed datasets (memory-mapped, not held in Python lists); SFT chats are tokenized with masks."""
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


def _peak_memory_mb(torch) -> float:
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "gguf", "bitsandbytes"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
