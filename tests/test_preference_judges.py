"""The preference judges: their aggregation by hand (ties, empty input, one label missing), which main_metric
each method defaults to, what a reward-model spec may ask of the evaluation, and how the terminal shows it."""

from __future__ import annotations

import math

import pytest
from rich.console import Console
from test_spec import PREFERENCE, error_of, minimal

from unified_ft import metrics as M
from unified_ft.evaluate import EvalReport, ModelScores, PreferenceScores, format_table
from unified_ft.specfile import validate_spec_dict

# --- the pure math -------------------------------------------------------------------------------------


def test_implicit_reward_is_the_unscaled_log_ratio():
    assert M.implicit_rewards([-3.0, -10.0], [-5.0, -8.0]) == [2.0, -2.0]
    with pytest.raises(ValueError):
        M.implicit_rewards([-1.0], [])


def test_pairs_count_a_tie_as_a_loss_and_average_the_margin():
    # diffs: +2, 0 (tie), -1, +3
    j = M.pair_judgement([1.0, 0.5, -2.0, 4.0], [-1.0, 0.5, -1.0, 1.0])
    assert j.accuracy == 0.5 and j.ties == 1 and j.count == 4
    assert j.margin == pytest.approx((2 + 0 - 1 + 3) / 4)


def test_all_ties_give_zero_accuracy_and_zero_margin():
    j = M.pair_judgement([0.0, 0.0], [0.0, 0.0])
    assert (j.accuracy, j.margin, j.ties, j.count) == (0.0, 0.0, 2, 2)


def test_nothing_to_judge_is_none_not_zero():
    assert M.pair_judgement([], []) == M.Judgement(None, None, 0, 0)
    assert M.label_judgement([], []) == M.Judgement(None, None, 0, 0)
    assert M.pairwise_loss([], []) is None


def test_labels_match_the_reward_sign_and_zero_matches_neither():
    # desirable: +1 (hit), 0 (tie, miss); undesirable: -2 (hit), +0.5 (miss)
    j = M.label_judgement([1.0, 0.0, -2.0, 0.5], [True, True, False, False])
    assert j.accuracy == 0.5 and j.ties == 1 and j.count == 4
    assert j.margin == pytest.approx((1.0 + 0.0) / 2 - (-2.0 + 0.5) / 2)


def test_labels_of_one_kind_only_have_no_margin():
    j = M.label_judgement([1.0, -1.0], [True, True])
    assert j.accuracy == 0.5 and j.margin is None


def test_pairwise_loss_by_hand_and_without_overflow():
    assert M.pairwise_loss([0.0], [0.0]) == pytest.approx(math.log(2))
    assert M.pairwise_loss([2.0, -1.0], [1.0, 0.0]) == pytest.approx(
        (-math.log(1 / (1 + math.exp(-1))) - math.log(1 / (1 + math.exp(1)))) / 2)
    assert M.pairwise_loss([1000.0], [-1000.0]) == pytest.approx(0.0)
    assert M.pairwise_loss([-1000.0], [1000.0]) == pytest.approx(2000.0)


# --- what the spec resolves and refuses ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["dpo", "orpo", "simpo", "cpo", "kto"])
def test_preference_methods_lead_with_reward_accuracy(method):
    spec = validate_spec_dict(minimal(method=method, data={"train": [dict(PREFERENCE)]}))
    assert spec.evaluation.main_metric == "reward_accuracy"
    assert spec.evaluation.metrics == ["exact_match", "normalized_exact_match", "rouge_l", "bleu"]


def test_a_reward_model_leads_with_pairwise_accuracy_and_generates_nothing():
    spec = validate_spec_dict(minimal(method="rm", data={"train": [dict(PREFERENCE)]}))
    assert spec.evaluation.main_metric == "pairwise_accuracy" and spec.evaluation.metrics == []
    chosen = validate_spec_dict(minimal(method="rm", data={"train": [dict(PREFERENCE)]},
                                        evaluation={"main_metric": "score_margin"}))
    assert chosen.evaluation.main_metric == "score_margin"


@pytest.mark.parametrize("evaluation", [{"metrics": ["rouge_l"]}, {"checks": [{"type": "json"}]},
                                        {"forgetting": {"path": "builtin", "format": "text"}},
                                        {"main_metric": "perplexity"}, {"main_metric": "reward_accuracy"}])
def test_a_reward_model_spec_asking_for_generation_judges_is_refused(evaluation):
    message = error_of(minimal(method="rm", data={"train": [dict(PREFERENCE)]}, evaluation=evaluation))
    assert "method rm trains a reward model" in message and "pairwise_accuracy" in message


def test_a_preference_judge_as_main_metric_of_another_method_is_refused():
    message = error_of(minimal(evaluation={"main_metric": "reward_accuracy"}))
    assert "reward_accuracy is measured for method dpo, orpo, simpo, cpo and kto, not sft" in message
    message = error_of(minimal(method="dpo", data={"train": [dict(PREFERENCE)]},
                               evaluation={"main_metric": "pairwise_accuracy"}))
    assert "measured for method rm, not dpo" in message


# --- the terminal table --------------------------------------------------------------------------------


def _report(**fields) -> EvalReport:
    return EvalReport(run_dir="r", backend="trl", spec_name="s", eval_rows=4, generated_rows=0, max_new_tokens=8,
                      duration_s=1.0, **fields)


def _shown(report: EvalReport) -> str:
    console = Console(width=160, record=True)
    console.print(format_table(report))
    return console.export_text()


def test_the_table_shows_reward_judges_for_a_dpo_run():
    scores = ModelScores(loss=1.0, perplexity=math.e)
    preference = PreferenceScores(kind="pairs", rows=4, beta=0.1, reward_accuracy=0.75, reward_margin=1.25,
                                  tuned_logp_accuracy=0.5, base_logp_accuracy=0.25)
    text = _shown(_report(main_metric="reward_accuracy", base=scores, tuned=scores, preference=preference))
    assert "reward_accuracy" in text and "0.7500" in text and "1.2500" in text
    row = next(line for line in text.splitlines() if "logp preference accuracy" in line)
    assert "0.2500" in row and "0.5000" in row and "+0.2500" in row
    assert "pairwise_accuracy" not in text


def test_the_table_of_a_reward_model_shows_pairwise_accuracy_and_its_loss_only():
    preference = PreferenceScores(kind="reward_model", rows=4, pairwise_accuracy=1.0, score_margin=0.5)
    text = _shown(_report(main_metric="pairwise_accuracy", tuned=ModelScores(loss=0.3, perplexity=1.35),
                          preference=preference))
    assert "the reward model on" in text and "4 eval pairs" in text
    assert "pairwise_accuracy" in text and "1.0000" in text and "score_margin" in text
    assert "perplexity" not in text and "tokens_per_s" not in text and "reward_accuracy" not in text


# --- which tokens an answer's reward counts ------------------------------------------------------------


def test_a_reward_counts_the_answer_only_not_an_assistant_turn_in_the_prompt(tiny_model):
    from unified_ft.evaluate import _answer_tokens
    from unified_ft.modeling import load_tokenizer
    from unified_ft.templates import JINJA_TEMPLATES

    tokenizer = load_tokenizer({"name_or_path": str(tiny_model)}, JINJA_TEMPLATES["chatml"])
    prompt = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "earlier reply"},
              {"role": "user", "content": "is it good"}]
    encoded = _answer_tokens(tokenizer, prompt, [{"role": "assistant", "content": "yes good"}], None, 64)
    counted = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    text = tokenizer.decode(counted)
    assert "yes good" in text and "earlier" not in text and "is it good" not in text, text
    cut = _answer_tokens(tokenizer, prompt, [{"role": "assistant", "content": "yes good"}], None, 8)
    assert 1 not in cut["assistant_masks"] and len(cut["input_ids"]) == 8  # cut off: an empty answer
