"""The shared evaluation judges preference-trained runs for real: dpo and kto by implicit rewards against the
base, rm by how its trained head ranks the eval pairs (trl on the tiny fixture model, 3 steps each)."""

from __future__ import annotations

import json

import pytest
from test_trl_methods import CASES, _spec

from unified_ft import run

pytestmark = pytest.mark.integration

DPO = {"method": "dpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}}


def _judged(tmp_path, tiny_model, name: str, case: str, backend: str = "trl") -> tuple[dict, list[dict], dict]:
    """Train `case` with an eval split and the evaluation on; eval.json, eval/preference.jsonl, manifest."""
    spec = _spec(tmp_path, tiny_model, name, DPO if case == "dpo" else CASES[case])
    spec["data"]["eval_split"] = 0.25
    spec["training"]["learning_rate"] = 1.0e-2  # 3 steps that move the model measurably
    spec["evaluation"] = {"enabled": True, "max_samples": 2, "max_new_tokens": 4}
    result = run(spec, backend=backend, runs_dir=tmp_path / "runs")
    assert result.status == "succeeded"
    report = json.loads((result.run_dir / "eval.json").read_text())
    rows = [json.loads(line) for line in (result.run_dir / "eval" / "preference.jsonl").read_text().splitlines()]
    return report, rows, json.loads((result.run_dir / "manifest.json").read_text())


def test_a_dpo_run_is_judged_by_reward_accuracy_against_the_base(tmp_path, tiny_model):
    report, rows, _ = _judged(tmp_path, tiny_model, "dpo-judged", "dpo")
    p = report["preference"]
    assert report["main_metric"] == "reward_accuracy" and p["kind"] == "pairs" and p["beta"] == 0.1
    assert p["rows"] == len(rows) == 4 and p["empty_answers"] == 0 and p["pairwise_accuracy"] is None
    # every eval pair prefers "yes good" over "no bad": 3 DPO steps at lr 1e-2 learn that
    assert p["reward_accuracy"] == 1.0 and p["reward_margin"] > 0, p
    assert p["tuned_logp_accuracy"] == 1.0 and 0.0 <= p["base_logp_accuracy"] <= 1.0
    first = rows[0]
    assert first["reward_chosen"] == pytest.approx(first["logp_tuned_chosen"] - first["logp_base_chosen"])
    assert p["reward_margin"] == pytest.approx(sum(r["reward_chosen"] - r["reward_rejected"] for r in rows) / 4)
    assert report["base"]["loss"] > 0 and report["generated_rows"] == 2  # loss and answers on chosen, as before


def test_a_kto_run_on_labelled_answers_is_judged_by_the_reward_sign(tmp_path, tiny_model):
    report, rows, _ = _judged(tmp_path, tiny_model, "kto-judged", "kto-unpaired")
    p = report["preference"]
    assert p["kind"] == "labels" and p["rows"] == len(rows) == 4 and p["tuned_logp_accuracy"] is None
    hits = [(r["reward"] > 0) == r["label"] and r["reward"] != 0 for r in rows]
    assert p["reward_accuracy"] == pytest.approx(sum(hits) / 4) and 0.0 <= p["reward_accuracy"] <= 1.0
    labels = {r["label"] for r in rows}
    assert (p["reward_margin"] is None) == (labels != {True, False}), (p, labels)


@pytest.mark.parametrize("backend", ["trl", "llamafactory"])
def test_a_reward_model_is_evaluated_by_pairwise_accuracy(backend, tmp_path, tiny_model):
    """trl saves a sequence-classification adapter (its score head in the adapter); LLaMA-Factory a causal-LM
    adapter plus value_head.safetensors, which the evaluation applies itself (an untrained head would rank
    the pairs at chance: 3 steps at lr 1e-2 rank every one of them right on both)."""
    report, rows, manifest = _judged(tmp_path, tiny_model, "rm-judged", "rm", backend)
    p = report["preference"]
    assert manifest["evaluation"].startswith("succeeded"), manifest["evaluation"]
    assert report["main_metric"] == "pairwise_accuracy" and p["kind"] == "reward_model"
    assert report["base"] is None and report["generated_rows"] == 0 and p["reward_accuracy"] is None
    assert p["pairwise_accuracy"] == 1.0 and p["rows"] == len(rows) == 4, p
    wins = sum(r["score_chosen"] > r["score_rejected"] for r in rows)
    assert p["pairwise_accuracy"] == wins / 4
    assert p["score_margin"] == pytest.approx(sum(r["score_chosen"] - r["score_rejected"] for r in rows) / 4)
    # the pairwise loss -log sigmoid(margin): an unloaded (random) head sits near log 2 = 0.69, trained ones ~0.2-0.4
    assert 0 < report["tuned"]["loss"] < 0.5, report["tuned"]
