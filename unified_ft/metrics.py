"""Scoring generated answers against references: pure functions, the same for every backend's output.

ROUGE-L comes from Google's `rouge-score` and BLEU from `sacrebleu` (imported when used), so the numbers
mean what they mean elsewhere.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Sequence
from typing import NamedTuple

REFERENCE_METRICS = ("exact_match", "normalized_exact_match", "rouge_l", "bleu")
METRICS = ("loss", "perplexity", *REFERENCE_METRICS)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after trimming surrounding whitespace."""
    return _mean([p.strip() == r.strip() for p, r in zip(predictions, references, strict=True)])


def normalized_exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    return _mean([normalize(p) == normalize(r) for p, r in zip(predictions, references, strict=True)])


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (rouge-score, with stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)])


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults), 0..100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def sample_scores(prediction: str, reference: str) -> dict[str, float]:
    """Per-sample scores kept with each example in eval/samples.jsonl."""
    return {"exact_match": float(prediction.strip() == reference.strip()),
            "normalized_exact_match": float(normalize(prediction) == normalize(reference)),
            "rouge_l": rouge_l([prediction], [reference])}


REFERENCE_SCORERS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "exact_match": exact_match, "normalized_exact_match": normalized_exact_match, "rouge_l": rouge_l, "bleu": bleu,
}


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def check_rate(predictions: Sequence[str], kind: str, pattern: str | None = None) -> float:
    """Share of predictions passing a task check: `json` (parses as JSON) or `regex` (full match)."""
    if kind == "json":
        return _mean([is_json(p.strip()) for p in predictions])
    if kind == "regex":
        compiled = re.compile(pattern or "")
        return _mean([compiled.fullmatch(p.strip()) is not None for p in predictions])
    raise ValueError(f"unknown check {kind!r}")


def _mean(values: Sequence[float | bool]) -> float:
    return float(sum(values)) / len(values) if values else 0.0


# --- preference judges: pure aggregation of per-answer numbers -------------------------------------------


class Judgement(NamedTuple):
    """How often an answer the data prefers got the higher reward, and by how much on average.

    ``accuracy`` and ``margin`` are None when nothing could be judged (no rows, or one label missing)."""

    accuracy: float | None
    margin: float | None
    ties: int
    count: int


def implicit_rewards(tuned: Sequence[float], base: Sequence[float]) -> list[float]:
    """DPO's implicit reward without its beta: log p_tuned(answer|prompt) - log p_base(answer|prompt)."""
    return [t - b for t, b in zip(tuned, base, strict=True)]


def pair_judgement(chosen: Sequence[float], rejected: Sequence[float]) -> Judgement:
    """Share of pairs whose chosen answer scores strictly higher (a tie is not a win), and the mean of
    chosen - rejected."""
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]
    if not diffs:
        return Judgement(None, None, 0, 0)
    return Judgement(_mean([d > 0 for d in diffs]), _mean(diffs), sum(d == 0 for d in diffs), len(diffs))


def label_judgement(rewards: Sequence[float], labels: Sequence[bool]) -> Judgement:
    """Unpaired (KTO) rows: share whose reward has the label's sign (positive for desirable, negative for
    undesirable; zero matches neither), and mean desirable reward minus mean undesirable reward (None unless
    both labels occur)."""
    rows = list(zip(rewards, labels, strict=True))
    if not rows:
        return Judgement(None, None, 0, 0)
    good = [r for r, label in rows if label]
    bad = [r for r, label in rows if not label]
    margin = _mean(good) - _mean(bad) if good and bad else None
    hits = [(r > 0) if label else (r < 0) for r, label in rows]
    return Judgement(_mean(hits), margin, sum(r == 0 for r, _ in rows), len(rows))


def pairwise_loss(chosen: Sequence[float], rejected: Sequence[float]) -> float | None:
    """Mean Bradley-Terry loss -log sigmoid(chosen - rejected), what a reward model trains on (None if empty)."""
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]
    if not diffs:
        return None
    return _mean([max(-d, 0.0) + math.log1p(math.exp(-abs(d))) for d in diffs])  # softplus(-d), overflow-free
