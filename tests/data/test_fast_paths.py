"""The data path's quick routes give exactly what the full routes give (they exist only for speed)."""

from __future__ import annotations

import json
import random

import pytest

from unified_ft.data import mixing, read_records, readers
from unified_ft.data.mixing import dump_record, mix_datasets
from unified_ft.errors import DataError
from unified_ft.parquet import _check_value, _plain_check

ALPACA_ROWS = [
    {"instruction": "a", "input": "", "output": "b"},
    {"instruction": "a", "input": "ctx", "output": "b"},
    {"instruction": "a", "output": "b"},
    {"instruction": "a", "input": None, "output": "b"},
    {"instruction": "", "input": "only input", "output": "b"},
    {"instruction": "a", "input": 5, "output": "b"},  # a JSON number: its literal text
    {"instruction": 12.50, "output": "1e3"},
    {"instruction": "a", "output": 7},
    {"instruction": "a", "output": "b", "system": "be brief"},
    {"instruction": "a", "output": "b", "system": "  "},
    {"instruction": "a", "output": "b", "system": None, "history": None},
    {"instruction": "a", "output": "b", "history": [["u", "v"]]},
    {"instruction": "a", "output": "b", "history": []},
    {"instruction": "é ☃ \u2028", "output": "ü\n", "extra": "ignored"},
]


def _records(path, columns=None, full=False, monkeypatch=None):
    if full:
        monkeypatch.setattr(readers, "_plain_alpaca", lambda row: None)
    try:
        return list(read_records(path, "alpaca", columns))
    finally:
        if full:
            monkeypatch.undo()


@pytest.mark.parametrize("columns", [None, {"output": "answer", "instruction": "question"}])
def test_plain_alpaca_rows_read_as_the_full_path_reads_them(tmp_path, monkeypatch, columns):
    rename = {v: k for k, v in (columns or {}).items()}
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({next((m for m, c in rename.items() if c == k), k): v for k, v in row.items()})
             for row in ALPACA_ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    quick = _records(path, columns)
    assert quick == _records(path, columns, full=True, monkeypatch=monkeypatch)
    assert quick[1]["messages"][0]["content"] == "a\nctx"
    assert quick[5]["messages"][0]["content"] == "a\n5"
    taken = []
    monkeypatch.setattr(readers, "_plain_alpaca", lambda row, real=readers._plain_alpaca: taken.append(real(row))
                        or taken[-1])
    assert _records(path, columns) == quick
    assert sum(r is not None for r in taken) == 7  # the plain rows went the quick way, the others the full way


@pytest.mark.parametrize("row", [{"instruction": "a", "output": "   "}, {"instruction": "a", "output": ["x"]},
                                 {"output": "b"}, {"instruction": None, "output": "b"}])
def test_rows_the_quick_path_cannot_take_still_get_the_full_message(tmp_path, row):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        list(read_records(path, "alpaca"))
    assert "row 1" in str(err.value)


def test_the_shared_encoder_writes_what_json_dumps_writes():
    for record in [{"messages": [{"role": "user", "content": "é \u2028 \" \\ \n\t"}]}, {"a": [1, 2.5, None, True]},
                   {"text": "\x00\x1f"}, {}]:
        assert dump_record(record) == (json.dumps(record, ensure_ascii=False) + "\n").encode()


def test_the_mix_copies_each_spooled_line_whole_in_the_shuffled_order(tmp_path):
    rng = random.Random(3)
    sources = [[{"text": "x" * rng.randint(0, 300) + str(i)} for i in range(n)] for n in (50, 0, 17)]
    sources = [s for s in sources if s] + [[{"text": "last"}]]
    mixed = mix_datasets([(s, w) for s, w in zip(sources, (1.0, 2.5, 0.5), strict=False)], 9, tmp_path)
    lines = mixed.path.read_bytes().splitlines(keepends=True)
    assert len(lines) == mixed.rows and all(line.endswith(b"\n") for line in lines)
    every = {dump_record(r) for s in sources for r in s}
    assert set(lines) <= every
    again = mix_datasets([(s, w) for s, w in zip(sources, (1.0, 2.5, 0.5), strict=False)], 9, tmp_path / "again")
    assert again.path.read_bytes() == mixed.path.read_bytes()


def test_an_empty_mix_writes_an_empty_file(tmp_path):
    codes = mixing.array("q")
    spool = tmp_path / "spool.jsonl"
    spool.write_bytes(b"")
    mixing._write_lines(spool, [mixing.array("q")], codes, tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == b""


SCHEMA = {"messages": [{"role": "string", "content": "string"}], "kto_tag": "bool", "text": "string"}
VALUES = [None, "s", True, 1, 1.5, [], ["s"], [None], [{"role": "u"}], [{"role": 1}], {"role": "u"}, ("s",),
          [("role", "u")], [{"role": "u", "content": None, "extra": 1}], [[{"role": "u"}]]]


@pytest.mark.parametrize("kind", list(SCHEMA.values()))
def test_the_quick_parquet_check_accepts_only_what_the_full_check_accepts(kind):
    fits = _plain_check(kind)
    for value in VALUES:
        if fits(value):
            _check_value(kind, value, "col", 0)  # must not raise


def test_one_pass_parquet_names_an_unknown_column_before_a_bad_value_and_writes_nothing(tmp_path):
    from unified_ft.parquet import write_present_columns

    rows = [{"text": 5}, {"text": "ok", "surprise": "x"}]
    with pytest.raises(ValueError, match="no Parquet type for column"):
        write_present_columns(tmp_path / "a.parquet", lambda: iter(rows), {"text": "string"})
    with pytest.raises(ValueError, match="column text, row 1: expected text"):
        write_present_columns(tmp_path / "b.parquet", lambda: iter([{"text": "ok"}, {"text": 5}]), {"text": "string"})
    assert not list(tmp_path.iterdir())


def test_one_pass_parquet_keeps_rows_and_only_the_present_columns(tmp_path):
    import pyarrow.parquet as pq

    from unified_ft.parquet import write_present_columns

    calls = []

    def make_rows():
        calls.append(1)
        return ({"text": f"row {i}", **({"flag": True} if i == 3 else {})} for i in range(120_000))

    path = write_present_columns(tmp_path / "c.parquet", make_rows, {"messages": [{"role": "string"}],
                                                                     "text": "string", "flag": "bool"})
    table = pq.read_table(path)
    assert calls == [1] and table.column_names == ["text", "flag"] and table.num_rows == 120_000
    assert table.column("text")[119_999].as_py() == "row 119999" and table.column("flag")[3].as_py() is True
    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # 50,000 rows a group, as before
