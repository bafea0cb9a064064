"""Scoring generated answers against references: pure functions, the same for every backend's output.

ROUGE-L comes from Google's `rouge-score` and BLEU from `sacrebleu` (imported when used), so the numbers
mean what they mean elsewhere.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Sequence

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
