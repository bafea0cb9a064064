"""Cross-translation of real upstream example configs: every example each tool's importer accepts (as listed
in tests/backends/<tool>_examples/MANIFEST.yaml) is imported, translated to every backend, and the native
files each translator wrote are read back (tests/migration_readback.py): the portable settings (learning
rate, batch, accumulation, epochs/steps, LoRA rank/alpha/dropout/targets, max length, template, system
prompt, precision) must arrive unchanged, or the backend must refuse before writing anything, naming the
setting it cannot honour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.migration_readback import READERS, with_local_data
from unified_ft.errors import ProblemsError
from unified_ft.launch import translate_to
from unified_ft.plan import make_plan
from unified_ft.plugin import load_backend
from unified_ft.spec import LoraFamilyAdapter
from unified_ft.templates import chat_template_text

HERE = Path(__file__).resolve().parent
NAME_TEMPLATES = {"llamafactory", "swift"}  # backends that take a template name rather than Jinja text

def _examples(refused: bool = False) -> list[tuple[str, Path, dict[str, Any]]]:
    found = []
    for manifest in sorted(HERE.glob("*_examples/MANIFEST.yaml")):
        tool = manifest.parent.name.removesuffix("_examples")
        for name, entry in (yaml.safe_load(manifest.read_text()) or {}).items():
            if refused or (entry or {}).get("expect", "ok") == "ok":
                found.append((tool, manifest.parent / name, entry or {}))
    return found


def _options(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The importer options a MANIFEST entry gives: files beside the example (dataset_info), and plain values
    (trl's method, for a config YAML that cannot name it)."""
    options: dict[str, Any] = {k: str(path.parent / v) for k, v in entry.items() if k in ("dataset_info",)}
    options.update({k: v for k, v in entry.items() if k in ("method",)})
    return options


EXAMPLES = _examples()
ALL_EXAMPLES = _examples(refused=True)


@pytest.mark.parametrize(("tool", "path", "entry"), ALL_EXAMPLES, ids=[f"{t}/{p.name}" for t, p, _ in ALL_EXAMPLES])
def test_every_upstream_example_imports_with_every_key_accounted_or_is_refused_clearly(tool, path, entry):
    options = _options(path, entry)
    importer = load_backend(tool).import_native
    expect = entry.get("expect", "ok")
    if expect != "ok":
        with pytest.raises(ProblemsError, match=expect) as caught:
            importer(path, **options)
        assert all(p.hint for p in caught.value.problems)  # each refusal says what to do
        return
    imported = importer(path, **options)  # finish() has checked that no key is unaccounted
    counts = imported.counts()
    print(f"\n{tool}/{path.name}: {counts}, {len(imported.defaults)} defaults written out")
    assert sum(counts.values()) > 0


def _imported_spec(tool: str, path: Path, entry: dict[str, Any], tmp_path: Path):
    """The example as a spec, its datasets replaced by one small local file of the same kind (the hub is
    unreachable here), everything else as the importer wrote it."""
    imported = load_backend(tool).import_native(path, **_options(path, entry))
    return with_local_data(imported.spec, str(path), tmp_path)


def _expected(spec, backend: str) -> dict[str, Any]:
    t = spec.training
    lora = None
    if isinstance(spec.adapter, LoraFamilyAdapter):
        lora = {"r": spec.adapter.r, "alpha": float(spec.adapter.alpha), "dropout": float(spec.adapter.dropout),
                "targets": spec.adapter.target_modules}
    expected = {"learning_rate": t.learning_rate, "batch": t.per_device_batch_size,
                "accumulation": t.gradient_accumulation_steps, "max_steps": t.max_steps or -1,
                **({} if t.max_steps else {"epochs": t.epochs}), "lora": lora, "max_length": spec.data.max_length,
                "template": spec.template.name if backend in NAME_TEMPLATES else chat_template_text(spec),
                "system": spec.template.system, "precision": t.precision}
    if spec.method.name == "pt":  # plain text: no chat template, no system turn
        del expected["template"], expected["system"]
    return expected


def _unordered_targets(lora: dict[str, Any]) -> dict[str, Any]:
    targets = lora["targets"]
    return {**lora, "targets": sorted(targets) if isinstance(targets, list) else targets}


def _compare(expected: dict[str, Any], found: dict[str, Any], backend: str) -> list[str]:
    wrong = []
    for key, want in expected.items():
        got = found[key]
        if key == "template" and backend in NAME_TEMPLATES:
            ok = want in got
        elif key == "lora" and want and got:
            ok = _unordered_targets(want) == _unordered_targets(got)
        else:
            ok = got == want
        if not ok:
            wrong.append(f"{key}: spec {want!r}, {backend}'s native files {got!r}")
    return wrong


@pytest.mark.skipif(not EXAMPLES, reason="no example manifests")
@pytest.mark.parametrize(("tool", "path", "entry"), EXAMPLES, ids=[f"{t}/{p.name}" for t, p, _ in EXAMPLES])
def test_upstream_example_keeps_its_portable_settings_on_every_backend(tool, path, entry, tmp_path):
    spec = _imported_spec(tool, path, entry, tmp_path)
    outcome = {}
    for backend, read in READERS.items():
        try:
            plan = make_plan(spec, backend)
        except ProblemsError as exc:  # refused before anything is written, naming each setting and a fix
            assert exc.problems and all(p.where and p.hint for p in exc.problems), str(exc)
            outcome[backend] = "cannot: " + ", ".join(p.where for p in exc.problems)
            continue
        try:
            _, job = translate_to(spec, backend, tmp_path / backend)
        except ProblemsError as exc:  # needs what only the run's machine has (e.g. swift's freeze: the model's
            # config.json, for a hub id or a missing folder): refused naming it; translate_to leaves nothing behind
            assert exc.problems and all(p.where and p.hint for p in exc.problems), str(exc)
            outcome[backend] = "cannot here: " + ", ".join(p.where for p in exc.problems)
            continue
        wrong = _compare(_expected(plan.spec, backend), read(job.native_dir), backend)
        assert not wrong, f"{tool} example {path.name} -> {backend}:\n  " + "\n  ".join(wrong)
        outcome[backend] = "kept"
    print(f"\n{tool}/{path.name}: " + json.dumps(outcome))  # the table in the closing note comes from this
    assert outcome["trl"] == "kept"  # the embedded default takes every portable setting
