"""Text stays text all the way into the trainer: real tiny runs on every backend, on rows whose every text
is a date, a datetime or a number-like string, checked against the tokens the framework itself printed.

`datasets`' JSON loader (inside each framework) guesses column types: an all-date column became
timestamps (trl trained on "<datetime>", ms-swift dropped every row and crashed, trl's pt crashed). Every
row of a dataset here is the same, so whichever sample a framework trains on first is the case under test:
the tokens come from effective.json, where uft's trainer probe recorded the first step's batches as each
framework's own collator built them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import write_jsonl

from unified_ft.cli import main
from unified_ft.plugin import builtin_backends, load_backend

pytestmark = pytest.mark.integration

EOS = "<|im_end|>"
#: Every text of one chat is date-like (so a guessing loader sees an all-date column).
DATES = [("user", "2024-01-01"), ("assistant", "2024-01-01T10:00:00"), ("user", "1999-12-31 23:59:59"),
         ("assistant", "2024-02-29")]
#: Number-, boolean- and null-like strings, which pandas-based loaders convert.
NUMBERS = [("user", "007"), ("assistant", "1e5"), ("user", "true"), ("assistant", "null"), ("user", "1.10"),
           ("assistant", "NaN")]
ROWS = 6


def _chat(turns: list[tuple[str, str]]) -> dict:
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


def _run(tmp_path: Path, model: Path, backend: str, name: str, method: str, row: dict) -> Path:
    write_jsonl(tmp_path / f"{name}.jsonl", [row] * ROWS)
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml", "method": method,
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": f"{name}.jsonl", "format": "messages" if method == "sft" else "text"}],
                     "max_length": 256},
            "training": {"max_steps": 1, "per_device_batch_size": 2}, "evaluation": {"enabled": False}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--backend", backend, "--runs-dir", str(runs)]) == 0
    run_dir = runs / name / backend
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    return run_dir


def seen_tokens(run_dir: Path, backend: str) -> tuple[list[int], list[int] | None]:
    """(input ids, label ids or None) of the first training sample, as the framework's own collator built it
    (effective.json, read back by uft's trainer probe inside the framework's environment)."""
    first = json.loads((run_dir / "effective.json").read_text())["samples"]["first_step"][0]
    mask = first.get("label_mask")
    labels = None if mask is None else [t if m else -100 for t, m in zip(first["input_ids"], mask, strict=True)]
    return first["input_ids"], labels


def _tokenizer(model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model))


def _trained(tokenizer, ids: list[int], labels: list[int]) -> str:
    """The text of the tokens that carry loss."""
    return tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])


#: Backends uft trains with (an eject-only one, axolotl, writes files that `uft run` does not start).
TRAINING = [b for b in builtin_backends() if not load_backend(b).eject_only]


@pytest.mark.parametrize("backend", TRAINING)
@pytest.mark.parametrize(("case", "turns"), [("dates", DATES), ("numbers", NUMBERS)])
def test_chat_texts_reach_the_trainer_literally(tmp_path, tiny_model, backend, case, turns):
    run_dir = _run(tmp_path, tiny_model, backend, f"sft-{case}", "sft", _chat(turns))
    ids, labels = seen_tokens(run_dir, backend)
    tokenizer = _tokenizer(tiny_model)
    rendered = "".join(f"<|im_start|>{role}\n{text}{EOS}\n" for role, text in turns)
    assert tokenizer.decode(ids) == rendered
    assert labels is not None
    assert _trained(tokenizer, ids, labels) == "".join(f"{text}{EOS}\n" for role, text in turns
                                                       if role == "assistant")


PT_CASES = [("trl", "2024-01-01"), ("trl", "2024-01-01T10:00:00"), ("trl", "1e5"),
            ("llamafactory", "2024-01-01"), ("llamafactory", "007"), ("swift", "2024-01-01T10:00:00")]


@pytest.mark.parametrize(("backend", "text"), PT_CASES)
def test_pretraining_texts_reach_the_trainer_literally(tmp_path, tiny_model, backend, text):
    run_dir = _run(tmp_path, tiny_model, backend, "pt-text", "pt", {"text": text})
    ids, _ = seen_tokens(run_dir, backend)
    decoded = _tokenizer(tiny_model).decode(ids)
    # one text per sample, or (LLaMA-Factory) texts joined into blocks of max_length tokens
    assert decoded.startswith(text + EOS) and ((text + EOS) * ROWS).startswith(decoded), decoded
