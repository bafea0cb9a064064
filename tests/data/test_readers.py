"""Readers: every format from every file type, column mapping, literal text, and the errors users see."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from unified_ft.data import files
from unified_ft.data.readers import count_and_validate, read_records
from unified_ft.data.records import validate_record
from unified_ft.errors import DataError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def s(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def write(tmp_path: Path, ext: str, rows: list[dict[str, Any]], name: str = "data") -> Path:
    """Write rows as the given file type; list/dict values become JSON text in CSV cells."""
    path = tmp_path / f"{name}{ext}"
    if ext == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif ext in (".jsonl", ".jsonl.gz"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if ext.endswith(".gz"):
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            path.write_text(text, encoding="utf-8")
    elif ext == ".csv":
        header: list[str] = []
        for r in rows:
            header += [k for k in r if k not in header]
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r in rows:
                w.writerow([json.dumps(r[k]) if isinstance(r.get(k), (list, dict)) else r.get(k, "") for k in header])
    elif ext == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise AssertionError(ext)
    return path


def read(path: Path, fmt: str, columns: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return list(read_records(path, fmt, columns))


def error(path: Path, fmt: str, columns: dict[str, str] | None = None) -> DataError:
    with pytest.raises(DataError) as info:
        read(path, fmt, columns)
    return info.value


FILE_TYPES = [".json", ".jsonl", ".csv", ".parquet", ".jsonl.gz"]


# ---------------------------------------------------------------- formats x file types


@pytest.mark.parametrize("ext", FILE_TYPES)
def test_alpaca_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [
        {"instruction": "Translate", "input": "chat", "output": "cat", "system": "You translate."},
        {"instruction": "Say hi", "input": "", "output": "hi", "system": ""},
    ]
    recs = read(write(tmp_path, ext, rows), "alpaca")
    assert recs == [
        {"messages": [s("You translate."), u("Translate\nchat"), a("cat")]},
        {"messages": [u("Say hi"), a("hi")]},
    ]
    for rec in recs:
        validate_record(rec, "chat")


@pytest.mark.parametrize("ext", FILE_TYPES)
def test_sharegpt_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [{"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}],
             "system": "Be brief."}]
    assert read(write(tmp_path, ext, rows), "sharegpt") == [{"messages": [s("Be brief."), u("2+2?"), a("4")]}]


@pytest.mark.parametrize("ext", FILE_TYPES)
def test_messages_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [{"messages": [s("sys"), u("hi"), a("hello"), u("bye"), a("ciao")]}]
    assert read(write(tmp_path, ext, rows), "messages") == [{"messages": [s("sys"), u("hi"), a("hello"), u("bye"),
                                                                          a("ciao")]}]


@pytest.mark.parametrize("ext", FILE_TYPES)
def test_text_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [{"text": "Once upon a time."}, {"text": "Zürich — 東京"}]
    assert read(write(tmp_path, ext, rows), "text") == [{"text": "Once upon a time."}, {"text": "Zürich — 東京"}]


@pytest.mark.parametrize("ext", FILE_TYPES)
def test_preference_alpaca_style_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [{"instruction": "Pick", "input": "a or b", "chosen": "a", "rejected": "b", "system": "Judge."}]
    assert read(write(tmp_path, ext, rows), "preference") == [
        {"prompt": [s("Judge."), u("Pick\na or b")], "chosen": [a("a")], "rejected": [a("b")]}]


def test_preference_message_styles(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": [u("Hi?")], "chosen": [a("Hello!")], "rejected": [a("No.")]},
        {"messages": [s("sys"), u("Hi?")], "chosen": a("Hello!"), "rejected": a("No.")},
        {"conversations": [{"from": "human", "value": "Hi?"}], "chosen": {"from": "gpt", "value": "Hello!"},
         "rejected": {"from": "gpt", "value": "No."}},
        # trl's implicit prompt: full conversations sharing their prompt turns
        {"chosen": [u("Hi?"), a("Hello!")], "rejected": [u("Hi?"), a("No.")]},
    ]
    recs = read(write(tmp_path, ".jsonl", rows), "preference")
    assert recs[0] == {"prompt": [u("Hi?")], "chosen": [a("Hello!")], "rejected": [a("Go away.")]}
    assert recs[1] == {"prompt": [u("Hi?")], "chosen": [a("Hello!")], "rejected": [a("No.")]}
    assert recs[2] == {"prompt": [s("sys"), u("Hi?")], "chosen": [a("Hello!")], "rejected": [a("No.")]}
    assert recs[3] == recs[4] == recs[1]
    for rec in recs:
        validate_record(rec, "preference")


def test_preference_without_prompt_is_an_error(tmp_path: Path) -> None:
    err = error(write(tmp_path, ".jsonl", [{"chosen": "x", "rejected": "y"}]), "preference")
    assert "needs a prompt" in str(err) and "row 1" in str(err)


def test_preference_missing_rejected(tmp_path: Path) -> None:
    err = error(write(tmp_path, ".jsonl", [{"prompt": "p", "chosen": "x", "reject": "y"}]), "preference")
    assert err.row == 1 and err.field == "rejected"
    assert "did you mean 'reject'" in str(err)


# ---------------------------------------------------------------- mapping, aliases, history


def test_column_mapping(tmp_path: Path) -> None:
    p = write(tmp_path, ".csv", [{"question": "Q", "answer": "A"}])
    assert read(p, "alpaca", {"instruction": "question", "output": "answer"}) == [{"messages": [u("Q"), a("A")]}]
    p = write(tmp_path, ".jsonl", [{"content": "doc"}])
    assert read(p, "text", {"text": "content"}) == [{"text": "doc"}]
    p = write(tmp_path, ".json", [{"dialog": [{"speaker": "user", "says": "x"}, {"speaker": "bot", "says": "y"}]}])
    with pytest.raises(DataError, match="unknown role 'bot'"):
        read(p, "sharegpt", {"conversations": "dialog", "from": "speaker", "value": "says"})
    p = write(tmp_path, ".json", [{"dialog": [{"speaker": "user", "says": "x"}, {"speaker": "model", "says": "y"}]}])
    assert read(p, "sharegpt", {"conversations": "dialog", "from": "speaker", "value": "says"}) == [
        {"messages": [u("x"), a("y")]}]


def test_unknown_columns_key(tmp_path: Path) -> None:
    p = write(tmp_path, ".jsonl", [{"text": "x"}])
    err = error(p, "alpaca", {"outptu": "answer"})
    assert "unknown key 'outptu'" in str(err) and "did you mean 'output'" in str(err)


@pytest.mark.parametrize("alias,role", [
    ("human", "user"), ("USER", "user"), ("gpt", "assistant"), ("chatgpt", "assistant"), ("bing", "assistant"),
    ("bard", "assistant"), ("model", "assistant"), ("function_call", "assistant"), ("observation", "tool"),
    ("tool", "tool"),
])
def test_sharegpt_role_aliases(tmp_path: Path, alias: str, role: str) -> None:
    conv = [{"from": "human", "value": "q"}, {"from": alias, "value": "t"}, {"from": "gpt", "value": "end"}]
    (rec,) = read(write(tmp_path, ".jsonl", [{"conversations": conv}]), "sharegpt")
    assert rec["messages"][1] == {"role": role, "content": "t"}


def test_sharegpt_tools_and_role_content_keys(tmp_path: Path) -> None:
    tools = [{"name": "add", "parameters": {"type": "object", "minimum": 0.50}}]
    row = {"conversations": [{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}], "tools": tools}
    (rec,) = read(write(tmp_path, ".jsonl", [row]), "sharegpt")
    assert rec["messages"] == [u("1+1"), a("2")]
    assert rec["tools"] == '[{"name": "add", "parameters": {"type": "object", "minimum": 0.5}}]'  # json.dumps wrote 0.5
    raw = tmp_path / "raw.jsonl"  # the literal number text survives into tools
    raw.write_text('{"conversations": [{"from":"human","value":"q"},{"from":"gpt","value":"a"}], '
                   '"tools": [{"min": 0.50, "max": 1E3}]}\n')
    assert json.loads(read(raw, "sharegpt")[0]["tools"]) == [{"min": 0.5, "max": 1000.0}]
    assert "0.50" in read(raw, "sharegpt")[0]["tools"]


def test_alpaca_history_and_system(tmp_path: Path) -> None:
    row = {"instruction": "and 3?", "output": "9", "system": "Math.", "history": [["2 squared?", "4"], ["3?", "9"]]}
    for ext in (".json", ".csv", ".parquet"):
        assert read(write(tmp_path, ext, [row]), "alpaca") == [
            {"messages": [s("Math."), u("2 squared?"), a("4"), u("3?"), a("9"), u("and 3?"), a("9")]}]


def test_system_column_and_system_turn_conflict(tmp_path: Path) -> None:
    row = {"conversations": [{"from": "system", "value": "x"}, {"from": "human", "value": "q"},
                             {"from": "gpt", "value": "a"}], "system": "y"}
    err = error(write(tmp_path, ".jsonl", [row]), "sharegpt")
    assert err.row == 1 and err.field == "system"


def test_json_lines_inside_dot_json(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    assert read(p, "text") == [{"text": "a"}, {"text": "b"}]


# ---------------------------------------------------------------- text stays text


def test_numbers_keep_their_literal_text(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_text('{"instruction": 2024, "output": 1e3}\n{"instruction": "x", "output": 0.10}\n'
                 '{"instruction": "x", "output": -0}\n{"instruction": "date", "output": "2024-01-01"}\n')
    assert [r["messages"][-1]["content"] for r in read(p, "alpaca")] == ["1e3", "0.10", "-0", "2024-01-01"]
    assert read(p, "alpaca")[0]["messages"][0]["content"] == "2024"


def test_csv_cells_stay_as_written(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("instruction,output,input\n007,true,\n1e3,2024-01-01, 0.10\n", encoding="utf-8")
    recs = read(p, "alpaca")
    assert recs[0]["messages"] == [u("007"), a("true")]
    assert recs[1]["messages"] == [u("1e3\n 0.10"), a("2024-01-01")]


def test_parquet_integer_column_is_text_float_is_error(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b"], "output": [42, 7]}), p)
    assert [r["messages"][-1]["content"] for r in read(p, "alpaca")] == ["42", "7"]
    p = tmp_path / "f.parquet"
    pq.write_table(pa.table({"instruction": ["a"], "output": [0.1]}), p)
    err = error(p, "alpaca")
    assert "f.parquet" in str(err) and err.row == 1 and err.field == "output"
    assert "floating-point" in str(err)


@pytest.mark.parametrize("literal,got", [("true", "a boolean"), ("null", "null"), ('{"a": 1}', "an object"),
                                         ("[1]", "a list")])
def test_non_text_in_text_field(tmp_path: Path, literal: str, got: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "ok", "output": "ok"}\n' f'{{"instruction": "x", "output": {literal}}}\n')
    err = error(p, "alpaca")
    msg = str(err)
    assert "bad.jsonl" in msg and "row 2" in msg and "field 'output'" in msg and f"got {got}" in msg
    assert err.hint


# ---------------------------------------------------------------- bad rows


def test_missing_field_lists_keys_and_suggests_mapping(tmp_path: Path) -> None:
    p = write(tmp_path, ".jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "a", "answer": "b"}])
    err = error(p, "alpaca")
    msg = str(err)
    assert err.row == 2 and err.field == "output"
    assert "data.jsonl" in msg and "instruction, answer" in msg and "columns: {output: answer}" in msg
    p = write(tmp_path, ".jsonl", [{"instruction": "a", "outptu": "b"}], name="typo")
    assert "did you mean 'outptu'" in str(error(p, "alpaca"))


def test_wrong_format_hint(tmp_path: Path) -> None:
    p = write(tmp_path, ".jsonl", [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    assert "format: sharegpt" in str(error(p, "alpaca"))


def test_malformed_json_line(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b"\n{"text": "c"}\n')
    it = read_records(p, "text")
    assert next(it) == {"text": "a"}
    with pytest.raises(DataError) as info:
        next(it)
    assert info.value.row == 2 and "m.jsonl" in str(info.value) and "malformed JSON" in str(info.value)


def test_malformed_json_array(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text('[{"text": "a"},\n {"text": "b"} {"text": "c"}]')
    err = error(p, "text")
    assert "m.json" in str(err) and err.row == 2 and "line 2" in str(err)
    p.write_text('[{"text": "a"}, {"text": "b"}')
    assert "cut off" in str(error(p, "text"))
    p.write_text('{"data": [\n{"text": "a"}]}')
    assert "JSON array" in str(error(p, "text"))


def test_unknown_sharegpt_role(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]
    err = error(write(tmp_path, ".jsonl", [{"conversations": conv}]), "sharegpt")
    assert err.row == 1 and err.field == "conversations[1].from" and "'robot'" in str(err)
    assert "gpt->assistant" in err.hint


def test_conversation_without_assistant_reply(tmp_path: Path) -> None:
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    bad = {"conversations": [{"from": "human", "value": "q"}]}
    err = error(write(tmp_path, ".json", [good, good, bad]), "sharegpt")
    assert err.row == 3 and err.field == "conversations" and "assistant" in str(err)
    err = error(write(tmp_path, ".jsonl", [{"messages": [s("x"), a("y")]}]), "messages")
    assert "no user message" in str(err)


def test_messages_tool_calls_and_multimodal_rejected(tmp_path: Path) -> None:
    row = {"messages": [u("q"), {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]}
    assert "tool_calls" in str(error(write(tmp_path, ".jsonl", [row]), "messages"))
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}, a("x")]}
    err = error(write(tmp_path, ".jsonl", [row], name="mm"), "messages")
    assert err.field == "messages[0].content"


def test_csv_row_numbers_count_data_rows(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text('instruction,output\na,b\n"multi\nline",c\nx,\n', encoding="utf-8")
    err = error(p, "alpaca")
    assert err.row == 3 and err.field == "output" and "r.csv, row 3" in str(err)
    p.write_text("instruction,output\na,b,c\n", encoding="utf-8")
    assert "3 cells" in str(error(p, "alpaca"))


# ---------------------------------------------------------------- files and formats


def test_missing_file(tmp_path: Path) -> None:
    err = error(tmp_path / "nope.jsonl", "text")
    assert "nope.jsonl" in str(err) and "not found" in str(err) and "spec file" in err.hint


@pytest.mark.parametrize("ext,content", [(".jsonl", ""), (".jsonl", "\n\n"), (".json", "[]"), (".json", ""),
                                         (".csv", "text\n"), (".csv", "")])
def test_empty_dataset(tmp_path: Path, ext: str, content: str) -> None:
    p = tmp_path / f"empty{ext}"
    p.write_text(content)
    err = error(p, "text")
    assert "no rows" in str(err) and f"empty{ext}" in str(err)


def test_empty_parquet(tmp_path: Path) -> None:
    p = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), p)
    assert "no rows" in str(error(p, "text"))


def test_unknown_format_and_extension(tmp_path: Path) -> None:
    p = write(tmp_path, ".jsonl", [{"text": "x"}])
    err = error(p, "sharegtp")
    assert "alpaca, sharegpt, messages, preference, unpaired, text" in str(err)
    assert "did you mean 'sharegpt'" in str(err)
    q = tmp_path / "data.xlsx"
    q.write_text("x")
    assert "unknown file type" in str(error(q, "text"))


def test_count_and_validate_checks_kind(tmp_path: Path) -> None:
    p = write(tmp_path, ".jsonl", [{"instruction": "a", "output": "b"}] * 3)
    assert count_and_validate(p, "alpaca") == 3
    with pytest.raises(DataError, match="needs a preference dataset") as info:
        count_and_validate(p, "alpaca", kind="preference")
    assert "format: preference" in info.value.hint


# ---------------------------------------------------------------- streaming


class _CountingText:
    """Wraps a data file to record how many bytes the reader pulled."""

    def __init__(self, f: Any) -> None:
        self.f, self.read_chars = f, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        self.read_chars += len(chunk)
        return chunk

    def __enter__(self) -> _CountingText:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def test_json_array_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "big.json"
    body = ",\n".join(json.dumps({"text": f"row {i} " + "x" * 100}) for i in range(200))
    p.write_text("[" + body + ",\n{\"text\": oops}]")
    opened: list[_CountingText] = []
    real_open = files._open_data

    def counting_open(stack: Any, path: Path, gz: bool) -> _CountingText:
        opened.append(_CountingText(real_open(stack, path, gz)))
        return opened[0]

    monkeypatch.setattr(files, "_open_data", counting_open)
    monkeypatch.setattr(files, "_CHUNK", 256)
    it = read_records(p, "text")
    assert next(it)["text"].startswith("row 0 ")
    assert opened[0].read_chars < 1024 < p.stat().st_size  # the first record came before most of the file was read
    with pytest.raises(DataError) as info:
        list(it)
    assert info.value.row == 201 and "malformed JSON" in str(info.value)


def test_json_array_error_early_in_big_file_is_found_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "early.json"
    rest = ",\n".join(json.dumps({"text": "y" * 100}) for _ in range(200))
    p.write_text('[{"text": "ok"},\n{"text": "no closing quote, 1}\n,{"text" 2},\n' + rest + "]")
    opened: list[_CountingText] = []
    real_open = files._open_data
    monkeypatch.setattr(files, "_open_data", lambda stack, path, gz: opened.append(
        _CountingText(real_open(stack, path, gz))) or opened[0])
    monkeypatch.setattr(files, "_CHUNK", 256)
    with pytest.raises(DataError) as info:
        read(p, "text")
    assert info.value.row == 2 and "line 2" in str(info.value)
    assert opened[0].read_chars < p.stat().st_size // 2


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 64])
def test_json_array_parser_matches_json_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    rows = [{"text": "a \"quoted\" \\ line\nnext", "n": 12345678901234567890, "f": -1.5e-7, "b": [True, False, None]},
            {"text": "ünïcødé \u2028 \ud83d\ude00", "nested": {"k": [1, 2.0, {"z": "w"}]}},
            {"text": "   "}]
    p = tmp_path / "rows.json"
    scalars = ["-1.25e-5", "2E+10", "3.0"]  # numbers are not self-delimiting: they may straddle chunks
    p.write_text(" \n[ " + " ,\n ".join([json.dumps(r) for r in rows] + scalars) + " ]\n\n", encoding="utf-8")
    monkeypatch.setattr(files, "_CHUNK", chunk)
    got = [row for _, row in files.iter_rows(p)]
    assert got == json.loads(p.read_text(), parse_int=str, parse_float=str)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_swift_style_preference_rows_split_the_chosen_answer_off_the_messages(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                       {"role": "assistant", "content": "hello!"}],
                                          "rejected_response": "go away"}])
    (rec,) = read_records(path, "preference")
    assert rec["prompt"] == [{"role": "user", "content": "hi"}]
    assert rec["chosen"] == [{"role": "assistant", "content": "hello!"}]
    assert rec["rejected"] == [{"role": "assistant", "content": "go away"}]
    bad = _jsonl(tmp_path / "b.jsonl", [{"messages": [{"role": "user", "content": "hi"}], "rejected_response": "x"}])
    with pytest.raises(DataError, match="ending with the chosen assistant answer"):
        list(read_records(bad, "preference"))


def test_auto_format_is_told_from_the_first_row(tmp_path: Path) -> None:
    from unified_ft.data import detect_format

    assert detect_format(_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "input": "", "output": "b"}])) == "alpaca"
    assert detect_format(_jsonl(tmp_path / "m.jsonl", [{"messages": [], "rejected_response": "x"}])) == "preference"
    with pytest.raises(DataError, match="match no known format"):
        detect_format(_jsonl(tmp_path / "q.jsonl", [{"query": "a", "response": "b"}]))


def test_samples_draw_a_seeded_subset_or_repeat_the_data(tmp_path: Path) -> None:
    from unified_ft.data.mixing import sample_records

    src = _jsonl(tmp_path / "s.jsonl", [{"text": str(i)} for i in range(5)])

    def texts(count: int, seed: int) -> list[str]:
        return [r["text"] for r in sample_records(lambda: read_records(src, "text"), count, seed)]

    few = texts(3, 7)
    assert few == texts(3, 7) and len(set(few)) == 3 and few == sorted(few)  # a seeded subset, in file order
    many = texts(12, 7)
    assert len(many) == 12 and sorted(set(many)) == ["0", "1", "2", "3", "4"] and many[:5] == ["0", "1", "2", "3", "4"]


def test_unpaired_kto_rows_from_messages_or_prompt_completion(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}]
    path = _jsonl(tmp_path / "k.jsonl", [{"messages": chat, "label": False},
                                         {"prompt": "hi", "completion": "hey", "label": True}])
    first, second = read_records(path, "unpaired")
    assert first == {"prompt": chat[:1], "completion": chat[1:], "label": False}
    assert second == {"prompt": chat[:1], "completion": [{"role": "assistant", "content": "hey"}], "label": True}
    bad = _jsonl(tmp_path / "b.jsonl", [{"prompt": "hi", "completion": "hey", "label": "maybe"}])
    with pytest.raises(DataError, match="label must be true or false"):
        list(read_records(bad, "unpaired"))
