"""Fine-tune a causal language model with ColossalAI's Booster, from the job file beside this program.

Usage: python train.py colossalai_job.json            (one process: torch.distributed defaults are set here)
       colossalai run --nproc_per_node N train.py colossalai_job.json
       python train.py colossalai_job.json --check    (read the job and build its configs, without training)

uft copies this program into a run's native/ folder next to colossalai_job.json, data/train.jsonl and
chat_tokens.py, modeling.py and runner_support.py (uft's canonical masking, model loading and runner plumbing),
so the run can be repeated with ColossalAI alone. It imports no part of uft. The flow:
  records (uft's JSONL) -> tokens with uft's label mask -> model -> colossalai.launch_from_torch
  -> Booster(plugin) -> booster.enable_lora -> a training loop: samples in the file's order, gradient
  accumulation, transformers.get_scheduler, AdamW/SGD with explicit settings, gradient clipping
and it writes:
  output/trainer_log.jsonl  one JSON object per logging step (plus start/end events)
  output/final/             the adapter (peft format) or the full model, with the tokenizer
  output/versions.json      the package versions that ran
The loss of an optimizer step is the mean over every supervised token of its accumulated micro-batches (each
sequence's first token is never a target), which is how transformers' Trainer computes it, so the losses
compare with trl's. What the loop really did is reported to uft's probe when uft launched the run (the probe is
then importable as `sitecustomize`; see unified_ft/trainer_probe.py LoopObserver).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from chat_tokens import tokenize_chat, tokenize_text  # noqa: E402  (uft's canonical masking, copied beside this file)
from modeling import load_model  # noqa: E402  (uft's model loading, copied beside this file)
from runner_support import (  # noqa: E402  (uft's runner support, copied beside this file)
    EventLog,
    apply_freeze,
    peak_memory_mb,
    run_logged,
    save_pissa_init,
    versions,
)

#: Packages whose versions the run reports (versions.json).
STACK = ("colossalai", "torch", "transformers", "peft", "accelerate", "safetensors", "bitsandbytes")

#: torch.distributed's variables for a single process started with plain `python` (torchrun sets them).
SINGLE_PROCESS = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
#: transformers' rule for parameters without weight decay (Trainer.get_decay_parameter_names).
NO_DECAY = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
TORCH_SAMPLER = "SequentialSampler"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    job_path = Path(argv[0] if argv else HERE / "colossalai_job.json").resolve()
    cfg = json.loads(job_path.read_text(encoding="utf-8"))
    base = job_path.parent
    if check:
        return check_job(cfg)
    out = base / cfg["output_dir"]
    return run_logged(out, lambda log: train(cfg, base, out, log), rank=int(os.environ.get("RANK", "0")))


def check_job(cfg: dict) -> int:
    """Build what the job describes without a model or a process group: a wrong key fails here."""
    plugin_settings(cfg)
    lora_config(cfg.get("peft"))
    from transformers import SchedulerType

    SchedulerType(cfg["training"]["lr_scheduler"])
    if cfg["training"]["optimizer"] not in ("adamw_torch", "sgd"):
        raise SystemExit(f"error: optimizer {cfg['training']['optimizer']!r} is not adamw_torch or sgd")
    print("ok")
    return 0


def train(cfg: dict, base: Path, out: Path, log: EventLog) -> int:
    import torch

    t = cfg["training"]
    for key, value in SINGLE_PROCESS.items():
        os.environ.setdefault(key, value)
    import colossalai
    from colossalai.booster import Booster
    from transformers import set_seed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    colossalai.launch_from_torch(backend="nccl" if device == "cuda" else "gloo", seed=t["seed"], verbose=False)
    world = int(os.environ["WORLD_SIZE"])
    if log.is_main:
        (out / "versions.json").write_text(json.dumps(versions(STACK), indent=2))

    tokenizer, model = load_model(cfg["model"], None, cfg.get("chat_template"))  # QLoRA: quantized by enable_lora
    apply_freeze(model, cfg.get("freeze"))
    if t["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    rows = tokenized_rows(cfg, base, tokenizer, log)

    plugin = make_plugin(cfg)
    booster = Booster(plugin=plugin)
    set_seed(t["seed"])  # right before the adapter's random start, as trl seeds it (launch seeded too)
    if cfg.get("peft"):
        kwargs = {}
        if cfg["quantization"]:
            kwargs = {"bnb_quantization_config": bnb_config(cfg), "quantize": True}
        model = booster.enable_lora(model, lora_config=lora_config(cfg["peft"]), **kwargs)
        if t["gradient_checkpointing"]:
            model.enable_input_require_grads()
    pissa_dir = save_pissa_init(model, out, cfg.get("peft")) if log.is_main else None

    dp_size = int(getattr(plugin, "dp_size", world) or world)  # hybrid_parallel: processes that read other data
    dp_group = getattr(plugin, "dp_group", None)
    loader, sampler_name = dataloader(rows, t["per_device_batch_size"], tokenizer.pad_token_id, plugin, world)
    steps_per_epoch = max(math.ceil(len(loader) / t["gradient_accumulation_steps"]), 1)
    max_steps = t["max_steps"] if t["max_steps"] > 0 else math.ceil(t["num_train_epochs"] * steps_per_epoch)
    epochs = math.ceil(max_steps / steps_per_epoch) if t["max_steps"] > 0 else math.ceil(t["num_train_epochs"])
    warmup = math.ceil(t["warmup_ratio"] * max_steps)  # transformers' get_warmup_steps
    optimizer = make_optimizer(model, cfg)
    from transformers import get_scheduler

    scheduler = get_scheduler(t["lr_scheduler"], optimizer, num_warmup_steps=warmup, num_training_steps=max_steps)
    peft_model = model
    model, optimizer, _, _, scheduler = booster.boost(model, optimizer, lr_scheduler=scheduler)

    probe = loop_probe()
    if probe is not None:
        probe.begin(arguments=probe_arguments(cfg, dp_size, max_steps, warmup), tokenizer=tokenizer,
                    schedule={"max_steps": max_steps, "num_train_epochs": epochs, "warmup_steps": warmup},
                    optimizer=optimizer, model=peft_model, rows=rows, dataloader=loader, sampler=sampler_name,
                    precision={"bf16": cfg["precision"] == "bf16", "fp16": cfg["precision"] == "fp16",
                               "mixed_precision": cfg["precision"] if cfg["precision"] != "fp32" else "no"},
                    trainer=["colossalai.booster.Booster", f"{type(plugin).__module__}.{type(plugin).__name__}"])
    log.write({"event": "start", "max_steps": max_steps, "num_train_epochs": epochs, "plugin": cfg["plugin"]["name"],
               "world_size": world})

    step, epoch, tokens = 0, 0.0, 0
    model.train()
    for epoch_index in range(epochs):
        batches = list(loader)
        groups = [batches[i:i + t["gradient_accumulation_steps"]]
                  for i in range(0, len(batches), t["gradient_accumulation_steps"])]
        seen = 0
        for group in groups:
            if step >= max_steps:
                break
            lr = optimizer.param_groups[0]["lr"]
            if probe is not None:
                probe.step_begin(step + 1, lr)
            # the denominator of transformers' loss: every target token of the accumulated batch (labels shifted)
            targets = sum(int((b["labels"][:, 1:] != -100).sum()) for b in group)
            targets = all_reduce_sum(targets, dp_size, device, dp_group)
            step_loss = 0.0
            for batch in group:
                if probe is not None:
                    probe.see_inputs(batch)
                batch = {k: v.to(device) for k, v in batch.items()}
                tokens += int(batch["attention_mask"].sum())
                with autocast(cfg["precision"], device, cfg["plugin"]["name"]):
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                # data-parallel processes average their gradients: scaled so the mean is over every target token
                loss = token_loss(logits, batch["labels"], max(targets, 1)) * dp_size
                booster.backward(loss, optimizer)
                step_loss += float(loss.detach()) / dp_size
            step_loss = all_reduce_sum(step_loss, dp_size, device, dp_group)  # the whole batch's loss
            seen += len(group)
            grad_norm = clip(optimizer, t["max_grad_norm"], cfg["plugin"]["name"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            epoch = epoch_index + seen / len(batches)
            if probe is not None:
                probe.step_end(step)
            if step % t["logging_steps"] == 0 or step == max_steps:
                row = {"step": step, "epoch": epoch, "loss": step_loss, "grad_norm": grad_norm, "learning_rate": lr}
                if probe is not None:
                    probe.log(row)
                log.write({**row, "num_tokens": tokens * dp_size, "elapsed_s": round(time.monotonic() - log.started, 3),
                           "peak_memory_mb": peak_memory_mb()})
            if t.get("save_steps") and step % t["save_steps"] == 0 and step < max_steps:
                save(booster, model, peft_model, tokenizer, out / f"checkpoint-{step}", cfg, None)
        if step >= max_steps:
            break
    save(booster, model, peft_model, tokenizer, out / "final", cfg, pissa_dir)
    if probe is not None:
        probe.end(step, epoch)
    log.write({"event": "end", "global_step": step, "elapsed_s": round(time.monotonic() - log.started, 3),
               "peak_memory_mb": peak_memory_mb()})
    return 0


def loop_probe():
    """uft's probe when uft launched this run (importable as sitecustomize), else None."""
    try:
        import sitecustomize
    except ImportError:
        return None
    factory = getattr(sitecustomize, "loop_observer", None)
    return factory() if factory is not None else None


def probe_arguments(cfg: dict, world: int, max_steps: int, warmup: int) -> dict:
    """The settings this loop trains with, under transformers' TrainingArguments names (what the probe records)."""
    t = cfg["training"]
    return {"per_device_train_batch_size": t["per_device_batch_size"],
            "gradient_accumulation_steps": t["gradient_accumulation_steps"], "world_size": world,
            "learning_rate": t["learning_rate"], "lr_scheduler_type": t["lr_scheduler"],
            "warmup_ratio": t["warmup_ratio"], "warmup_steps": warmup, "num_train_epochs": t["num_train_epochs"],
            "max_steps": t["max_steps"], "optim": t["optimizer"], "weight_decay": t["weight_decay"],
            "adam_beta1": t["adam_beta1"], "adam_beta2": t["adam_beta2"], "adam_epsilon": t["adam_epsilon"],
            "max_grad_norm": t["max_grad_norm"], "seed": t["seed"], "data_seed": t["seed"],
            "bf16": cfg["precision"] == "bf16", "fp16": cfg["precision"] == "fp16",
            "gradient_checkpointing": t["gradient_checkpointing"], "group_by_length": False,
            "dataloader_drop_last": False, "train_dataloader_shuffle": False}


def tokenized_rows(cfg: dict, base: Path, tokenizer, log: EventLog) -> list[dict]:
    """uft's records as token ids with labels (-100 where the mask is 0), in the file's order."""
    data = cfg["data"]
    rows, dropped = [], 0
    with open(base / data["train"], encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            if "text" in record:
                encoded = tokenize_text(tokenizer, record["text"], data["max_length"])
            elif "messages" in record:
                encoded = tokenize_chat(tokenizer, record["messages"], data["max_length"], data["train_on_prompt"],
                                        record.get("tools"))
            else:
                raise SystemExit("error: a record has neither text nor messages (preference rows need ColossalChat)")
            if 1 not in encoded["assistant_masks"]:
                dropped += 1
                continue
            ids, mask = encoded["input_ids"], encoded["assistant_masks"]
            rows.append({"input_ids": ids, "labels": [i if m else -100 for i, m in zip(ids, mask, strict=True)]})
    if not rows:
        raise SystemExit(f"error: no sample keeps an assistant token within max_length ({data['max_length']} "
                         "tokens); raise data.max_length")
    if dropped:  # said out loud, never silent: these samples would carry no loss at all
        log.write({"event": "dropped", "split": "train", "count": dropped,
                   "reason": "no assistant token left within max_length"})
        print(f"warning: {dropped} train samples have no assistant token within max_length and were skipped",
              file=sys.stderr)
    return rows


def dataloader(rows: list[dict], batch_size: int, pad_id: int, plugin, world: int):
    """Batches in the data file's order, padded on the right to the longest sample of the batch, and the name of
    what orders them: one process reads the file in order; several read it through the plugin's distributed
    sampler with shuffling off (each data-parallel process every N-th row, in file order)."""
    import torch
    from torch.utils.data import DataLoader, SequentialSampler

    def collate(samples: list[dict]) -> dict:
        longest = max(len(s["input_ids"]) for s in samples)
        ids, mask, labels = [], [], []
        for s in samples:
            pad = longest - len(s["input_ids"])
            ids.append(s["input_ids"] + [pad_id] * pad)
            mask.append([1] * len(s["input_ids"]) + [0] * pad)
            labels.append(s["labels"] + [-100] * pad)
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}

    if world == 1:
        return DataLoader(rows, batch_size=batch_size, sampler=SequentialSampler(rows), collate_fn=collate), \
            TORCH_SAMPLER
    loader = plugin.prepare_dataloader(rows, batch_size, shuffle=False, drop_last=False, collate_fn=collate)
    return loader, "DistributedSampler(shuffle=False)"


def token_loss(logits, labels, targets: int):
    """Summed cross-entropy of next-token predictions over supervised targets, divided by the accumulated batch's
    target count (transformers' ForCausalLMLoss with num_items_in_batch)."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :].float().reshape(-1, logits.size(-1))
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum") / targets


def all_reduce_sum(value, processes: int, device: str, group=None):
    """A number summed over the data-parallel processes (an int stays an int)."""
    if processes == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], device=device, dtype=torch.float64 if isinstance(value, float) else torch.int64)
    dist.all_reduce(tensor, group=group)
    return type(value)(tensor.item())


def autocast(precision: str, device: str, plugin: str):
    """torch_ddp leaves precision to the loop (weights are loaded in the spec's dtype, as trl loads them); the other
    plugins control precision themselves."""
    import torch

    if plugin != "torch_ddp" or precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def clip(optimizer, max_norm: float, plugin: str):
    """Gradient clipping; the total norm before clipping (what transformers logs as grad_norm)."""
    if plugin != "torch_ddp":
        return None  # the plugin clips inside its optimizer step (max_norm given to the plugin)
    import torch

    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if max_norm and max_norm > 0 else \
        torch.nn.utils.clip_grad_norm_(params, float("inf"))
    return float(norm)


def plugin_settings(cfg: dict) -> tuple[str, dict]:
    """The plugin's class name and keyword arguments, every one explicit."""
    settings, precision = dict(cfg["plugin"]), cfg["precision"]
    name = settings.pop("name")
    max_norm = cfg["training"]["max_grad_norm"] or 0.0
    if name == "torch_ddp":
        return "TorchDDPPlugin", {"find_unused_parameters": False, "broadcast_buffers": True}
    if name == "low_level_zero":
        return "LowLevelZeroPlugin", {"stage": settings["stage"], "precision": precision, "max_norm": max_norm}
    if name == "gemini":
        return "GeminiPlugin", {"placement_policy": settings["placement_policy"], "precision": precision,
                                "max_norm": max_norm, "enable_gradient_accumulation":
                                    cfg["training"]["gradient_accumulation_steps"] > 1}
    if name == "hybrid_parallel":
        kwargs = {"tp_size": settings["tp_size"], "pp_size": settings["pp_size"],
                  "zero_stage": settings["zero_stage"], "precision": precision, "max_norm": max_norm,
                  "parallel_output": False}  # whole-vocabulary logits on every process: the loss is computed here
        if "microbatch_size" in settings:
            kwargs["microbatch_size"] = settings["microbatch_size"]
        return "HybridParallelPlugin", kwargs
    if name == "torch_fsdp":
        return "TorchFSDPPlugin", {}
    raise SystemExit(f"error: unknown plugin {name!r}")


def make_plugin(cfg: dict):
    from colossalai.booster import plugin as plugins

    name, kwargs = plugin_settings(cfg)
    if name != "TorchDDPPlugin" and not __import__("torch").cuda.is_available():
        raise SystemExit(f"error: ColossalAI's {name} needs a CUDA GPU and this machine has none; use torch_ddp")
    if cfg["plugin"]["name"] == "hybrid_parallel" and cfg["plugin"]["pp_size"] > 1:
        raise SystemExit("error: pipeline parallelism (pp_size > 1) needs booster.execute_pipeline, which this runner "
                         "does not drive yet; use pp_size 1")
    return getattr(plugins, name)(**kwargs)


def lora_config(peft_cfg: dict | None):
    if not peft_cfg:
        return None
    import peft

    return peft.LoraConfig(**peft_cfg)


def bnb_config(cfg: dict):
    import torch
    from colossalai.quantization import BnbQuantizationConfig

    compute = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["precision"], torch.float32)
    if cfg["quantization"]["bits"] == 4:
        return BnbQuantizationConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                     bnb_4bit_compute_dtype=compute)
    return BnbQuantizationConfig(load_in_8bit=True)


def make_optimizer(model, cfg: dict):
    """AdamW (transformers' betas and epsilon, the spec's weight decay; torch's own default decay is 0.01) or SGD,
    with transformers' two parameter groups: no decay on biases and norm weights."""
    import torch

    t = cfg["training"]
    no_decay_modules = tuple(m for m in (torch.nn.LayerNorm,))
    skip = set()
    for module_name, module in model.named_modules():
        if isinstance(module, no_decay_modules):
            skip.update(f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters(recurse=False))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        if name in skip or any(re.search(pattern, lowered) for pattern in NO_DECAY):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": t["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if cfg.get("loraplus"):
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(model, torch.optim.AdamW, lr=t["learning_rate"],
                                         loraplus_lr_ratio=cfg["loraplus"]["lr_ratio"],
                                         loraplus_lr_embedding=cfg["loraplus"]["lr_embedding"],
                                         weight_decay=t["weight_decay"], betas=(t["adam_beta1"], t["adam_beta2"]),
                                         eps=t["adam_epsilon"])
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=t["learning_rate"])
    if t["optimizer"] != "adamw_torch":
        raise SystemExit(f"error: optimizer {t['optimizer']!r} is not adamw_torch or sgd")
    return torch.optim.AdamW(groups, lr=t["learning_rate"], betas=(t["adam_beta1"], t["adam_beta2"]),
                             eps=t["adam_epsilon"])


def save(booster, model, peft_model, tokenizer, folder: Path, cfg: dict, pissa_dir: Path | None) -> None:
    """The adapter in peft format (adapter_config.json + adapter_model.safetensors), or the full model."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    plugin = cfg["plugin"]["name"]
    if cfg.get("peft"):
        if pissa_dir is not None:  # torch_ddp only: the whole peft model is on this process
            if is_main:
                peft_model.save_pretrained(str(folder), path_initial_model_for_weight_conversion=str(pissa_dir))
        else:
            booster.save_lora_as_pretrained(model, str(folder), use_safetensors=True)
    elif plugin == "torch_ddp":
        if is_main:
            model.unwrap().save_pretrained(str(folder), safe_serialization=True)
    else:
        booster.save_model(model, str(folder), shard=True, use_safetensors=True)
        if is_main:
            model.unwrap().config.save_pretrained(str(folder))
    if is_main:
        tokenizer.save_pretrained(str(folder))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
