"""Canonical masking (unified_ft/chat_tokens.py, copied beside backend runners): which tokens carry loss."""

from __future__ import annotations

import pytest

from unified_ft import chat_tokens as runner


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
    return tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m])


def test_only_assistant_turns_carry_loss(tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=512, train_on_prompt=False)
    assert len(out["input_ids"]) == len(out["assistant_masks"])
    assert _supervised_text(tokenizer, out) == "one<|im_end|>\ntwo yes<|im_end|>\n"


def test_train_on_prompt_supervises_everything(tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=512, train_on_prompt=True)
    assert all(out["assistant_masks"])


def test_truncation_keeps_ids_and_mask_aligned(tokenizer):
    out = runner.tokenize_chat(tokenizer, CONVERSATION, max_length=10, train_on_prompt=False)
    assert len(out["input_ids"]) == len(out["assistant_masks"]) == 10


def test_generation_prompt_ends_where_the_last_answer_starts(tokenizer):
    ids, reference = runner.generation_prompt(tokenizer, CONVERSATION)
    assert reference == "two yes"
    assert tokenizer.decode(ids).endswith("say two<|im_end|>\n<|im_start|>assistant\n")
