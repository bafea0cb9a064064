"""uft's trainer probe: what a Hugging Face Trainer really did, read from the trainer itself.

Every backend that trains through `transformers.Trainer` (trl, LLaMA-Factory, ms-swift, and next unsloth)
runs with this file as `sitecustomize.py` on PYTHONPATH, so one probe observes every framework the same
way without changing the framework's own command. It is active only when UFT_PROBE_OUT names a folder.
When `transformers.trainer` is imported, the probe wraps `Trainer.__init__` (to add a callback) and
`Trainer.training_step` (to see the first optimizer step's batches as the collator built them). It writes,
from process 0 only:
  observed.json  the trainer's arguments, optimizer groups, model dtypes, adapter, dataset size, the first
                 step's samples (token ids, labels, decoded text), the learning rate at every step, versions
  metrics.jsonl  one row per trainer log: step, epoch, loss, learning_rate (the one that step used; frameworks
                 log it before or after the scheduler's step), grad_norm, tokens (non-padding tokens fed so
                 far), elapsed_s (since the training loop began), peak_memory_mb -- one meaning on every backend

With UFT_PROBE_PREFLIGHT=1 the probe stops the framework as its training loop begins: it draws the first
optimizer step's batches from the loop's own dataloader (so the framework's template, tokenizer, collator and
sampler made them), writes observed.json and exits 0 before any step -- the bake-off's pre-flight.

It runs inside a framework's environment: the standard library only at import time, never any part of
uft, and a failure inside the probe is reported in observed.json, never raised into the training.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sys
import time
import traceback

PROBE_VERSION = 1
OUT_ENV = "UFT_PROBE_OUT"
PREFLIGHT_ENV = "UFT_PROBE_PREFLIGHT"
#: Optimizer steps whose end time and token counts are kept (for time to first step and throughput).
MAX_STEP_TIMES = 100_000
#: Samples of the first step kept whole (ids, labels, text); the rest of the step is kept as text only.
WHOLE_SAMPLES = 3
#: Dataset rows whose lengths and supervised tokens are counted (beyond, only the row count is read).
MAX_ROWS_SCANNED = 200_000
#: Rows of a dataset that encodes on access (ms-swift's lazy one) encoded once more to count their tokens.
MAX_LAZY_ROWS = 20_000
#: Dataset rows whose text is kept, to tell whether the framework reordered them at load.
FIRST_ROWS = 5
#: Characters of decoded text kept per sample.
MAX_TEXT = 4000
STACK = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "llamafactory", "ms-swift",
         "unsloth", "colossalai", "bitsandbytes", "deepspeed", "tokenizers")


class _AfterImport:
    """A meta-path finder that runs `then(module)` right after one module has been executed."""

    def __init__(self, name, then):
        self.name, self.then = name, then

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original, then = spec.loader.exec_module, self.then

        def exec_module(module):
            original(module)
            _guarded(then, module)

        spec.loader.exec_module = exec_module
        return spec


class _Observer:
    """Everything the probe learns during one training run, written as it arrives."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.data: dict = {"probe_version": PROBE_VERSION, "versions": _versions(), "python_prefix": sys.prefix,
                           "errors": [], "process_started": time.time(),
                           "learning_rate": {}, "first_step": [], "steps": []}
        self.started = time.monotonic()
        self.step_inputs: list = []
        self.tokens = 0
        self.supervised = 0
        self.is_main = os.environ.get("RANK", "0") == "0"
        self.trainer = None

    def write(self) -> None:
        if not self.is_main:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, "observed.json")
        data = dict(self.data)
        steps = sorted(int(k) for k in data["learning_rate"])
        data["learning_rate"] = [data["learning_rate"][str(s)] for s in steps]
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, default=str)
        os.replace(path + ".tmp", path)

    def log_row(self, row: dict) -> None:
        if not self.is_main:
            return
        with open(os.path.join(self.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")


_OBSERVER: _Observer | None = None


def _guarded(function, *args):
    """Run a probe step; an error is recorded for the read-back, never raised into the training."""
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - the probe must never break a run
        if _OBSERVER is not None:
            _OBSERVER.data["errors"].append(traceback.format_exc(limit=3))
        return None


def _patch_trainer(module) -> None:
    """Wrap Trainer.__init__ (add the callback) and Trainer.training_step (see the first step's batches)."""
    from transformers.trainer_callback import TrainerCallback

    trainer_cls = module.Trainer
    init, step = trainer_cls.__init__, trainer_cls.training_step

    class UftProbe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            _guarded(_on_train_begin, args, state, kwargs)

        def on_step_begin(self, args, state, control, **kwargs):
            _guarded(_on_step_begin, state)

        def on_step_end(self, args, state, control, **kwargs):
            _guarded(_on_step_end, state)

        def on_log(self, args, state, control, logs=None, **kwargs):
            _guarded(_on_log, args, state, logs or {})

        def on_train_end(self, args, state, control, **kwargs):
            _guarded(_on_train_end, state)

    @functools.wraps(init)  # frameworks read the signature (ms-swift picks `tokenizer` vs `processing_class`)
    def patched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if _OBSERVER is not None and _OBSERVER.trainer is None:
            _OBSERVER.trainer = self
            self.add_callback(UftProbe())

    @functools.wraps(step)
    def patched_step(self, model, inputs, *args, **kwargs):
        if _OBSERVER is not None and self is _OBSERVER.trainer:
            _guarded(_see_inputs, self, inputs)
        return step(self, model, inputs, *args, **kwargs)

    trainer_cls.__init__ = patched_init
    trainer_cls.training_step = patched_step


def _on_train_begin(args, state, kwargs) -> None:
    obs = _OBSERVER
    trainer = obs.trainer
    obs.started = time.monotonic()
    obs.is_main = bool(state.is_world_process_zero)
    obs.data["trainer"] = [c.__module__ + "." + c.__name__ for c in type(trainer).__mro__[:4]]
    obs.data["arguments"] = _arguments(args, state)
    obs.data["schedule"] = {"max_steps": state.max_steps, "num_train_epochs": state.num_train_epochs,
                            "warmup_steps": _call(args.get_warmup_steps, state.max_steps)}
    obs.data["optimizer"] = _optimizer(trainer.optimizer)
    obs.data["model"] = _model(trainer.model)
    obs.data["precision"] = {"bf16": args.bf16, "fp16": args.fp16,
                             "mixed_precision": str(getattr(trainer.accelerator, "mixed_precision", None))}
    obs.data["data"] = _dataset(trainer.train_dataset, _tokenizer(trainer))
    obs.data["sampler"] = _sampler(kwargs.get("train_dataloader"))
    obs.data["seed"] = {"args_seed": args.seed, "data_seed": args.data_seed, "torch_initial_seed": _torch_seed()}
    obs.data["versions"]["torch.version.cuda"] = _torch_cuda()  # which build of torch trained: cpu or cuda
    if os.environ.get(PREFLIGHT_ENV) == "1":
        _guarded(_preflight, trainer, kwargs.get("train_dataloader"))
        _exit_after_preflight()
    obs.write()


def _on_step_begin(state) -> None:
    optimizer = _OBSERVER.trainer.optimizer
    groups = getattr(optimizer, "param_groups", None) or getattr(getattr(optimizer, "optimizer", None),
                                                                  "param_groups", [])
    if groups:
        _OBSERVER.data["learning_rate"][str(state.global_step + 1)] = groups[0]["lr"]


def _preflight(trainer, loader) -> None:
    """The first optimizer step's batches from the dataloader the training loop is about to iterate (with the
    framework's own sampler, collator and every change it made to the trainer), without training."""
    obs = _OBSERVER
    obs.data["preflight"] = True
    wanted = max(1, int(trainer.args.gradient_accumulation_steps or 1))
    batches = []
    for batch in loader:
        batches.append(_token_tensors(batch))
        if len(batches) >= wanted:
            break
    obs.data["first_step"] = _samples(_tokenizer(trainer), batches)


def _exit_after_preflight() -> None:
    """Write what was seen and end the process now: nothing of the framework's training or cleanup runs."""
    _OBSERVER.write()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _on_step_end(state) -> None:
    obs = _OBSERVER
    if len(obs.data["steps"]) < MAX_STEP_TIMES:
        obs.data["steps"].append({"step": state.global_step, "t": time.time(), "tokens": obs.tokens,
                                  "supervised_tokens": obs.supervised})
    if state.global_step == 1 and obs.step_inputs:
        obs.data["first_step"] = _samples(_tokenizer(obs.trainer), obs.step_inputs)
        obs.step_inputs = []
        obs.write()


def _on_log(args, state, logs: dict) -> None:
    obs = _OBSERVER
    row = {"step": state.global_step, "epoch": state.epoch, "loss": logs.get("loss"),
           "learning_rate": obs.data["learning_rate"].get(str(state.global_step), logs.get("learning_rate")),
           "grad_norm": logs.get("grad_norm"),
           "tokens": obs.tokens * max(1, args.world_size), "elapsed_s": round(time.monotonic() - obs.started, 3),
           "peak_memory_mb": _peak_memory_mb()}
    if "eval_loss" in logs:
        row["eval_loss"] = logs["eval_loss"]
    if row["loss"] is not None or "eval_loss" in row:
        obs.log_row(row)


def _on_train_end(state) -> None:
    obs = _OBSERVER
    obs.data["done"] = {"global_step": state.global_step, "epoch": state.epoch,
                        "elapsed_s": round(time.monotonic() - obs.started, 3), "tokens": obs.tokens,
                        "supervised_tokens": obs.supervised, "peak_memory_mb": _peak_memory_mb(),
                        "ended": time.time(), **_device()}
    obs.write()


def _see_inputs(trainer, inputs) -> None:
    """Count the tokens fed to the model, and keep the first optimizer step's micro-batches."""
    _count_inputs(_OBSERVER, inputs)
    if trainer.state.global_step == 0:
        _OBSERVER.step_inputs.append(_token_tensors(inputs))


def _count_inputs(obs: _Observer, inputs) -> None:
    """Tokens fed to the model (non-padding where a mask says so) and tokens carrying loss, added up."""
    masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and hasattr(v, "sum")]
    if masks:
        obs.tokens += int(sum(int(m.sum()) for m in masks))
    elif hasattr(inputs.get("input_ids"), "numel"):
        obs.tokens += int(inputs["input_ids"].numel())
    labels = [v for k, v in inputs.items() if k.endswith("labels") and hasattr(v, "dim") and v.dim() == 2]
    obs.supervised += int(sum(int((v != -100).sum()) for v in labels))


def _token_tensors(batch) -> dict:
    """A batch's integer 2-D tensors (ids, masks, labels) as lists: what a sample is rebuilt from."""
    return {k: v.detach().cpu().tolist() for k, v in batch.items()
            if hasattr(v, "dtype") and not v.dtype.is_floating_point and v.dim() == 2}


def _samples(tokenizer, batches: list) -> list:
    """The first step's samples: padding removed by the attention mask; labels as the loss saw them."""
    samples = []
    for batch in batches:
        ids_key = "input_ids" if "input_ids" in batch else next((k for k in batch if k.endswith("input_ids")), None)
        if ids_key is None:
            continue
        mask_key = ids_key.replace("input_ids", "attention_mask")
        label_key = "labels" if ids_key == "input_ids" else ids_key.replace("input_ids", "labels")
        for i, ids in enumerate(batch[ids_key]):
            mask = batch[mask_key][i] if mask_key in batch else [1] * len(ids)
            keep = [j for j, m in enumerate(mask) if m]
            sample = {"input_ids": [ids[j] for j in keep]}
            if label_key in batch:
                sample["labels"] = [batch[label_key][i][j] for j in keep]
            sample["text"] = _decode(tokenizer, sample["input_ids"])
            if len(samples) >= WHOLE_SAMPLES:
                sample = {"text": sample["text"], "tokens": len(sample["input_ids"]),
                          **({"supervised": sum(1 for x in sample["labels"] if x != -100)}
                             if "labels" in sample else {})}
            samples.append(sample)
    return samples


def _arguments(args, state) -> dict:
    names = ("per_device_train_batch_size", "gradient_accumulation_steps", "world_size", "learning_rate",
             "lr_scheduler_type", "warmup_ratio", "warmup_steps", "num_train_epochs", "max_steps", "optim",
             "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "seed", "data_seed",
             "bf16", "fp16", "gradient_checkpointing", "group_by_length", "dataloader_drop_last")
    found = {name: _plain(getattr(args, name, None)) for name in names}
    found["train_dataloader_shuffle"] = getattr(args, "train_dataloader_shuffle", None)  # ms-swift's own
    return found


def _optimizer(optimizer) -> dict:
    inner = getattr(optimizer, "optimizer", optimizer)
    groups = []
    for group in getattr(inner, "param_groups", []):
        params = group.get("params", [])
        groups.append({"tensors": len(params), "parameters": int(sum(p.numel() for p in params)),
                       "lr": group.get("initial_lr", group.get("lr")), "weight_decay": group.get("weight_decay"),
                       "betas": list(group["betas"]) if "betas" in group else None, "eps": group.get("eps")})
    return {"class": type(inner).__module__ + "." + type(inner).__name__, "groups": groups}


def _model(model) -> dict:
    inner = getattr(model, "module", model)
    dtypes: dict = {}
    trainable = total = 0
    for param in inner.parameters():
        count = int(param.numel())
        dtypes[str(param.dtype).replace("torch.", "")] = dtypes.get(str(param.dtype).replace("torch.", ""), 0) + count
        total += count
        trainable += count if param.requires_grad else 0
    found = {"class": type(inner).__name__, "parameter_dtypes": dtypes, "trainable_parameters": trainable,
             "total_parameters": total,
             "gradient_checkpointing": _checkpointing(inner),
             "quantization": _quantization(inner)}
    peft_config = getattr(inner, "peft_config", None)
    if isinstance(peft_config, dict) and peft_config:
        config = next(iter(peft_config.values()))
        found["peft"] = {k: _plain(v) for k, v in config.to_dict().items()
                         if k in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora",
                                  "use_dora", "init_lora_weights", "num_virtual_tokens", "bias", "modules_to_save")}
    return found


def _checkpointing(model) -> bool:
    """Whether activations are recomputed (transformers 5 renamed is_gradient_checkpointing; ask by the new name
    where it exists, so the old one's deprecation warning stays out of the framework's log)."""
    name = "is_activation_checkpointing" if hasattr(type(model), "is_activation_checkpointing") else \
        "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def _quantization(model) -> dict | None:
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if config is None:
        return None
    as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    keep = ("quant_method", "load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type", "bnb_4bit_compute_dtype",
            "bnb_4bit_use_double_quant", "bits")
    return {k: _plain(v) for k, v in as_dict.items() if k in keep}


def _dataset(dataset, tokenizer) -> dict:
    """Rows after the framework's preprocessing (in the order it holds them, before the sampler), their token
    lengths and supervised tokens, and the text of the first rows (to tell whether it reordered them)."""
    found: dict = {"samples": _call(len, dataset), "class": type(dataset).__name__}
    columns = list(getattr(dataset, "column_names", None) or [])
    found["columns"] = columns
    lazy = not columns and found["samples"] and found["samples"] <= MAX_LAZY_ROWS  # encoded on access (ms-swift)
    if lazy:
        columns = list(dataset[0])
    ids = "input_ids" if "input_ids" in columns else None
    supervision = next((c for c in ("labels", "assistant_masks", "completion_mask") if c in columns), None)
    if ids is None or not found["samples"] or found["samples"] > MAX_ROWS_SCANNED:
        return found
    rows = (dataset[i] for i in range(found["samples"])) if lazy else \
        dataset.select_columns([c for c in (ids, supervision) if c])
    found.update(_row_counts(rows, supervision))
    found["first_rows_text"] = [_decode(tokenizer, dataset[i][ids])
                                for i in range(min(FIRST_ROWS, len(found["lengths"])))]
    return found


def _row_counts(rows, supervision: str | None) -> dict:
    """Token lengths (of input_ids) and supervised tokens (from `supervision`: labels, or a 0/1 mask) per row."""
    lengths, supervised = [], []
    for row in rows:
        lengths.append(len(row["input_ids"]))
        if supervision == "labels":
            supervised.append(sum(1 for x in row["labels"] if x != -100))
        elif supervision:
            supervised.append(int(sum(row[supervision])))
    found: dict = {"lengths": lengths}
    if supervision:
        found["supervised_tokens"] = supervised
        found["supervised_from"] = supervision
    return found


def _sampler(dataloader) -> str | None:
    """The class of the sampler that orders the training samples (random, sequential, length-grouped)."""
    if dataloader is None:
        return None
    for holder in (dataloader, getattr(dataloader, "base_dataloader", None)):
        if holder is None:
            continue
        batch_sampler = getattr(holder, "batch_sampler", None)
        sampler = getattr(batch_sampler, "sampler", None) or getattr(holder, "sampler", None)
        sampler = getattr(sampler, "sampler", sampler)  # accelerate's SeedableRandomSampler wraps nothing
        if sampler is not None:
            return type(sampler).__name__
    return None


def _tokenizer(trainer):
    for name in ("processing_class", "tokenizer", "template"):
        found = getattr(trainer, name, None)
        found = getattr(found, "tokenizer", found)
        if hasattr(found, "decode"):
            return found
    return None


def _decode(tokenizer, ids: list) -> str | None:
    if tokenizer is None:
        return None
    return tokenizer.decode(ids, skip_special_tokens=False)[:MAX_TEXT]


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set)):
        return sorted(str(v) for v in value) if isinstance(value, set) else [_plain(v) for v in value]
    return str(getattr(value, "value", value))


def _call(function, *args):
    with contextlib.suppress(Exception):
        return function(*args)
    return None


def _torch_seed():
    import torch

    return int(torch.initial_seed())


def _torch_cuda() -> str:
    import torch

    return str(torch.version.cuda)


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _device() -> dict:
    """The device that trained, and on GPU the allocator's peak reservation (for the bake-off's memory and MFU)."""
    import platform

    import torch

    if torch.cuda.is_available():
        return {"device": torch.cuda.get_device_name(0), "device_count": torch.cuda.device_count(),
                "peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1)}
    return {"device": "cpu: " + (platform.processor() or platform.machine()), "device_count": os.cpu_count()}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in STACK:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


class LoopObserver:
    """The probe for a training loop of its own (no transformers.Trainer: uft's ColossalAI runner).

    The loop calls these at the points where a Trainer's callbacks would fire, and the probe writes observed.json
    and metrics.jsonl in the same schema, with the same helpers, as for a Trainer, so uft's read-back and the
    bake-off's parity checks treat the run like any other. Get one with `loop_observer()` (None when uft is not
    probing). Every method is guarded: an error is recorded in observed.json, never raised into the training.

        probe = sitecustomize.loop_observer()     # None unless uft launched the run
        probe.begin(arguments=..., schedule=..., optimizer=..., model=..., rows=..., dataloader=..., ...)
        for each optimizer step s (1, 2, ...):
            probe.step_begin(s, lr)               # the learning rate this step uses
            probe.see_inputs(micro_batch)         # every micro-batch fed to the model (input_ids, mask, labels)
            probe.step_end(s)
            probe.log({"step": s, "epoch": ..., "loss": ..., "grad_norm": ...})
        probe.end(global_step, epoch)

    With UFT_PROBE_PREFLIGHT=1, `begin` draws the first optimizer step's micro-batches from `dataloader` (the
    loop's own), writes observed.json and ends the process with exit code 0 before any step.
    """

    #: The argument names a Trainer's observation carries (TrainingArguments' names); the loop gives each.
    ARGUMENTS = ("per_device_train_batch_size", "gradient_accumulation_steps", "world_size", "learning_rate",
                 "lr_scheduler_type", "warmup_ratio", "warmup_steps", "num_train_epochs", "max_steps", "optim",
                 "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "seed", "data_seed",
                 "bf16", "fp16", "gradient_checkpointing", "group_by_length", "dataloader_drop_last")

    def __init__(self, observer: _Observer) -> None:
        self.obs = observer
        self.tokenizer = None
        self.world_size = 1
        self.global_step = 0

    def begin(self, *, arguments: dict, schedule: dict, optimizer, model, rows: list, tokenizer=None,
              dataloader=None, sampler: str | None = None, precision: dict | None = None,
              trainer: list | None = None) -> None:
        """The loop is about to train. `arguments`: TrainingArguments-named settings (ARGUMENTS; missing ones are
        null); `schedule`: max_steps, num_train_epochs, warmup_steps; `optimizer`: the torch optimizer (or a
        wrapper holding it as .optim/.optimizer); `model`: the model as trained (a peft model for an adapter);
        `rows`: the training samples in the loop's order, each a dict with input_ids and labels (or a 0/1
        assistant_masks); `sampler`: the class name of what orders them; `precision`: bf16, fp16, mixed_precision;
        `trainer`: names of what trains (e.g. the booster and plugin classes)."""
        _guarded(self._begin, arguments, schedule, optimizer, model, rows, tokenizer, dataloader, sampler,
                 precision, trainer)

    def _begin(self, arguments, schedule, optimizer, model, rows, tokenizer, dataloader, sampler, precision,
               trainer) -> None:
        obs = self.obs
        obs.started = time.monotonic()
        self.tokenizer = tokenizer
        self.world_size = int(arguments.get("world_size") or 1)
        obs.data["trainer"] = list(trainer or [])
        obs.data["arguments"] = {name: _plain(arguments.get(name)) for name in self.ARGUMENTS}
        obs.data["arguments"]["train_dataloader_shuffle"] = arguments.get("train_dataloader_shuffle")
        obs.data["schedule"] = {k: schedule.get(k) for k in ("max_steps", "num_train_epochs", "warmup_steps")}
        obs.data["optimizer"] = _optimizer(getattr(optimizer, "optim", optimizer))
        obs.data["model"] = _model(model)
        obs.data["precision"] = {"bf16": False, "fp16": False, "mixed_precision": "no", **(precision or {})}
        data = {"samples": len(rows), "class": type(rows).__name__, "columns": list(rows[0]) if rows else []}
        if 0 < len(rows) <= MAX_ROWS_SCANNED:
            supervision = next((c for c in ("labels", "assistant_masks", "completion_mask") if c in rows[0]), None)
            data.update(_row_counts(rows, supervision))
            data["first_rows_text"] = [_decode(tokenizer, row["input_ids"]) for row in rows[:FIRST_ROWS]]
        obs.data["data"] = data
        obs.data["sampler"] = sampler
        obs.data["seed"] = {"args_seed": arguments.get("seed"), "data_seed": arguments.get("data_seed"),
                            "torch_initial_seed": _torch_seed()}
        obs.data["versions"]["torch.version.cuda"] = _torch_cuda()
        if os.environ.get(PREFLIGHT_ENV) == "1":
            _guarded(self._preflight, dataloader, int(arguments.get("gradient_accumulation_steps") or 1))
            _exit_after_preflight()
        obs.write()

    def _preflight(self, dataloader, accumulation: int) -> None:
        self.obs.data["preflight"] = True
        batches = []
        for batch in dataloader if dataloader is not None else ():
            batches.append(_token_tensors(batch))
            if len(batches) >= max(1, accumulation):
                break
        self.obs.data["first_step"] = _samples(self.tokenizer, batches)

    def see_inputs(self, batch) -> None:
        """A micro-batch as fed to the model (a dict of tensors: input_ids, attention_mask, labels)."""
        _guarded(self._see_inputs, batch)

    def _see_inputs(self, batch) -> None:
        _count_inputs(self.obs, batch)
        if self.global_step == 0:
            self.obs.step_inputs.append(_token_tensors(batch))

    def step_begin(self, step: int, lr: float) -> None:
        """Optimizer step `step` (1 first) begins and uses learning rate `lr`."""
        self.obs.data["learning_rate"][str(step)] = lr

    def step_end(self, step: int) -> None:
        """Optimizer step `step` has updated the weights."""
        _guarded(self._step_end, step)

    def _step_end(self, step: int) -> None:
        obs = self.obs
        self.global_step = step
        if len(obs.data["steps"]) < MAX_STEP_TIMES:
            obs.data["steps"].append({"step": step, "t": time.time(), "tokens": obs.tokens,
                                      "supervised_tokens": obs.supervised})
        if step == 1 and obs.step_inputs:
            obs.data["first_step"] = _samples(self.tokenizer, obs.step_inputs)
            obs.step_inputs = []
            obs.write()

    def log(self, row: dict) -> None:
        """A logging step: step, epoch, loss, grad_norm (eval_loss too, if any); the probe adds the learning rate
        that step used, the tokens fed so far, the elapsed time and peak memory, as for a Trainer."""
        _guarded(self._log, row)

    def _log(self, row: dict) -> None:
        obs, step = self.obs, row.get("step")
        out = {"step": step, "epoch": row.get("epoch"), "loss": row.get("loss"),
               "learning_rate": obs.data["learning_rate"].get(str(step), row.get("learning_rate")),
               "grad_norm": row.get("grad_norm"), "tokens": obs.tokens * max(1, self.world_size),
               "elapsed_s": round(time.monotonic() - obs.started, 3), "peak_memory_mb": _peak_memory_mb()}
        if "eval_loss" in row:
            out["eval_loss"] = row["eval_loss"]
        if out["loss"] is not None or "eval_loss" in out:
            obs.log_row(out)

    def end(self, global_step: int, epoch: float | None = None) -> None:
        """Training is over: `global_step` optimizer steps ran, ending at `epoch`."""
        _guarded(self._end, global_step, epoch)

    def _end(self, global_step: int, epoch: float | None) -> None:
        obs = self.obs
        obs.data["done"] = {"global_step": global_step, "epoch": epoch,
                            "elapsed_s": round(time.monotonic() - obs.started, 3), "tokens": obs.tokens,
                            "supervised_tokens": obs.supervised, "peak_memory_mb": _peak_memory_mb(),
                            "ended": time.time(), **_device()}
        obs.write()


def loop_observer() -> LoopObserver | None:
    """The probe for a custom training loop, or None when uft is not probing this run (UFT_PROBE_OUT unset)."""
    install()
    return LoopObserver(_OBSERVER) if _OBSERVER is not None else None


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this file shadows on PYTHONPATH, if the environment has one of its own."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")
        candidate = os.path.join(folder, "sitecustomize.py")
        if folder != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_uft_shadowed_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


def install() -> None:
    """Start observing if UFT_PROBE_OUT is set (it is only in runs that uft launches)."""
    global _OBSERVER
    out = os.environ.get(OUT_ENV)
    if not out or _OBSERVER is not None:
        return
    _OBSERVER = _Observer(out)
    sys.meta_path.insert(0, _AfterImport("transformers.trainer", _patch_trainer))


if __name__ in ("sitecustomize", "__main__"):
    install()
    with contextlib.suppress(Exception):
        _chain_next_sitecustomize()
