"""uft's Parquet writer: what pyarrow (and `datasets`) read back is exactly what was written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import unified_ft
from unified_ft.parquet import write_parquet, write_present_columns

pq = pytest.importorskip("pyarrow.parquet")

#: Strings that type-guessing loaders turn into something else (dates, numbers, booleans, nulls).
TRICKY = ["2024-01-01", "2024-01-01T10:00:00", "2024-01-01 10:00:00Z", "007", "1e5", "true", "null", "1.10",
          "NaN", "", "-0", "é 漢字\n\t\"quoted\" \\ \u0000end"]
MESSAGES = [{"role": "string", "content": "string"}]


def test_every_type_round_trips_through_pyarrow_across_row_groups(tmp_path):
    schema = {"messages": MESSAGES, "tools": "string", "label": "bool", "text": "string",
              "nested": [[{"a": "string"}]], "pair": {"role": "string", "content": "string"}}
    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}],
             "tools": t if i % 2 else None, "label": i % 3 == 0, "text": t,
             "nested": [[{"a": t}], [], None, [None, {"a": None}]], "pair": {"role": "assistant", "content": t}}
            for i, t in enumerate(TRICKY)]
    rows += [{"messages": [], "text": None}, {}]  # an empty list, and a row with every column missing
    path = write_parquet(tmp_path / "t.parquet", rows, schema, row_group_rows=3)
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    table = pq.read_table(path)
    assert [str(t) for t in table.schema.types] == [
        "list<element: struct<role: string, content: string>>", "string", "bool", "string",
        "list<element: list<element: struct<a: string>>>", "struct<role: string, content: string>"]
    assert table.to_pylist() == [{name: row.get(name) for name in schema} for row in rows]


def test_datasets_reads_the_strings_as_strings(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}], "text": t}
            for t in TRICKY]
    path = write_parquet(tmp_path / "t.parquet", rows, {"messages": MESSAGES, "text": "string"})
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))
    assert loaded["text"] == TRICKY
    assert [row["messages"][1]["content"] for row in loaded] == TRICKY


def test_only_present_columns_are_written_and_unknown_ones_refused(tmp_path):
    rows = [{"text": "2024-01-01"}, {"text": "007"}]
    types = {"messages": MESSAGES, "text": "string", "label": "bool"}
    path = write_present_columns(tmp_path / "t.parquet", lambda: iter(rows), types)
    assert pq.read_table(path).column_names == ["text"]
    with pytest.raises(ValueError, match="no Parquet type for column.*extra"):
        write_present_columns(tmp_path / "u.parquet", lambda: iter([{"text": "x", "extra": "y"}]), types)


@pytest.mark.parametrize(("row", "where"), [({"text": 7}, "column text, row 1: expected text, got int"),
                                            ({"label": "true"}, "column label, row 1: expected true/false"),
                                            ({"messages": "hi"}, "column messages, row 1: expected a list")])
def test_a_value_of_the_wrong_type_names_column_and_row(tmp_path, row, where):
    schema = {"text": "string", "label": "bool", "messages": MESSAGES}
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        write_parquet(tmp_path / "t.parquet", [{"text": "ok"}, row], schema)


def test_unsupported_types_are_refused(tmp_path):
    for schema in ({}, {"n": "int"}, {"l": []}, {"s": {}}):
        with pytest.raises(ValueError):
            write_parquet(tmp_path / "t.parquet", [{}], schema)


def _runner_support():
    """unified_ft/runner_support.py as the runners import it: a file beside them, with chat_tokens.py."""
    sys.path.insert(0, str(Path(unified_ft.__file__).parent))
    spec = importlib.util.spec_from_file_location("uft_runner_support", Path(unified_ft.__file__).parent /
                                                  "runner_support.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trl_runner_reads_record_files_as_literal_text(tmp_path):
    pytest.importorskip("datasets")
    runner = _runner_support()
    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}]} for t in TRICKY]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2] * 3), encoding="utf-8")  # all dates
    assert runner.load_records(path)[0]["messages"][0]["content"] == "2024-01-01"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # same path, new content
    assert [r["messages"][1]["content"] for r in runner.load_records(path)] == TRICKY
    texts = tmp_path / "text.jsonl"
    texts.write_text("".join(json.dumps({"text": "2024-01-01"}) + "\n" for _ in range(3)), encoding="utf-8")
    assert runner.load_records(texts)["text"] == ["2024-01-01"] * 3
    (tmp_path / "odd.jsonl").write_text(json.dumps({"text": "x", "extra": 1}) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="unknown record field.*extra"):
        runner.load_records(tmp_path / "odd.jsonl")


def test_rows_written_by_orjson_give_the_same_file_as_json(tmp_path, monkeypatch) -> None:
    """Rows the quick checks cover go through orjson; the file is byte-identical to json's, and rows it
    does not cover (a number in a key the schema lacks, NaN) or refuses (a lone surrogate) keep json's way."""
    import math

    from unified_ft import parquet
    from unified_ft.data.mixing import dump_record

    schema = {"messages": [{"role": "string", "content": "string"}], "label": "bool", "text": "string"}
    rows = [{"messages": [{"role": "user", "content": "é ☃ \u2028\x00\"\\"}], "label": True},
            {"text": None, "messages": []}, {"text": "x"},
            {"messages": [{"role": "user", "content": "c", "weight": 1.5}]},  # extra struct key: json's line
            {"text": "t", "score": 2 ** 70}]
    fast_file = parquet.write_parquet(tmp_path / "fast.parquet", rows, schema)
    monkeypatch.setattr(parquet, "_group_writers", lambda: (dump_record, dump_record))
    slow_file = parquet.write_parquet(tmp_path / "slow.parquet", rows, schema)
    assert fast_file.read_bytes() == slow_file.read_bytes()
    monkeypatch.undo()
    written = parquet._group_json([{"text": "t", "score": math.nan}, {"text": "plain"}],
                                  parquet._value_checks(schema), 0)
    assert written == b'{"text": "t", "score": NaN}\n{"text":"plain"}\n'
    with pytest.raises(UnicodeEncodeError):
        parquet._group_json([{"text": "\ud800"}], parquet._value_checks(schema), 0)
