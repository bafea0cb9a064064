"""Same-tool round trip on ms-swift's own examples: import each `ok` example of swift_examples/MANIFEST.yaml,
translate the spec back to swift (its data replaced by a small local file, as in test_migration_cross.py), and
compare swift's arguments key by key: every key whose effective value (explicit, else swift's default from
arguments.json) differs between the original command and uft's config.yaml must be one this file allows, with
the reason; where uft's value changes what the original would have done, the import notes must say so."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.test_migration_cross import EXAMPLES, _imported_spec
from unified_ft.backends.swift.importer import DEFAULTS, IGNORED, RENAMED, _command_of, import_swift, read_native
from unified_ft.launch import translate_to

SWIFT_EXAMPLES = [(path, entry) for tool, path, entry in EXAMPLES if tool == "swift"]

#: Keys whose value may differ after the round trip, each with why. A value is a reason, or (reason, the text the
#: import notes must contain) where uft's value changes what the original would have done.
ALLOWED: dict[str, str | tuple[str, str]] = {
    **{key: f"ignored by the importer: {why}" for key, why in IGNORED.items()},
    "dataset": "this test replaces the data by a small local file (the hub is unreachable here)",
    "split_dataset_ratio": ("the spec keeps it as data.eval_split, which uft's evaluation uses after training; "
                            "uft's swift translation does not split (and this test drops the eval data)",
                            "swift evaluates on the eval data during training"),
    "use_hf": ("hub ids are looked up on the Hugging Face hub on every backend, ModelScope ids too",
               "is a ModelScope id in this command"),
    "eval_strategy": ("in-training evaluation is off in uft's translations; uft's shared evaluation judges the "
                      "result after training", "swift evaluates on the eval data during training"),
    "truncation_strategy": ("swift's default deletes rows longer than max_length; uft truncates them on every "
                            "backend", "uft truncates them"),
    "dataset_shuffle": ("uft's data step shuffles the rows once (data.shuffle, the spec's seed) and every backend "
                        "reads them in that order", "uft shuffles the rows once"),
    "train_dataloader_shuffle": ("every backend reads uft's row order every epoch, so all train on the same "
                                 "batches", "uft shuffles the rows once"),
    "optim": "swift's default adamw_torch_fused (transformers' on this torch) and uft's adamw_torch are the same "
             "AdamW; fused is a CUDA kernel choice",
    "template": ("no --template: swift takes the model's registered template; uft names the template that renders "
                 "the same chat format (template_for_model), so every backend renders it", "no --template"),
    "max_length": ("no --max_length: swift's is the model's maximum length, known only with the model",
                   "no --max_length"),
    "torch_dtype": ("no --torch_dtype: swift loads the model's own dtype; the spec says precision auto, resolved by "
                    "the plan (fp32 here, without a GPU)", "precision auto"),
    "bf16": ("mixed precision follows the dtype: precision auto, resolved by the plan", "precision auto"),
    "fp16": ("mixed precision follows the dtype: precision auto, resolved by the plan", "precision auto"),
    "loss_scale": ("swift's orpo puts NLL on every assistant turn; uft (as trl) on the chosen answer",
                   "swift's ORPO puts its NLL term on every assistant turn"),
}


MODEL_DTYPE, MODEL_LENGTH = "<the model's own dtype>", "<the model's maximum length>"


def _effective(args: dict[str, Any], key: str, command: str, world: int) -> Any:
    """A key's value as swift 4.6 would use it: explicit, else swift's default, including the defaults swift
    works out from other arguments while parsing (accumulation, learning rate, mixed precision, loss scale...)."""
    value = args.get(key)
    if key == "num_train_epochs" and _effective(args, "max_steps", command, world) > 0:
        return None  # max_steps > 0 overrides the epochs (transformers)
    if key == "template" and command == "pt":
        return "<plain text>" if value in (None, "dummy") else value  # pt renders no chat (use_chat_template false)
    if value is not None:
        return _normal(value)

    def other(name: str) -> Any:
        return _effective(args, name, command, world)

    computed = {
        "gradient_accumulation_steps": lambda: max(1, math.ceil(16 / other("per_device_train_batch_size") / world)),
        "learning_rate": lambda: 1e-5 if other("tuner_type") == "full" else 1e-4,
        "torch_dtype": lambda: MODEL_DTYPE,
        "bf16": lambda: other("torch_dtype") == "bfloat16" if other("torch_dtype") != MODEL_DTYPE else MODEL_DTYPE,
        "fp16": lambda: other("torch_dtype") in ("float16", "float32") if other("torch_dtype") != MODEL_DTYPE
        else MODEL_DTYPE,
        "bnb_4bit_compute_dtype": lambda: other("torch_dtype"),
        "max_length": lambda: MODEL_LENGTH,
        "loss_scale": lambda: "all" if command == "pt" else "default" if command == "sft" or
        args.get("rlhf_type") == "orpo" else "last_round",
        "beta": lambda: (2.0 if args.get("rlhf_type") == "simpo" else 0.1) if args.get("rlhf_type") else None,
        "eval_strategy": lambda: other("save_strategy") if args.get("val_dataset") or other("split_dataset_ratio")
        else "no",
    }
    return computed[key]() if key in computed else _normal(DEFAULTS.get(key))


def _normal(value: Any) -> Any:
    """One spelling per value: a one-item list is its item, numbers compare as numbers, 'true' as True."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _round_trip(path: Path, entry: dict[str, Any], tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    """(keys that differ and are not allowed, allowed differences, missing notes) for one example."""
    command, original, env, _ = read_native(path)
    original = {RENAMED.get(k, k): v for k, v in original.items()}
    imported = import_swift(path)
    notes = " | ".join(imported.notes)
    _, job = translate_to(_imported_spec("swift", path, entry, tmp_path), "swift", tmp_path / "native")
    config = yaml.safe_load((job.native_dir / "config.yaml").read_text())
    wrong, allowed, unnoted = [], [], []
    world = int(env.get("NPROC_PER_NODE", "1") or 1)
    launched = int(config.pop("ENV", {}).get("NPROC_PER_NODE", "1"))
    if launched != world:  # swift starts torchrun with NPROC_PER_NODE processes (distributed.processes_per_node)
        wrong.append(f"env NPROC_PER_NODE: {world} -> {launched}")
    back = _command_of(config)
    for key in sorted(set(original) | set(config)):
        before, after = _effective(original, key, command, world), _effective(config, key, back, 1)
        if key == "gradient_accumulation_steps" and world > 1:  # the spec keeps it; a note names the world size
            assert f"NPROC_PER_NODE={world}" in notes
        # kept for swift only: the notes say what the other backends do instead
        assert not (key == "streaming" and before) or "streaming true (kept for swift)" in notes
        assert not (key == "deepspeed" and before) or f"deepspeed {before} kept in backend_options.swift" in notes
        if before == after:
            continue
        change = f"{key}: {before!r} -> {after!r}"
        if key not in ALLOWED:
            wrong.append(change)
            continue
        reason = ALLOWED[key]
        if isinstance(reason, tuple):
            reason, needs = reason
            if needs and needs not in notes:
                unnoted.append(f"{change}: no import note says {needs!r}")
        allowed.append(f"{change} ({reason})")
    return wrong, allowed, unnoted


@pytest.mark.skipif(not SWIFT_EXAMPLES, reason="no swift examples")
@pytest.mark.parametrize(("path", "entry"), SWIFT_EXAMPLES, ids=[p.name for p, _ in SWIFT_EXAMPLES])
def test_a_swift_example_translated_back_to_swift_keeps_every_setting(path, entry, tmp_path):
    wrong, allowed, unnoted = _round_trip(path, entry, tmp_path)
    print(f"\nswift/{path.name}: {len(allowed)} allowed differences, {len(wrong)} wrong, {len(unnoted)} unnoted")
    for line in allowed:
        print(f"  allowed  {line}")
    assert not wrong, f"{path.name}: settings the round trip changed:\n  " + "\n  ".join(wrong)
    assert not unnoted, f"{path.name}: changes the import does not tell the user about:\n  " + "\n  ".join(unnoted)


def test_every_allowed_difference_says_why():
    assert all((r[0] if isinstance(r, tuple) else r).strip() for r in ALLOWED.values())
    assert all(key in DEFAULTS for key in ALLOWED)  # swift's own argument names, no typo
