"""Canonical tokenization: which tokens of a conversation carry loss, and what a generation prompt is.

One definition for training and for the shared evaluation, so every backend is judged with the same
masking. This file imports nothing from uft (only the tokenizer it is given): backend translators copy it
beside their runner program, which runs inside the framework's own environment.
"""

from __future__ import annotations

import json


def _ids(tokenizer, messages: list[dict], generation_prompt: bool, tools: list | None) -> list[int]:
    if not messages:
        return []
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt,
                                        tools=tools, return_dict=True)
    return list(out["input_ids"])


def tokenize_chat(tokenizer, messages: list[dict], max_length: int, train_on_prompt: bool,
                  tools: str | None = None) -> dict:
    """Token ids of a conversation with a mask that is 1 on assistant turns only (or everywhere).

    Each assistant turn's span is found by rendering the conversation up to that turn with and without
    it, so it works with any chat template (no `{% generation %}` markers needed).
    """
    tool_list = json.loads(tools) if tools else None
    full = _ids(tokenizer, messages, False, tool_list)
    mask = [1 if train_on_prompt else 0] * len(full)
    if not train_on_prompt:
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(_ids(tokenizer, messages[:i], True, tool_list))
            end = len(_ids(tokenizer, messages[: i + 1], False, tool_list))
            for j in range(start, min(end, len(full))):
                mask[j] = 1
    return {"input_ids": full[:max_length], "assistant_masks": mask[:max_length]}


def tokenize_text(tokenizer, text: str, max_length: int) -> dict:
    """Plain text for pretraining-style loss: every token carries loss, EOS appended."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    ids = ids[:max_length]
    return {"input_ids": ids, "assistant_masks": [1] * len(ids)}


def generation_prompt(tokenizer, messages: list[dict], tools: str | None = None) -> tuple[list[int], str]:
    """Prompt ids for the final assistant turn and that turn's text (the reference answer)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    ids = _ids(tokenizer, messages[:last], True, json.loads(tools) if tools else None)
    return ids, messages[last]["content"]
