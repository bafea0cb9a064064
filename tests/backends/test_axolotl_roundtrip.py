"""Same-tool round trip of axolotl's own examples: import each `ok` example of axolotl_examples/MANIFEST.yaml,
translate the spec back to axolotl (its data replaced by a small local file, as in test_migration_cross.py), and
compare the original YAML with uft's config.yaml key by key: every key of the original, and every key uft wrote
that the original left to axolotl's default, has the same effective value (explicit, else axolotl's default from
arguments.json, or what axolotl works out from other keys), unless ALLOWED_TO_DIFFER says why, or the key is one
uft sets on purpose (EQUALISED), whose change the import notes must tell the user about."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.test_migration_cross import EXAMPLES, _imported_spec
from unified_ft.backends.axolotl.importer import DEFAULTS, KNOWN, OPTIMIZERS, TEMPLATES, TRL_BETA, import_axolotl
from unified_ft.errors import ProblemsError
from unified_ft.launch import translate_to
from unified_ft.migrate import BOOKKEEPING
from unified_ft.templates import JINJA_TEMPLATES

AXOLOTL = [(path, entry) for tool, path, entry in EXAMPLES if tool == "axolotl"]
#: Examples uft imports but cannot translate back to axolotl: name -> the setting the translation refuses.
REFUSED = {"qlora-1b-kto.yaml": "template: llama3", "qwen2-reward-model.yaml": "method: rm"}
ROUND_TRIP = [(path, entry) for path, entry in AXOLOTL if path.name not in REFUSED]
STAND_IN = "this test replaces the data by a small local file (the hub is unreachable here)"

#: Keys whose value in uft's config.yaml may differ from the original's, each with why.
ALLOWED_TO_DIFFER = {
    "datasets": STAND_IN,
    "pretraining_dataset": STAND_IN + "; uft's job reads the prepared rows as datasets",
    "val_set_size": "the spec keeps it as data.eval_split: uft's data step holds those rows out for its own "
                    "evaluation after training, so axolotl trains on the rest (val_set_size 0); this test drops it",
    "output_dir": BOOKKEEPING,
    "save_strategy": "axolotl saves a checkpoint every epoch by default; uft saves the final model "
                     "(training.save_steps for checkpoints)",
    "remove_unused_columns": "trl's preference trainers read their prompt/chosen/rejected columns themselves: "
                             "which columns the collator passes on, not what is trained",
}
#: Keys uft writes to make every backend train alike, whatever the original said: key -> a fragment of the
#: importer note that must say so when the effective value changes.
EQUALISED = {
    "excess_length_strategy": "uft trains them truncated",
    "optimizer": "optimizer adamw_torch_fused",
    "warmup_ratio": "warmup: the config sets none",
    "tf32": "tf32: the config sets none",
    "sample_packing_sequentially": "uft packs them sequentially",
    "curriculum_sampling": "uft shuffles them once",
    "shuffle_merged_datasets": "uft shuffles them once",
    "bf16": "bf16 auto",  # precision auto: the plan resolves it for the machine (here: no GPU, fp32)
    "lora_target_modules": "lora_target_linear true with lora_target_modules",
    "chat_template": "type alpaca",  # axolotl's alpaca prompter; uft's axolotl job renders uft's alpaca template
}
#: What axolotl (or trl under it) uses where a key is unset, worked out from other keys.
COMPUTED = {
    "tokenizer_config": lambda c: c.get("base_model"),
    "base_model_config": lambda c: c.get("base_model"),
    "rl_beta": lambda c: TRL_BETA if c.get("rl") else None,
    "dpo_loss_type": lambda c: "sigmoid" if c.get("rl") == "dpo" else None,
    "chat_template": lambda c: "tokenizer_default",  # a chat dataset renders with the tokenizer's own template
    "excess_length_strategy": lambda c: "drop",
    "warmup_ratio": lambda c: (c["warmup_steps"] / c["max_steps"] if c.get("warmup_steps") and c.get("max_steps")
                               else "<3% of the steps, at most 100>"),
}
#: Keys read together with another one: key -> the one whose effective value covers both.
READ_WITH = {"chat_template_jinja": "chat_template", "warmup_steps": "warmup_ratio"}
JINJA_NAMES = {text: name for name, text in JINJA_TEMPLATES.items()}


def effective(config: dict[str, Any], key: str, uft_shuffled: bool = False) -> Any:
    """What axolotl trains with: the config's value, else its default (or what it works out from other keys)."""
    value = config.get(key)
    if key == "num_epochs" and (config.get("max_steps") or 0) > 0:
        return None  # max_steps ends the run
    if key == "sample_packing_sequentially" and not config.get("sample_packing"):
        return None  # nothing is packed
    if key == "lora_target_modules" and config.get("lora_target_linear"):  # every linear layer, and the listed
        return ["all-linear", *sorted(value or [])]
    if key in ("curriculum_sampling", "shuffle_merged_datasets"):
        return _row_order(config, uft_shuffled)
    if key == "chat_template":
        return _template(config)
    if value is None and key in COMPUTED:
        return COMPUTED[key](config)
    return DEFAULTS.get(key) if value is None else value


def _row_order(config: dict[str, Any], uft_shuffled: bool) -> str:
    """The order axolotl's trainer reads the rows in (uft_shuffled: uft's data step shuffled the file once)."""
    if config.get("rl") or not config.get("curriculum_sampling"):  # trl's preference trainers keep theirs
        return "a new random order every epoch"
    merged = config.get("shuffle_merged_datasets", DEFAULTS["shuffle_merged_datasets"])
    return "shuffled once" if merged or uft_shuffled else "file order"


def _template(config: dict[str, Any]) -> str:
    """The uft template the chat rows render with: a named one, or uft's own Jinja text of it."""
    name = config.get("chat_template") or COMPUTED["chat_template"](config)
    if name == "jinja":
        return JINJA_NAMES.get(config["chat_template_jinja"], "<another Jinja text>")
    return TEMPLATES.get(name, name)


def _normal(key: str, value: Any) -> Any:
    """One spelling per value: unset booleans are false, numbers compare as numbers (YAML reads 2e-5 as text),
    a one-item list is its item, and the optimizer names transformers reads as the same optimizer are one."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if key == "optimizer" and value in ("adamw_bnb_8bit", "adamw_8bit"):
        return OPTIMIZERS[value]  # transformers builds bitsandbytes' AdamW8bit for both names
    if key == "lora_target_modules" and isinstance(value, list):
        return value if value[0] == "all-linear" else sorted(value)
    return value


def _compare(path: Path, entry: dict[str, Any], tmp_path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """(keys the same, allowed or equalised differences, wrong ones) for one example."""
    original = yaml.safe_load(path.read_text(encoding="utf-8"))
    imported = import_axolotl(path)
    plan, job = translate_to(_imported_spec("axolotl", path, entry, tmp_path), "axolotl", tmp_path / "native")
    translated = yaml.safe_load((job.native_dir / "config.yaml").read_text(encoding="utf-8"))
    shuffled = plan.spec.data.shuffle
    same, allowed, wrong = [], {}, []
    for key in sorted({READ_WITH.get(k, k) for k in set(original) | set(translated)}):
        want = _normal(key, effective(original, key))
        got = _normal(key, effective(translated, key, uft_shuffled=shuffled))
        change = f"{want!r} -> {got!r}"
        if want == got:
            same.append(key)
        elif key in ALLOWED_TO_DIFFER:
            allowed[key] = change
        elif key in imported.ignored and key not in translated:  # uft leaves it to axolotl; the importer says why
            allowed[key] = f"{change} (ignored on import: {imported.ignored[key]})"
        elif key not in EQUALISED:
            wrong.append(f"{key}: original {want!r}, translated {got!r}")
        elif not any(EQUALISED[key] in note for note in imported.notes):
            wrong.append(f"{key}: {change} changes the run, and the importer's notes do not say so")
        else:
            allowed[key] = f"{change} (equalised)"
    return same, allowed, wrong


@pytest.mark.skipif(not ROUND_TRIP, reason="no axolotl examples")
@pytest.mark.parametrize(("path", "entry"), ROUND_TRIP, ids=[p.name for p, _ in ROUND_TRIP])
def test_axolotl_example_translated_back_trains_as_the_original(path, entry, tmp_path):
    same, allowed, wrong = _compare(path, entry, tmp_path)
    print(f"\naxolotl/{path.name}: {len(same)} keys the same, {len(allowed)} differ as allowed, {len(wrong)} wrong")
    for key, change in allowed.items():
        print(f"  allowed  {key}: {change}")
    assert not wrong, f"{path.name} translated back to axolotl:\n  " + "\n  ".join(wrong)
    assert {"base_model", "learning_rate", "micro_batch_size", "sequence_len"} <= set(same)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_axolotl_example_axolotl_cannot_take_back_is_refused_naming_the_setting(name, tmp_path):
    path, entry = next((p, e) for p, e in AXOLOTL if p.name == name)
    with pytest.raises(ProblemsError) as caught:
        translate_to(_imported_spec("axolotl", path, entry, tmp_path), "axolotl", tmp_path / "native")
    assert [p.where for p in caught.value.problems] == [REFUSED[name]]
    assert all(p.hint for p in caught.value.problems)
    assert not (tmp_path / "native").exists()


def test_every_allowed_or_equalised_key_is_an_axolotl_key_with_a_reason():
    assert all(reason.strip() for reason in [*ALLOWED_TO_DIFFER.values(), *EQUALISED.values()])
    assert set(ALLOWED_TO_DIFFER) | set(EQUALISED) | set(COMPUTED) | set(READ_WITH) <= KNOWN  # no typo
