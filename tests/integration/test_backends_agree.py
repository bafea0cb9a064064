"""One spec on all five backends (the bake-off's runs): what each framework really did
(effective.json, read back by the trainer probe inside each framework's own environment) agrees on every field
the spec fixes, and their per-step losses agree. Real runs of the tiny model; nothing mocked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fixtures import BAKEOFF_BACKENDS

from unified_ft.cli import main
from unified_ft.effective import Effective, compare, differences, load_effective
from unified_ft.specfile import load_spec

pytestmark = pytest.mark.integration

ROWS = 14  # distinct rows, so which row a sample came from is unambiguous (see conftest.py)


@pytest.fixture(scope="module")
def runs_of(same_job_bakeoff) -> dict[str, Path]:
    """The bake-off's runs of one spec on each backend (conftest.py: 3 optimizer steps of 2 x 2 samples, warmup,
    cosine, seed 7), read here field by field."""
    return {backend: same_job_bakeoff / "runs" / "repeat-1" / "same" / backend for backend in BAKEOFF_BACKENDS}


def _effective(run_dir: Path) -> Effective:
    found = load_effective(run_dir)
    assert found is not None, f"{run_dir} has no effective.json"
    return found


def test_every_backend_did_what_the_spec_says(runs_of):
    for backend, run_dir in runs_of.items():
        effective = _effective(run_dir)
        spec = load_spec(run_dir / "spec.yaml")
        checks = compare(spec, effective, backend)
        assert not differences(checks), (backend, differences(checks))
        judged = {c.setting for c in checks if c.same is not None}
        assert {"effective batch", "optimizer steps", "adapter rank", "adapter alpha", "weight decay", "seed",
                "reorders rows at load", "first step trains uft's first rows"} <= judged, (backend, judged)
        assert effective.notes == [], (backend, effective.notes)


def test_the_backends_agree_field_by_field(runs_of):
    found = {backend: _effective(run_dir) for backend, run_dir in runs_of.items()}
    trl = found["trl"]
    assert len(trl.samples.first_step) == 4 and trl.samples.first_step[0].input_ids
    assert trl.samples.supervised_tokens_total and trl.samples.framework_rows == ROWS
    for backend, other in found.items():
        assert [s.input_ids for s in other.samples.first_step] == [s.input_ids for s in trl.samples.first_step], \
            backend
        assert [s.label_mask for s in other.samples.first_step] == [s.label_mask for s in trl.samples.first_step]
        assert [s.supervised_tokens for s in other.samples.first_step] == \
            [s.supervised_tokens for s in trl.samples.first_step]
        assert other.samples.supervised_tokens_total == trl.samples.supervised_tokens_total, backend
        assert (other.samples.framework_rows, other.samples.dropped_rows) == (ROWS, 0), backend
        assert other.batch == trl.batch, backend
        assert other.learning_rate.warmup_steps == trl.learning_rate.warmup_steps == 2
        assert other.learning_rate.per_step == pytest.approx(trl.learning_rate.per_step, rel=1e-6), backend
        assert other.adapter.model_dump() == trl.adapter.model_dump(), backend
        assert other.precision == trl.precision, backend
        assert (other.seed, other.data_seed) == (trl.seed, trl.data_seed) == (7, 7)
        assert other.optimizer == trl.optimizer, backend
        assert other.gradient_checkpointing is trl.gradient_checkpointing is False
        assert other.order == trl.order, backend
        assert other.versions["torch"] and other.versions["transformers"], backend
    assert found["llamafactory"].versions["llamafactory"] == "0.9.5"
    assert found["swift"].versions["ms-swift"] == "4.6.0"
    assert found["unsloth"].versions["unsloth"] == "2026.10.9"
    assert found["colossalai"].versions["colossalai"] == "0.5.0"


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_same_losses_and_one_metrics_schema(runs_of):
    rows = {backend: _metrics(run_dir) for backend, run_dir in runs_of.items()}
    for backend, found in rows.items():
        assert [r["step"] for r in found] == [1, 2, 3], backend
        for row in found:  # every field means the same on every backend, and none is missing
            assert None not in (row["loss"], row["learning_rate"], row["grad_norm"], row["tokens"],
                                row["elapsed_s"], row["peak_memory_mb"]), (backend, row)
        assert [r["tokens"] for r in found] == [r["tokens"] for r in rows["trl"]], backend
        for mine, theirs in zip(found, rows["trl"], strict=True):
            assert math.isclose(mine["loss"], theirs["loss"], rel_tol=1e-5), (backend, mine, theirs)
            assert math.isclose(mine["grad_norm"], theirs["grad_norm"], rel_tol=1e-4), (backend, mine, theirs)
            assert mine["learning_rate"] == pytest.approx(theirs["learning_rate"], rel=1e-6)
    assert rows["trl"][0]["learning_rate"] == 0.0  # warmup: step 1 uses lr 0 on every backend


def test_inspect_prints_what_the_framework_did(runs_of, capsys):
    assert main(["inspect", str(runs_of["swift"])]) == 0
    out = capsys.readouterr().out
    assert "spec vs what swift did" in out and "DIFFERS" not in out
    assert "trainable parameters" in out and "settings the spec fixes are what swift did" in out
