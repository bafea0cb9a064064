"""Read dataset files row by row and turn each row into a canonical record (see ``records``).

Files are streamed (never loaded whole), so a large dataset costs memory for one row at a time.

File types, by extension: ``.json`` (a JSON array of row objects, parsed incrementally; a
``.json`` file holding one object per line is read as JSON lines), ``.jsonl``/``.ndjson``,
``.csv`` (UTF-8, first line is the header), ``.parquet`` (needs pyarrow), and gzip-compressed
``.json.gz``/``.jsonl.gz``. A file whose name has no extension (a blob named by its hash, as in the
Hugging Face cache or DVC) is typed by the symbolic link pointing at it, else by its content. Only
regular files are read (a FIFO or device is refused before anything is read).

Row numbers in errors are 1-based: the element of a JSON array, the line of a JSON-lines file,
the data row of a CSV file (the header is not counted), the row of a Parquet file.

"Text stays text": a field holding text is never reformatted.

* JSON: numbers are parsed as their literal text, so ``{"output": 1e3}`` gives ``"1e3"`` and
  ``0.10`` stays ``"0.10"``. A boolean, null, object or list where text is expected is an error
  (quote it in the file if you meant the text).
* CSV: every cell is text as written (``007``, ``true`` and ``2024-01-01`` stay as they are).
  Fields that hold lists (``conversations``, ``messages``, ``history``) are read as JSON text.
* Parquet: a string column is used as is; an integer column is accepted (its decimal text is
  exact); any other type (float, bool, bytes, timestamp, ...) in a text field is an error, since
  its printed form might not be the original text.
* An optional field that is missing, null or an empty string counts as absent.

Formats (``fmt``) and the columns they read (canonical names; ``columns`` maps a canonical
name to the file's own column name, e.g. ``{"instruction": "question", "output": "answer"}``):

* ``alpaca`` -> chat: ``instruction``, ``output``, optional ``input`` (appended to the
  instruction after a newline, as LLaMA-Factory does), ``system``, ``history`` (a list of
  ``[user, assistant]`` pairs that come before the instruction).
* ``sharegpt`` -> chat: ``conversations`` (a list of ``{"from": ..., "value": ...}`` turns),
  optional ``system`` and ``tools``. Per-turn keys can be renamed with ``columns`` keys ``from``
  and ``value``; without them a turn may also use ``role``/``content``.
* ``messages`` -> chat: ``messages`` (OpenAI-style ``{"role", "content"}`` list), optional
  ``tools``. Per-turn keys can be renamed with ``columns`` keys ``role``/``content``.
* ``preference`` -> preference: ``chosen`` and ``rejected`` (text, one message, or a list of
  messages) plus a prompt given, per row, as one of: ``instruction`` (+ ``input``, ``system``,
  ``history``, alpaca style); ``prompt`` (text or a list of messages, + ``system``);
  ``messages`` or ``conversations`` (a list of messages); or nothing, when chosen and rejected
  are full conversations sharing the prompt as a common prefix (trl's implicit prompt).
* ``text`` -> text: ``text``.

Roles, in any format, are matched case-insensitively through these aliases (ShareGPT /
LLaMA-Factory / OpenAI conventions): user: ``user``, ``human``; assistant: ``assistant``,
``gpt``, ``model``, ``chatgpt``, ``bing``, ``bard``, ``function_call`` (a tool call is produced by
the model, so it is an assistant turn to learn; its content stays the call's text); system:
``system``, ``developer``; tool: ``tool``, ``observation``, ``function``, ``ipython`` (the
result a tool returned).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from unified_ft.data.files import DECODER, ConstantText, NumberText, check_file, file_type, iter_rows, shown
from unified_ft.data.records import (
    RECORD_KINDS,
    chat_record,
    message,
    preference_record,
    text_record,
    type_name,
    unpaired_record,
    validate_chat,
    validate_preference,
    validate_text,
    validate_unpaired,
)
from unified_ft.errors import DataError

FORMATS = ("alpaca", "sharegpt", "messages", "preference", "unpaired", "text")
FORMAT_KIND = {"alpaca": "chat", "sharegpt": "chat", "messages": "chat", "preference": "preference",
               "unpaired": "unpaired", "text": "text"}

# Canonical column names each format reads (keys allowed in ``columns``).
FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "sharegpt": ("conversations", "system", "tools", "from", "value"),
    "messages": ("messages", "tools", "role", "content"),
    "preference": ("instruction", "input", "system", "history", "prompt", "messages", "conversations",
                   "chosen", "rejected", "tools", "from", "value", "role", "content"),
    "unpaired": ("instruction", "input", "system", "history", "prompt", "messages", "conversations", "completion",
                 "label", "tools", "from", "value", "role", "content"),
    "text": ("text",),
}

ROLE_ALIASES: dict[str, str] = {
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant", "function_call": "assistant",
    "system": "system", "developer": "system",
    "tool": "tool", "observation": "tool", "function": "tool", "ipython": "tool",
}

# Common other names for canonical columns, used only to suggest a ``columns`` mapping.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "instruction": ("question", "prompt", "query", "input_text", "problem"),
    "output": ("answer", "response", "completion", "target", "solution", "output_text"),
    "input": ("context",),
    "conversations": ("conversation", "messages", "dialog", "dialogue", "turns", "chat"),
    "messages": ("conversations", "conversation", "dialog", "dialogue", "turns", "chat"),
    "text": ("content", "document", "body", "raw_text", "sentence"),
    "chosen": ("preferred", "accepted", "better", "winner", "response_chosen"),
    "rejected": ("dispreferred", "worse", "loser", "response_rejected"),
    "system": ("system_prompt", "sys"),
}


# ----------------------------------------------------------------------------------------------
# Public API


def read_records(path: str | Path, fmt: str, columns: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Stream the canonical records of a dataset file, checking each row; raise DataError on a bad one.

    Raises DataError for a missing file, an unknown extension or format, a bad ``columns`` key, a
    malformed or invalid row, and (once the file is exhausted) a file with no rows.
    """
    path = Path(path)
    convert = _converter(path, fmt, columns)
    cols = dict(columns or {})
    rows = iter_rows(path)  # checks the path and its type before the first row is asked for
    source_is_csv = file_type(path)[0] == ".csv"
    count = 0
    for row_no, data in rows:
        if not isinstance(data, dict):
            raise DataError(shown(path), f"each row must be an object with named fields, got {_value_type(data)}",
                            row=row_no, hint="write one JSON object per row, e.g. {\"text\": \"...\"}")
        try:
            record = convert(_Row(data, path, row_no, cols, source_is_csv, fmt))
        except RecursionError:
            raise DataError(shown(path), "the row nests lists or objects too deeply", row=row_no,
                            hint="a training row holds at most a few levels of nesting; fix the row") from None
        yield record
        count += 1
    if count == 0:
        raise DataError(shown(path), "the dataset has no rows",
                        hint="check this is the file you meant; an empty dataset cannot be trained on")


def count_and_validate(path: str | Path, fmt: str, columns: Mapping[str, str] | None = None,
                       kind: str | None = None) -> int:
    """Read a whole dataset to check every row (and its kind, if given) without keeping it; return the row count."""
    if kind is not None:
        check_format_kind(path, fmt, kind)
    return sum(1 for _ in read_records(path, fmt, columns))


def check_format_kind(path: str | Path, fmt: str, kind: str) -> None:
    """Fail early when a format cannot give the record kind a training method needs."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")
    _check_format(path, fmt)
    have = FORMAT_KIND[fmt]
    if have == kind:
        return
    need = {
        "chat": ("a chat dataset (conversations with assistant replies)",
                 "use format: alpaca, sharegpt or messages"),
        "preference": ("a preference dataset (a prompt with chosen and rejected answers)",
                       "use format: preference, with chosen and rejected columns"),
        "text": ("a plain-text dataset", "use format: text, with a text column"),
    }[kind]
    raise DataError(path, f"this training method needs {need[0]}, but format '{fmt}' gives {have} records",
                    hint=need[1])


def check_source(path: str | Path, fmt: str, columns: Mapping[str, str] | None = None,
                 kind: str | None = None) -> None:
    """Cheap checks before reading any row: format (and kind), ``columns`` keys, file type, file exists."""
    if kind is not None:
        check_format_kind(path, fmt, kind)
    _converter(Path(path), fmt, columns)
    check_file(path)  # exists, and is a regular file (not a folder, FIFO or device)
    file_type(path)


# ----------------------------------------------------------------------------------------------
# Field access


def detect_format(path: str | Path) -> str:
    """The format of a dataset told from its first row's columns (spec `format: auto`)."""
    rows = iter_rows(path)
    try:
        for row_no, data in rows:
            if not isinstance(data, dict):
                raise DataError(shown(path), f"each row must be an object with named fields, got "
                                             f"{_value_type(data)}", row=row_no)
            keys = [str(k) for k in data]
            found = _guess_format(keys)
            if found is None:
                raise DataError(shown(path), f"format auto: the columns {', '.join(keys) or '(none)'} match no known "
                                             "format", row=row_no,
                                hint=f"set the dataset's format ({', '.join(FORMATS)}) and columns")
            return found
    finally:
        rows.close()  # only the first row is needed: close the file now
    raise DataError(shown(path), "the dataset has no rows", hint="check this is the file you meant")


def _guess_format(keys: list[str]) -> str | None:
    k = set(keys)
    if "label" in k or "kto_tag" in k:
        return "unpaired"
    if ("chosen" in k or "messages" in k) and ("rejected" in k or "rejected_response" in k):
        return "preference"
    if "conversations" in k:
        return "sharegpt"
    if "messages" in k:
        return "messages"
    if "instruction" in k and "output" in k:
        return "alpaca"
    if "text" in k:
        return "text"
    return None


class _Row:
    """One raw row plus where it came from, so every value read from it can name file, row and field."""

    __slots__ = ("data", "path", "row", "columns", "csv", "fmt")

    def __init__(self, data: dict[str, Any], path: Path, row: int, columns: dict[str, str], is_csv: bool,
                 fmt: str) -> None:
        self.data, self.path, self.row, self.columns, self.csv, self.fmt = data, path, row, columns, is_csv, fmt

    def col(self, name: str) -> str:
        return self.columns.get(name, name)

    def error(self, message: str, field: str | None = None, hint: str = "") -> DataError:
        return DataError(shown(self.path), message, row=self.row, field=field, hint=hint)

    def missing(self, name: str, message: str = "") -> DataError:
        key = self.col(name)
        keys = [str(k) for k in self.data if k is not None]
        mapped = f" (mapped from '{name}' by columns)" if key != name else ""
        msg = message or f"missing required column '{key}'{mapped}"
        msg += f"; this row has: {', '.join(keys) if keys else 'no columns'}"
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if not close:
            close = [k for k in _SYNONYMS.get(name, ()) if k in keys][:1]
        if close:
            hint = f"did you mean '{close[0]}'? map it with `columns: {{{name}: {close[0]}}}`"
        elif key != name:
            hint = f"check `columns: {{{name}: {key}}}` in the spec"
        else:
            hint = f"if your file names it differently, map it with `columns: {{{name}: <your column>}}`"
        guess = _guess_format(keys)
        if guess and guess != self.fmt and not close:
            hint = f"this row looks like `format: {guess}`, not '{self.fmt}'; or {hint}"
        return self.error(msg, field=key, hint=hint)

    def present(self, name: str) -> bool:
        value = self.data.get(self.col(name))
        return value is not None and value != ""

    def get(self, name: str, required: bool = True, expected: str = "a string") -> Any:
        """The raw value; for an optional field, None when missing, null or ''."""
        key = self.col(name)
        if key not in self.data or (self.data[key] is None and (self.csv or not required)):
            if required:
                raise self.missing(name)
            return None
        value = self.data[key]
        if not required and value == "":
            return None
        if value is None:
            raise self.error(f"expected {expected}, got null", field=key, hint="fill in the value or remove the row")
        return value

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.get(name, required)
        return None if value is None else _as_text(value, self, self.col(name))

    def list(self, name: str, required: bool = True) -> list[Any] | None:
        """A list-valued field; in CSV the cell holds the list as JSON text."""
        value = self.get(name, required, expected="a list")
        if value is None:
            return None
        key = self.col(name)
        if self.csv and isinstance(value, str):
            try:
                value = DECODER.decode(value)
            except json.JSONDecodeError as exc:
                raise self.error(f"a CSV cell holding a list must be JSON text: {exc.msg} (column {exc.colno})",
                                 field=key) from None
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise self.error(f"expected a list, got {_value_type(value)}", field=key)
        return value


def _value_type(value: object) -> str:
    return "a number" if isinstance(value, NumberText) else type_name(value)


def _as_text(value: Any, row: _Row, field: str) -> str:
    """Text exactly as the file has it; a number's literal text counts, other types are errors."""
    if isinstance(value, ConstantText):
        raise row.error(f"expected a string, got a bare {value} (not valid JSON)", field=field,
                        hint=f'quote it in the file ("{value}") if you mean the text')
    if isinstance(value, str):
        return str(value)  # plain str, also for NumberText
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Parquet integer column: decimal text is exact
    if isinstance(value, bool):
        hint = f'quote it in the file ("{str(value).lower()}") if you mean the text'
    elif value is None:
        hint = "fill in the value or remove the row"
    elif isinstance(value, float):
        hint = "store this column as strings: a float's printed form may differ from the original text"
    else:
        hint = "this field must hold plain text"
    raise row.error(f"expected a string, got {type_name(value)}", field=field, hint=hint)


def _dump_json(value: Any) -> str:
    """JSON text of a parsed value, writing JSON numbers back as their original literal text."""
    if isinstance(value, NumberText):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_dump_json(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_dump_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _tools(row: _Row) -> str | None:
    value = row.get("tools", required=False)
    if value is None:
        return None
    key = row.col("tools")
    if isinstance(value, str):
        text = str(value)
    elif isinstance(value, (list, dict, tuple)):
        text = _dump_json(value)
    else:
        raise row.error(f"tools must be JSON text or a list of tool definitions, got {_value_type(value)}", field=key)
    try:
        parsed = DECODER.decode(text)  # numbers stay text: no limit on their digits
    except ValueError as exc:
        raise row.error(f"tools is not valid JSON: {exc}", field=key) from None
    if not isinstance(parsed, (list, dict)):
        raise row.error(f"tools must be a JSON list of tool definitions, got {type_name(parsed)}", field=key)
    return None if parsed in ([], {}) else text


def _turn_keys(row: _Row, turn: dict[str, Any]) -> tuple[str, str]:
    role_key = row.columns.get("from") or row.columns.get("role")
    content_key = row.columns.get("value") or row.columns.get("content")
    if role_key is None:
        role_key = "from" if "from" in turn or "role" not in turn else "role"
    if content_key is None:
        content_key = "value" if "value" in turn or "content" not in turn else "content"
    return role_key, content_key


def _turn(row: _Row, turn: Any, where: str) -> dict[str, str]:
    """One message from a ``{from, value}`` or ``{role, content}`` object, with role aliases resolved."""
    if not isinstance(turn, dict):
        raise row.error(f"a turn must be an object with a role and text, got {_value_type(turn)}", field=where)
    role_key, content_key = _turn_keys(row, turn)
    keys = ", ".join(map(str, turn)) or "none"
    if role_key not in turn:
        raise row.error(f"the turn has no '{role_key}' key (its keys: {keys})", field=where,
                        hint="name the turn's role key with `columns: {from: <key>}`")
    raw_role = turn[role_key]
    if not isinstance(raw_role, str):
        raise row.error(f"the role must be a string, got {_value_type(raw_role)}", field=f"{where}.{role_key}")
    role = ROLE_ALIASES.get(raw_role.strip().lower())
    if role is None:
        known = ", ".join(f"{a}->{r}" for a, r in ROLE_ALIASES.items())
        raise row.error(f"unknown role {raw_role!r}", field=f"{where}.{role_key}", hint=f"known roles: {known}")
    if content_key not in turn:
        raise row.error(f"the turn has no '{content_key}' key (its keys: {keys})", field=where,
                        hint="name the turn's text key with `columns: {value: <key>}`")
    content = turn[content_key]
    if content is None and turn.get("tool_calls"):
        raise row.error("messages with tool_calls are not supported", field=f"{where}.tool_calls",
                        hint="write the call as JSON text in the content (or use sharegpt function_call turns)")
    if isinstance(content, list):
        raise row.error("expected a string, got a list (multimodal content parts?)", field=f"{where}.{content_key}",
                        hint="only text content is supported: put the text itself in the field")
    return message(role, _as_text(content, row, f"{where}.{content_key}"))


def _turns(row: _Row, name: str, required: bool = True) -> list[dict[str, str]] | None:
    turns = row.list(name, required)
    if turns is None:
        return None
    key = row.col(name)
    if not turns:
        raise row.error("the conversation is empty", field=key)
    return [_turn(row, t, f"{key}[{i}]") for i, t in enumerate(turns)]


def _with_system(row: _Row, msgs: list[dict[str, str]], field: str) -> list[dict[str, str]]:
    system = row.text("system", required=False)
    if system is None or not system.strip():
        return msgs
    if msgs and msgs[0]["role"] == "system":
        raise row.error(f"the row has both a '{row.col('system')}' column and a system turn in '{field}'",
                        field=row.col("system"), hint="keep only one of them")
    return [message("system", system)] + msgs


def _history(row: _Row) -> list[dict[str, str]]:
    pairs = row.list("history", required=False) or []
    key = row.col("history")
    out: list[dict[str, str]] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise row.error(f"each history item must be a [user, assistant] pair, got {_value_type(pair)}"
                            + (f" of length {len(pair)}" if isinstance(pair, (list, tuple)) else ""),
                            field=f"{key}[{i}]")
        out.append(message("user", _as_text(pair[0], row, f"{key}[{i}][0]")))
        out.append(message("assistant", _as_text(pair[1], row, f"{key}[{i}][1]")))
    return out


def _query(row: _Row) -> str:
    """LLaMA-Factory's alpaca rule: instruction, plus a newline and the input when there is one."""
    instruction = row.text("instruction")
    assert instruction is not None
    extra = row.text("input", required=False)
    return f"{instruction}\n{extra}" if extra else instruction


# ----------------------------------------------------------------------------------------------
# Formats


def _alpaca(row: _Row) -> dict[str, Any]:
    fast = _plain_alpaca(row)
    if fast is not None:
        return fast
    output = row.get("output")
    if isinstance(output, (list, tuple)):
        raise row.error("expected a string, got a list", field=row.col("output"),
                        hint="a list of outputs is a ranking row: use `format: preference` with chosen/rejected")
    text = _as_text(output, row, row.col("output"))
    if not text.strip():
        raise row.error("the output (assistant reply) is empty", field=row.col("output"),
                        hint="remove the row or fill in the reply")
    msgs = _with_system(row, _history(row) + [message("user", _query(row))], "history")
    rec = chat_record(msgs + [message("assistant", text)])
    validate_chat(rec, row.path, row.row, field=row.col("output"))
    return rec


_ALPACA_KEYS = ("output", "instruction", "input", "history", "system")


def _plain_alpaca(row: _Row) -> dict[str, Any] | None:
    """The record of the commonest alpaca row (plain text instruction and output, an optional plain text input,
    no history and no system) built directly, or None for any other row, which the full path reads (and whose
    errors it names). For these rows both give the same record: it is a valid chat record by construction (a
    user turn, then a non-empty assistant reply), so the general checks have nothing to find. A third of the
    data step's time on a large file went to those per-field checks."""
    data, columns = row.data, row.columns
    if columns:
        output, instruction, extra, history, system = (data.get(columns.get(name, name)) for name in _ALPACA_KEYS)
    else:
        output, instruction, extra = data.get("output"), data.get("instruction"), data.get("input")
        history, system = data.get("history"), data.get("system")
    if (type(output) is not str or type(instruction) is not str or not output.strip() or history is not None
            or system is not None):
        return None
    if extra is None or extra == "":
        query = instruction
    elif type(extra) is str:
        query = f"{instruction}\n{extra}"
    else:
        return None
    return {"messages": [{"role": "user", "content": query}, {"role": "assistant", "content": output}]}


def _chat(row: _Row, name: str) -> dict[str, Any]:
    turns = _turns(row, name)
    assert turns is not None
    key = row.col(name)
    rec = chat_record(_with_system(row, turns, key), _tools(row))
    validate_chat(rec, row.path, row.row, field=key)
    return rec


def _answer(row: _Row, name: str) -> list[dict[str, str]]:
    value = row.get(name)
    key = row.col(name)
    if isinstance(value, dict):
        return [_turn(row, value, key)]
    if isinstance(value, (list, tuple)):
        if not value:
            raise row.error("the answer is empty", field=key)
        return [_turn(row, t, f"{key}[{i}]") for i, t in enumerate(value)]
    return [message("assistant", _as_text(value, row, key))]


def _preference(row: _Row) -> dict[str, Any]:
    if not row.present("chosen") and row.present("messages"):
        return _preference_in_messages(row)
    for name in ("chosen", "rejected"):
        if row.data.get(row.col(name)) is None:
            raise row.missing(name, f"missing required column '{row.col(name)}' (a preference row needs chosen "
                                    "and rejected answers)")
    prompt = _prompt(row)
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    if not prompt:
        # trl's implicit prompt: chosen and rejected are whole conversations sharing a prefix.
        k = 0
        while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
            k += 1
        while k > 0 and chosen[k - 1]["role"] == "assistant":
            k -= 1
        if k == 0:
            raise row.missing("prompt", "a preference row needs a prompt: an 'instruction', a 'prompt', "
                                        "'messages'/'conversations', or chosen/rejected conversations that start "
                                        "with the same prompt turns")
        prompt, chosen, rejected = chosen[:k], chosen[k:], rejected[k:]
    rec = preference_record(prompt, chosen, rejected, _tools(row))
    validate_preference(rec, row.path, row.row)
    return rec


def _unpaired(row: _Row) -> dict[str, Any]:
    """KTO-style rows: a prompt and one completion (or `messages` ending with it) and a true/false `label`."""
    label = row.get("label", expected="true or false")
    if isinstance(label, str) and label.strip().lower() in ("true", "false", "1", "0"):  # CSV cells are text
        label = label.strip().lower() in ("true", "1")
    if not isinstance(label, bool):
        raise row.error(f"label must be true or false, got {type_name(label)}", field=row.col("label"))
    if row.present("completion"):
        prompt = _prompt(row)
        completion = _answer(row, "completion")
    else:
        name = "messages" if row.present("messages") else "conversations"
        turns = _with_system(row, _turns(row, name) or [], row.col(name))
        if turns[-1]["role"] != "assistant":
            raise row.error(f"a row without 'completion' needs '{row.col(name)}' ending with the assistant answer",
                            field=row.col(name))
        prompt, completion = turns[:-1], [turns[-1]]
    rec = unpaired_record(prompt, completion, label, _tools(row))
    validate_unpaired(rec, row.path, row.row)
    return rec


def _prompt(row: _Row) -> list[dict[str, str]]:
    """The prompt turns of a row given as `instruction` (alpaca style), `prompt`, or `messages`/`conversations`."""
    if row.present("instruction"):
        return _with_system(row, _history(row) + [message("user", _query(row))], "history")
    if row.present("prompt"):
        value = row.get("prompt")
        if isinstance(value, (list, tuple)):
            prompt = _turns(row, "prompt") or []
        else:
            prompt = [message("user", _as_text(value, row, row.col("prompt")))]
        return _with_system(row, prompt, row.col("prompt"))
    if row.present("messages") or row.present("conversations"):
        name = "messages" if row.present("messages") else "conversations"
        return _with_system(row, _turns(row, name) or [], row.col(name))
    return []


def _preference_in_messages(row: _Row) -> dict[str, Any]:
    """ms-swift's shape: `messages` ending with the chosen answer, and `rejected` (or `rejected_response`)."""
    turns = _with_system(row, _turns(row, "messages") or [], row.col("messages"))
    if not turns or turns[-1]["role"] != "assistant":
        raise row.error("a preference row without 'chosen' needs 'messages' ending with the chosen assistant answer",
                        field=row.col("messages"))
    name = "rejected" if row.present("rejected") else "rejected_response"
    if not row.present(name):
        raise row.missing("rejected", "missing the rejected answer ('rejected' or 'rejected_response')")
    rejected = _answer(row, name)
    rec = preference_record(turns[:-1], [turns[-1]], rejected, _tools(row))
    validate_preference(rec, row.path, row.row)
    return rec


def _text(row: _Row) -> dict[str, Any]:
    rec = text_record(row.text("text") or "")
    if not rec["text"].strip():
        raise row.error("the text is empty", field=row.col("text"), hint="remove empty rows")
    validate_text(rec, row.path, row.row)
    return rec


_CONVERTERS: dict[str, Callable[[_Row], dict[str, Any]]] = {
    "alpaca": _alpaca,
    "sharegpt": lambda row: _chat(row, "conversations"),
    "messages": lambda row: _chat(row, "messages"),
    "preference": _preference,
    "unpaired": _unpaired,
    "text": _text,
}


def _check_format(path: str | Path, fmt: str) -> None:
    if fmt not in FORMATS:
        close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        raise DataError(path, f"unknown dataset format {fmt!r}; known formats: {', '.join(FORMATS)}",
                        hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(FORMATS)}")


def _converter(path: Path, fmt: str, columns: Mapping[str, str] | None) -> Callable[[_Row], dict[str, Any]]:
    _check_format(path, fmt)
    allowed = FORMAT_COLUMNS[fmt]
    for key, value in (columns or {}).items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise DataError(path, f"columns: unknown key {key!r} for format '{fmt}'; it maps these canonical "
                                  f"names: {', '.join(allowed)}", field="columns",
                            hint=f"did you mean '{close[0]}'?" if close else
                            "a columns entry is `<canonical name>: <column in your file>`")
        if not isinstance(value, str) or not value:
            raise DataError(path, f"columns: the value for {key!r} must be a column name, got {type_name(value)}",
                            field="columns")
    return _CONVERTERS[fmt]
