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

import json
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from modeling import load_model  # noqa: E402  (uft's model loading, copied beside this file)
from runner_support import (  # noqa: E402  (uft's runner support, copied beside this file)
    EventLog,
    apply_freeze,
    datasets_for,
    jsonl_log_callback,
    read_in_order,
    run_logged,
    save_pissa_init,
    save_trained,
    trainer_classes,
    use_loraplus,
    versions,
)


def main(argv: list[str]) -> int:
    config_path = Path(argv[0] if argv else HERE / "config.yaml").resolve()
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    base = config_path.parent
    out = base / cfg["trainer"]["output_dir"]
    return run_logged(out, lambda log: train(cfg, base, out, log), rank=int(os.environ.get("RANK", "0")))


def train(cfg: dict, base: Path, out: Path, log: EventLog) -> int:
    from transformers import set_seed

    seed = cfg["trainer"]["seed"]
    set_seed(seed)
    method = cfg["method"]
    if log.is_main:
        (out / "versions.json").write_text(json.dumps(versions(), indent=2))

    tokenizer, model = load_model(cfg["model"], cfg.get("quantization"), cfg.get("chat_template"))
    if cfg.get("quantization"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    apply_freeze(model, cfg.get("freeze"))
    peft_config = _peft_config(cfg.get("peft"))

    train_ds, eval_ds = datasets_for(cfg, base, tokenizer, method, log)
    trainer_kwargs = dict(cfg["trainer"])
    trainer_kwargs["output_dir"] = str(out)
    trainer_kwargs.update(cpu_processes())

    config_cls, trainer_cls = trainer_classes(method)
    args = config_cls(**trainer_kwargs)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[jsonl_log_callback(log)],
    )
    read_in_order(trainer)
    use_loraplus(trainer, cfg.get("loraplus"))
    pissa_dir = save_pissa_init(trainer.model, out, cfg.get("peft"))
    trainer.train()
    save_trained(trainer, tokenizer, out, pissa_dir, log)
    return 0


def cpu_processes() -> dict:
    """Several processes on a machine without CUDA train data parallel over gloo, which transformers does only
    when told the run is on CPU (else each process trains alone on all the data)."""
    import torch

    return {"use_cpu": True} if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available() else {}


def _peft_config(peft_cfg: dict | None):
    if not peft_cfg:
        return None
    import peft

    peft_cfg = dict(peft_cfg)
    kind = peft_cfg.pop("type")
    cls = {"lora": peft.LoraConfig, "prefix": peft.PrefixTuningConfig, "prompt": peft.PromptTuningConfig,
           "p_tuning": peft.PromptEncoderConfig}[kind]
    return cls(**peft_cfg)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
