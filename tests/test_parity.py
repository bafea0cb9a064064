"""The bake-off's parity checks on real effective.json files (trl, LLaMA-Factory and ms-swift on one tiny job),
each made to fail by the kind of difference it exists to catch."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified_ft.comparison import ParityRow
from unified_ft.effective import Effective
from unified_ft.parity import like_for_like, parity_checks
from unified_ft.spec import DpoMethod
from unified_ft.specfile import load_spec

DATA = Path(__file__).parent / "data" / "parity"
BACKENDS = ["trl", "llamafactory", "swift"]


@pytest.fixture
def spec():
    return load_spec(DATA / "spec.yaml")


@pytest.fixture
def runs() -> dict[str, Effective]:
    return {b: Effective.model_validate_json((DATA / f"{b}.json").read_text()) for b in BACKENDS}


def _rows(spec, runs, number: int | None = None) -> list[ParityRow]:
    rows = parity_checks(spec, runs, BACKENDS)
    return [r for r in rows if number is None or r.number == number]


def _failed(spec, runs) -> list[str]:
    return [r.check for r in _rows(spec, runs) if r.passed is False and r.severity == "breaks"]


def test_the_three_real_runs_are_like_for_like(spec, runs):
    rows = _rows(spec, runs)
    assert {r.number for r in rows} == set(range(1, 10))
    assert like_for_like(rows) == []
    assert all(r.passed for r in rows if r.severity == "breaks"), [r for r in rows if not r.passed]
    versions = next(r for r in rows if r.number == 8)
    assert versions.severity == "info" and "transformers" in versions.detail  # the stacks really differ


def test_a_different_template_fails_check_1_at_the_token_where_it_differs(spec, runs):
    sample = runs["swift"].samples.first_step[0]
    sample.input_ids = sample.input_ids[:3] + [999] + sample.input_ids[4:]
    row = _rows(spec, runs, 1)[0]
    assert row.passed is False
    assert "sample 1 differs at token 3" in row.detail and "swift" in row.detail
    assert _failed(spec, runs) == ["same token ids for the first samples"]
    assert like_for_like(_rows(spec, runs))[0].startswith("1. same token ids")


def test_different_masking_fails_check_2_naming_the_sample(spec, runs):
    runs["llamafactory"].samples.supervised_tokens_per_sample[1] += 3
    runs["llamafactory"].samples.supervised_tokens_total += 3
    row = _rows(spec, runs, 2)[0]
    assert row.passed is False and "sample 2" in row.detail and "llamafactory 14" in row.detail


def test_a_dropped_row_fails_check_3(spec, runs):
    runs["swift"].samples.framework_rows = 13
    row = _rows(spec, runs, 3)[0]
    assert row.passed is False and "swift 13" in row.detail and "uft wrote 14" in row.detail


def test_automatic_accumulation_fails_check_4(spec, runs):
    batch = runs["swift"].batch
    batch.accumulation, batch.effective = 8, 16  # ms-swift raising accumulation until the total batch is 16
    rows = _rows(spec, runs, 4)
    assert rows[0].passed is False and "16 = 2 x 8 accumulation" in rows[0].detail
    runs["swift"].batch.steps_done = 1
    assert _rows(spec, runs, 4)[1].passed is False


def test_a_different_schedule_fails_check_5_at_the_step(spec, runs):
    runs["trl"].learning_rate.per_step[2] = 0.0009
    row = _rows(spec, runs, 5)[0]
    assert row.passed is False and "learning rate at step 3" in row.detail


@pytest.mark.parametrize(("field", "value", "check"), [
    ("r", 8, "same adapter rank"),
    ("alpha", 16.0, "same adapter alpha"),
    ("dropout", 0.05, "same adapter dropout"),
    ("target_modules", ["q_proj", "v_proj"], "same adapter target modules"),
    ("trainable_parameters", 8192, "same trainable parameters"),
])
def test_a_different_adapter_fails_check_6(spec, runs, field, value, check):
    setattr(runs["llamafactory"].adapter, field, value)
    assert _failed(spec, runs) == [check]


@pytest.mark.parametrize(("change", "check"), [
    (lambda e: setattr(e.precision, "compute", "bf16"), "same compute precision"),
    (lambda e: setattr(e.precision, "quantization", {"load_in_4bit": True}), "same quantization"),
    (lambda e: setattr(e, "seed", 42), "same seed"),
    (lambda e: setattr(e.optimizer, "weight_decay", 0.0), "same weight decay"),
    (lambda e: setattr(e.optimizer, "betas", [0.9, 0.95]), "same adam betas and epsilon"),
    (lambda e: setattr(e.optimizer, "max_grad_norm", 0.5), "same gradient clipping"),
    (lambda e: setattr(e, "gradient_checkpointing", True), "same gradient checkpointing"),
])
def test_a_different_setting_fails_check_7(spec, runs, change, check):
    change(runs["swift"])
    assert _failed(spec, runs) == [check]


def test_an_extra_shuffle_fails_the_order_check_naming_the_backend(spec, runs):
    runs["llamafactory"].order.sampler = "random"
    runs["llamafactory"].order.first_step_rows = [5, 2, 9, 0]
    row = [r for r in _rows(spec, runs, 7) if "order" in r.check][0]
    assert row.passed is False and "llamafactory (sampler random)" in row.detail
    runs["llamafactory"].order.sampler, runs["llamafactory"].order.first_step_rows = "sequential", [0, 1, 2, 3]
    runs["llamafactory"].order.reordered_at_load = True
    row = [r for r in _rows(spec, runs, 7) if "order" in r.check][0]
    assert row.passed is False and "shuffled at load" in row.detail


def test_backend_options_on_one_backend_are_an_asymmetry_not_a_failure(spec, runs):
    spec.backend_options["llamafactory"] = {"max_samples": 100}
    row = _rows(spec, runs, 9)[0]
    assert row.passed is False and row.severity == "asymmetry"
    assert row.detail == "llamafactory only: max_samples"
    assert like_for_like(_rows(spec, runs)) == []


def test_a_backend_that_did_not_read_back_a_value_is_left_out_and_named(spec, runs):
    runs["swift"].adapter.r = None
    row = next(r for r in _rows(spec, runs, 6) if r.check == "same adapter rank")
    assert row.passed is True and "not read back: swift" in row.detail


def test_one_backend_alone_cannot_be_judged(spec, runs):
    rows = parity_checks(spec, {"trl": runs["trl"]}, BACKENDS)
    assert all(r.passed is None for r in rows if r.number <= 8)


def test_preference_samples_pass_when_equal_and_are_shown_unjudged_when_laid_out_differently(spec, runs):
    dpo = spec.model_copy(update={"method": DpoMethod(name="dpo")})
    assert parity_checks(dpo, runs, BACKENDS)[0].passed is True
    runs["swift"].samples.first_step[0].input_ids = [1, 2, 3]
    row = parity_checks(dpo, runs, BACKENDS)[0]
    assert row.passed is None and "preference pair" in row.detail
    assert parity_checks(spec, runs, BACKENDS)[0].passed is False  # sft: a difference is a failure
