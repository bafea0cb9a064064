"""Same-tool round trip of LLaMA-Factory's own examples: import -> translate back to llamafactory -> the
translated train.yaml trains as the original would. For every key the original sets, the effective value
(explicit, else LLaMA-Factory's default from arguments.json) must be the same, unless the key is listed in
ALLOWED_TO_DIFFER with why. Keys uft writes on purpose to make every backend train alike (EQUALISED) may
change what the original did only if the importer said so in a note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.test_migration_cross import EXAMPLES, _imported_spec
from unified_ft.backends.llamafactory.importer import DEFAULTS, _numbers, import_config
from unified_ft.launch import translate_to
from unified_ft.migrate import BOOKKEEPING, LAUNCH, WORKERS

#: Keys whose value in the translated train.yaml may differ from the original's, each with why.
ALLOWED_TO_DIFFER = {
    "dataset": "uft's data step writes the rows itself (data/uft_train), here the test's stand-in file",
    "dataset_dir": "the translated job's own data/ folder, beside train.yaml",
    "max_samples": "uft's data step keeps the first N rows (data.train[].first_rows) before LLaMA-Factory reads them",
    "template": "LLaMA-Factory's qwen3_nothink is written as chatml, which renders the same text (TEMPLATE_ALIASES)",
    "output_dir": BOOKKEEPING,
    "overwrite_output_dir": BOOKKEEPING,
    "save_only_model": BOOKKEEPING,
    "plot_loss": "uft's report plots the loss of every run",
    "preprocessing_num_workers": WORKERS,
    "dataloader_num_workers": WORKERS,
    "overwrite_cache": WORKERS,
    "ddp_timeout": LAUNCH,
}
#: Keys uft writes to make backends agree, whatever the original said: key -> a fragment of the importer note
#: that must say so when the effective value changes.
EQUALISED = {
    "disable_shuffling": "reshuffles the rows every epoch",
    "optim": "adamw_torch_fused",
    "data_seed": None,
}  # None (LLaMA-Factory's default) means the seed; uft writes the seed: the same
ORIGINAL_ONLY_RESOLVED = {
    "lora_alpha": lambda c: 2 * effective(c, "lora_rank"),
    "packing": lambda c: effective(c, "stage") == "pt",
}

V0 = [
    (tool, path, entry) for tool, path, entry in EXAMPLES if tool == "llamafactory" and not path.name.startswith("v1_")
]


def effective(config: dict[str, Any], key: str) -> Any:
    """What LLaMA-Factory trains with: the config's value, else its default (or what it works out from None)."""
    value = config.get(key)
    if value is None and key in ORIGINAL_ONLY_RESOLVED:
        return ORIGINAL_ONLY_RESOLVED[key](config)
    return DEFAULTS.get(key) if value is None else value


def _normal(key: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if key == "lora_target":
        return sorted(t.strip() for t in str(value).split(","))
    if key == "report_to":
        return [value] if isinstance(value, str) else list(value)
    return value


def _load(path: Path) -> dict[str, Any]:
    return _numbers(yaml.safe_load(path.read_text(encoding="utf-8")), path)


@pytest.mark.parametrize(("tool", "path", "entry"), V0, ids=[p.name for _, p, _ in V0])
def test_llamafactory_example_translated_back_trains_as_the_original(tool, path, entry, tmp_path):
    original = _load(path)
    imported = import_config(path, str(path.parent / entry["dataset_info"]))
    spec = _imported_spec(tool, path, entry, tmp_path)
    _, job = translate_to(spec, "llamafactory", tmp_path / "native")
    translated = _load(job.native_dir / "train.yaml")
    same, allowed, wrong = [], {}, []
    for key in [k for k, v in original.items() if v is not None]:
        want, got = _normal(key, effective(original, key)), _normal(key, effective(translated, key))
        if want == got:
            same.append(key)
        elif key in ALLOWED_TO_DIFFER:
            allowed[key] = f"{want!r} -> {got!r}"
        else:
            wrong.append(f"{key}: original {want!r}, translated {got!r}")
    for key in sorted(set(translated) - set(original)):  # what uft wrote that the original left to LLaMA-Factory
        want, got = _normal(key, effective(original, key)), _normal(key, effective(translated, key))
        if want == got or key in ALLOWED_TO_DIFFER:
            continue
        if key not in EQUALISED:
            wrong.append(f"{key}: LLaMA-Factory's default {want!r}, translated {got!r} (not an equalisation)")
        elif EQUALISED[key] and not any(EQUALISED[key] in note for note in imported.notes):
            wrong.append(f"{key}: {want!r} -> {got!r} changes the run, and the importer's notes do not say so")
        else:
            allowed[key] = f"{want!r} -> {got!r} (equalised)"
    print(f"\n{path.name}: {len(same)} keys the same; differ as allowed: {allowed}")
    assert not wrong, f"{path.name} translated back to LLaMA-Factory:\n  " + "\n  ".join(wrong)
    assert same  # the comparison compared something
