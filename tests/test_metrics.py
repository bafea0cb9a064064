"""Each metric against values computed by hand."""

from __future__ import annotations

import math

import pytest

from unified_ft import metrics


def test_exact_match_trims_whitespace_only():
    assert metrics.exact_match([" Paris ", "paris"], ["Paris", "Paris"]) == 0.5


def test_normalized_exact_match_ignores_case_punctuation_and_articles():
    assert metrics.normalize("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.normalized_exact_match(["the Eiffel tower.", "Louvre"], ["Eiffel Tower", "Orsay"]) == 0.5


def test_rouge_l_by_hand():
    # LCS("the cat sat on the mat", "the cat on a mat") = "the cat on mat" (4 tokens)
    # precision 4/5, recall 4/6, F1 = 2PR/(P+R) = 8/11
    score = metrics.rouge_l(["the cat on a mat"], ["the cat sat on the mat"])
    assert score == pytest.approx(8 / 11)
    assert metrics.rouge_l(["same words"], ["same words"]) == 1.0


def test_bleu_perfect_and_disjoint():
    assert metrics.bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(100.0)
    assert metrics.bleu(["v w x y z"], ["a b c d e"]) == pytest.approx(0.0)


def test_bleu_by_hand_with_brevity_penalty():
    # hypothesis "a b c d" vs reference "a b c d e": all n-gram precisions are 1, BP = exp(1 - 5/4)
    assert metrics.bleu(["a b c d"], ["a b c d e"]) == pytest.approx(100 * math.exp(1 - 5 / 4), abs=1e-6)


def test_checks():
    preds = ['{"a": 1}', "not json", " [1, 2] "]
    assert metrics.check_rate(preds, "json") == pytest.approx(2 / 3)
    assert metrics.check_rate(["abc-12", "abc-x"], "regex", r"abc-\d+") == 0.5
    with pytest.raises(ValueError):
        metrics.check_rate(preds, "yaml")


def test_sample_scores():
    assert metrics.sample_scores("Paris.", "paris") == {"exact_match": 0.0, "normalized_exact_match": 1.0,
                                                       "rouge_l": 1.0}
