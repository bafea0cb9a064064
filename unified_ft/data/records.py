"""Canonical training records: plain dicts in exactly trl's conversational shapes.

Every reader turns its input into one of these, so the prepared JSONL can be fed to trl as is and
every other backend only has to understand three shapes:

* ``chat``: ``{"messages": [{"role": ..., "content": str}, ...], "tools": str}`` (``tools`` is
  optional JSON text). Roles are system/user/assistant/tool; a system message may only come
  first; there must be a user message and the last message must be a non-empty assistant reply
  (that is what supervised fine-tuning learns).
* ``preference``: ``{"prompt": [messages], "chosen": [messages], "rejected": [messages]}``
  (``tools`` optional). The prompt must contain a user message and end with a user or tool
  message; chosen and rejected are assistant/tool messages ending with a non-empty assistant one.
* ``text``: ``{"text": str}``, non-empty (pretraining / continued pretraining).

Validators raise :class:`DataError` naming the file, row and field, because records are checked
while reading user files; ``path`` defaults to ``"<record>"`` for records built in code.
"""

from __future__ import annotations

import json
from typing import Any

from unified_ft.errors import DataError

RECORD_KINDS = ("chat", "preference", "unpaired", "text")
ROLES = ("system", "user", "assistant", "tool")

_KEYS = {
    "chat": ({"messages"}, {"tools"}),
    "preference": ({"prompt", "chosen", "rejected"}, {"tools"}),
    "unpaired": ({"prompt", "completion", "label"}, {"tools"}),
    "text": ({"text"}, set()),
}


def message(role: str, content: str) -> dict[str, str]:
    """One chat message in canonical form (key order fixed so written files are deterministic)."""
    return {"role": role, "content": content}


def chat_record(messages: list[dict[str, str]], tools: str | None = None) -> dict[str, Any]:
    """A chat record; ``tools`` is left out when there are none (trl treats absent as none)."""
    rec: dict[str, Any] = {"messages": messages}
    if tools is not None:
        rec["tools"] = tools
    return rec


def unpaired_record(prompt: list[dict[str, str]], completion: list[dict[str, str]], label: bool,
                    tools: str | None = None) -> dict[str, Any]:
    """One answer with a thumbs-up (label true) or thumbs-down, as trl's KTO trainer expects."""
    rec: dict[str, Any] = {"prompt": prompt, "completion": completion, "label": label}
    if tools is not None:
        rec["tools"] = tools
    return rec


def as_unpaired(record: dict[str, Any]) -> list[dict[str, Any]]:
    """KTO's view of a record: an unpaired record as itself; a preference pair as its chosen answer (label
    true) and its rejected answer (label false)."""
    if "label" in record:
        return [record]
    return [unpaired_record(record["prompt"], record["chosen"], True),
            unpaired_record(record["prompt"], record["rejected"], False)]


def preference_record(prompt: list[dict[str, str]], chosen: list[dict[str, str]],
                      rejected: list[dict[str, str]], tools: str | None = None) -> dict[str, Any]:
    """A preference record with explicit prompt, as trl's DPO-style trainers expect."""
    rec: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if tools is not None:
        rec["tools"] = tools
    return rec


def text_record(text: str) -> dict[str, str]:
    """A plain-text record for pretraining."""
    return {"text": text}


def record_kind(record: object) -> str | None:
    """Which kind a record looks like (by its keys), or None; used to check a dataset suits a method."""
    if not isinstance(record, dict):
        return None
    if "label" in record and "completion" in record:
        return "unpaired"
    if "messages" in record:
        return "chat"
    if "chosen" in record or "rejected" in record:
        return "preference"
    if "text" in record:
        return "text"
    return None


def validate_record(record: object, kind: str, path: object = "<record>", row: int | None = None) -> None:
    """Check ``record`` is a valid canonical record of ``kind``; raise DataError otherwise."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")
    if not isinstance(record, dict):
        raise DataError(path, f"a {kind} record must be an object, got {type(record).__name__}", row=row)
    required, optional = _KEYS[kind]
    keys = set(record)
    if required - keys or keys - required - optional:
        have = record_kind(record)
        what = f"it looks like a {have} record" if have and have != kind else f"keys: {', '.join(sorted(keys))}"
        raise DataError(path, f"expected a {kind} record with keys {', '.join(sorted(required))}"
                        + (f" (optional: {', '.join(sorted(optional))})" if optional else "") + f"; {what}",
                        row=row)
    if kind == "chat":
        validate_chat(record, path, row)
    elif kind == "preference":
        validate_preference(record, path, row)
    elif kind == "unpaired":
        validate_unpaired(record, path, row)
    else:
        validate_text(record, path, row)


def validate_chat(record: dict[str, Any], path: object = "<record>", row: int | None = None,
                  field: str = "messages") -> None:
    """A conversation SFT can learn from: has a user turn and ends with a non-empty assistant turn."""
    msgs = record.get("messages")
    _validate_messages(msgs, path, row, field)
    assert isinstance(msgs, list)
    if not any(m["role"] == "user" for m in msgs):
        raise DataError(path, "the conversation has no user message", row=row, field=field,
                        hint="each conversation needs at least one user turn before the assistant reply")
    last = msgs[-1]
    if last["role"] != "assistant":
        raise DataError(path, f"the conversation ends with a {last['role']} message, not an assistant reply",
                        row=row, field=field,
                        hint="supervised fine-tuning learns the assistant replies: end each conversation "
                             "with an assistant turn (or drop the trailing turns)")
    if not last["content"].strip():
        raise DataError(path, "the final assistant reply is empty", row=row, field=field,
                        hint="remove the row or fill in the reply")
    _validate_tools(record, path, row)


def validate_preference(record: dict[str, Any], path: object = "<record>", row: int | None = None) -> None:
    """A prompt plus two assistant answers to compare."""
    _validate_prompt(record, path, row)
    for name in ("chosen", "rejected"):
        _validate_answer(record, name, path, row)
    _validate_tools(record, path, row)


def validate_unpaired(record: dict[str, Any], path: object = "<record>", row: int | None = None) -> None:
    """A prompt, one answer, and whether the answer is desirable."""
    _validate_prompt(record, path, row)
    _validate_answer(record, "completion", path, row)
    if not isinstance(record.get("label"), bool):
        raise DataError(path, f"label must be true or false, got {type_name(record.get('label'))}", row=row,
                        field="label", hint="label marks the completion desirable (true) or not (false)")
    _validate_tools(record, path, row)


def _validate_prompt(record: dict[str, Any], path: object, row: int | None) -> None:
    prompt = record.get("prompt")
    _validate_messages(prompt, path, row, "prompt")
    assert isinstance(prompt, list)
    if not any(m["role"] == "user" for m in prompt):
        raise DataError(path, "the prompt has no user message", row=row, field="prompt")
    if prompt[-1]["role"] not in ("user", "tool"):
        raise DataError(path, f"the prompt ends with a {prompt[-1]['role']} message", row=row, field="prompt",
                        hint="the prompt should end with the user turn that the answers answer")


def _validate_answer(record: dict[str, Any], name: str, path: object, row: int | None) -> None:
    answer = record.get(name)
    _validate_messages(answer, path, row, name, allow_system=False)
    assert isinstance(answer, list)
    for i, m in enumerate(answer):
        if m["role"] not in ("assistant", "tool"):
            raise DataError(path, f"{name} holds a {m['role']} message; it may only hold the answer "
                                  "(assistant/tool messages)", row=row, field=f"{name}[{i}].role")
    if answer[-1]["role"] != "assistant" or not answer[-1]["content"].strip():
        raise DataError(path, f"{name} must end with a non-empty assistant message", row=row, field=name)


def validate_text(record: dict[str, Any], path: object = "<record>", row: int | None = None) -> None:
    """Non-empty text: an empty document only adds an EOS token."""
    text = record.get("text")
    if not isinstance(text, str):
        raise DataError(path, f"expected a string, got {type_name(text)}", row=row, field="text")
    if not text.strip():
        raise DataError(path, "the text is empty", row=row, field="text", hint="remove empty rows")


def type_name(value: object) -> str:
    """How to call a value's type in an error message, in the user's (JSON) terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    return type(value).__name__


def _validate_messages(msgs: object, path: object, row: int | None, field: str, allow_system: bool = True) -> None:
    if not isinstance(msgs, list):
        raise DataError(path, f"expected a list of messages, got {type_name(msgs)}", row=row, field=field)
    if not msgs:
        raise DataError(path, "the list of messages is empty", row=row, field=field)
    for i, m in enumerate(msgs):
        where = f"{field}[{i}]"
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            got = f"keys {', '.join(sorted(map(str, m)))}" if isinstance(m, dict) else type_name(m)
            raise DataError(path, f"a message must be an object with exactly 'role' and 'content', got {got}",
                            row=row, field=where)
        if m["role"] not in ROLES:
            raise DataError(path, f"unknown role {m['role']!r}; expected one of {', '.join(ROLES)}",
                            row=row, field=f"{where}.role")
        if not isinstance(m["content"], str):
            raise DataError(path, f"expected a string, got {type_name(m['content'])}", row=row,
                            field=f"{where}.content")
        if m["role"] == "system" and (i > 0 or not allow_system):
            raise DataError(path, "a system message may only be the first message", row=row, field=f"{where}.role",
                            hint="merge the system prompts into one first message")


def _validate_tools(record: dict[str, Any], path: object, row: int | None) -> None:
    if "tools" not in record:
        return
    tools = record["tools"]
    if not isinstance(tools, str):
        raise DataError(path, f"tools must be JSON text, got {type_name(tools)}", row=row, field="tools")
    try:
        parsed = json.loads(tools)
    except ValueError as exc:
        raise DataError(path, f"tools is not valid JSON: {exc}", row=row, field="tools") from None
    if not isinstance(parsed, (list, dict)):
        raise DataError(path, f"tools must be a JSON list of tool definitions, got {type_name(parsed)}",
                        row=row, field="tools")
