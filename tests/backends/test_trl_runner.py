"""The trl runner's own pure part: which tokens carry loss (canonical masking)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "backends" / "trl" / "runner.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("uft_trl_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "say one"},
    {"role": "assistant", "content": "one"},
    {"role": "user", "content": "say two"},
    {"role": "assistant", "content": "two yes"},
]


def _supervised_text(tokenizer, out) -> str:
    return tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])


def test_only_assistant_turns_carry_loss(runner, tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=512, train_on_prompt=False)
    assert len(out["input_ids"]) == len(out["assistant_masks"])
    assert _supervised_text(tokenizer, out) == "one<|im_end|>\ntwo yes<|im_end|>\n"


def test_train_on_prompt_supervises_everything(runner, tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=512, train_on_prompt=True)
    assert all(out["assistant_masks"])


def test_truncation_keeps_ids_and_mask_aligned(runner, tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=10, train_on_prompt=False)
    assert len(out["input_ids"]) == len(out["assistant_masks"]) == 10
