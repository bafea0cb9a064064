"""Run one fine-tuning job with unsloth, from the unsloth_job.json beside it.

Usage: python train.py unsloth_job.json

unsloth has no config-file CLI for fine-tuning, so uft writes this program into a run's native/ folder next to
unsloth_job.json (every unsloth setting explicit), the data file and runner_support.py / chat_tokens.py (uft's
canonical masking and the runner plumbing it shares with trl). It imports no part of uft, so the folder runs
with unsloth alone. The flow is unsloth's own: FastLanguageModel.from_pretrained -> get_peft_model -> trl's
trainer (unsloth patches trl when it is imported first) -> the adapter saved in peft format. It writes:
  output/trainer_log.jsonl  one JSON object per logging step (plus start/end events)
  output/final/             the adapter (peft) or the full model
  output/versions.json      the package versions that ran

unsloth changes some settings on its own (its CPU path turns `adamw_torch` into the fused AdamW and drops bf16
where the CPU lacks it); `keep_requested` puts back what the job asked for or stops with the reason, so the run
is the one the job describes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv: list[str]) -> int:
    job_path = Path(argv[0] if argv else HERE / "unsloth_job.json").resolve()
    job = json.loads(job_path.read_text(encoding="utf-8"))
    os.environ.update(job.get("environment", {}))  # before unsloth is imported: it reads them at import
    from runner_support import run_logged

    base = job_path.parent
    out = base / job["trainer"]["output_dir"]
    return run_logged(out, lambda log: train(job, base, out, log))


def train(job: dict, base: Path, out: Path, log) -> int:
    import torch
    import unsloth  # noqa: F401  (before transformers and trl: it patches them as it is imported)
    from runner_support import (
        datasets_for,
        jsonl_log_callback,
        read_in_order,
        save_pissa_init,
        save_trained,
        trainer_classes,
        use_loraplus,
        versions,
    )
    from transformers import set_seed
    from unsloth import FastLanguageModel

    set_seed(job["trainer"]["seed"])
    method = job["method"]
    (out / "versions.json").write_text(json.dumps(versions(), indent=2))
    loading = dict(job["model"])
    loading["dtype"] = getattr(torch, loading["dtype"])
    model, tokenizer = FastLanguageModel.from_pretrained(**loading)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor for multimodal models
    if job.get("chat_template"):
        tokenizer.chat_template = job["chat_template"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if job.get("peft"):
        model = FastLanguageModel.get_peft_model(model, **job["peft"])

    train_ds, eval_ds = datasets_for(job, base, tokenizer, method, log)
    config_cls, trainer_cls = trainer_classes(method)
    requested = dict(job["trainer"], output_dir=str(out))
    args = config_cls(**requested)
    keep_requested(args, requested)
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                          processing_class=tokenizer, callbacks=[jsonl_log_callback(log)])
    keep_requested(trainer.args, requested)
    read_in_order(trainer)
    use_loraplus(trainer, job.get("loraplus"))
    pissa_dir = save_pissa_init(trainer.model, out, job.get("peft"))
    trainer.train()
    save_trained(trainer, tokenizer, out, pissa_dir, log)
    return 0


#: Settings unsloth rewrites while building a trainer config, put back to the job's value (they change how
#: the run is computed, not whether it can run): its CPU path swaps `adamw_torch` for the fused kernel.
RESTORED = ("optim",)
#: Settings unsloth turns off where this machine cannot honour them: a clear stop, never a silent change.
REFUSED = ("bf16", "fp16", "packing")


def keep_requested(args, requested: dict) -> None:
    """Undo unsloth's silent changes to the job's trainer settings, or stop naming the one it cannot keep."""
    for key in RESTORED:
        if key in requested and _plain(getattr(args, key)) != requested[key]:
            print(f"uft: unsloth changed {key} from {requested[key]!r} to {_plain(getattr(args, key))!r}; "
                  f"putting back the job's {requested[key]!r}", file=sys.stderr)
            setattr(args, key, requested[key])
    for key in REFUSED:
        if requested.get(key) and not getattr(args, key):
            raise SystemExit(f"error: unsloth turned {key} off on this machine (its CPU path cannot run it); "
                             f"choose another training.precision or data.packing: false")


def _plain(value):
    return getattr(value, "value", value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
