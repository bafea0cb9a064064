"""Parquet files with fixed column types, so frameworks read uft's data back as exactly the text written.

Frameworks that load JSON through Hugging Face `datasets` let pyarrow guess column types, and a column
whose every value is an ISO date ("2024-01-01") comes back as timestamps: the text trained on is no longer
the user's text. A Parquet file carries its own schema, so a string stays a string in every reader.
pyarrow is imported only when a file is written (translators run it; `import unified_ft` does not).

Column types are written in a small notation, close to the records they describe:

* ``"string"`` (UTF-8 text) and ``"bool"``,
* ``{"field": type, ...}`` for a struct, ``[type]`` for a list.

Every column, struct field and list element is nullable; a key missing from a row is null. Rows are
written in row groups of ``ROW_GROUP_ROWS``, so memory stays bounded.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

ROW_GROUP_ROWS = 50_000
#: The largest row group (in JSON bytes) parsed as one block by pyarrow's JSON reader (its block size is 32-bit).
MAX_JSON_BLOCK = (1 << 31) - 2

Schema = dict[str, Any]


def write_parquet(path: Path, rows: Iterable[dict[str, Any]], schema: Schema,
                  row_group_rows: int = ROW_GROUP_ROWS) -> Path:
    """Write `rows` (dicts) to `path` with the column types in `schema` (column name -> type); returns path.

    A value that does not fit its type raises ValueError naming the column and the row's index.
    """
    arrow_schema = _arrow_schema(_checked(schema))
    checks = _value_checks(schema)
    groups = (_group_json(chunk, checks, first) for chunk, first in _chunks(rows, row_group_rows))
    return _write_groups(path, arrow_schema, groups)


def write_present_columns(path: Path, make_rows: Callable[[], Iterable[dict[str, Any]]], types: Schema) -> Path:
    """Write only the columns of `types` that occur in some row, in `types` order; a column not in `types`
    raises ValueError (before any value error). One pass over `make_rows()`: each row group is kept as JSON
    lines in a temporary file until the columns are known, so rows are streamed, never all held."""
    present: set[str] = set()
    problem: ValueError | None = None
    checks = _value_checks({name: kind for name, kind in types.items() if _valid_kind(kind)})
    with tempfile.TemporaryFile() as spool:
        sizes = []
        for chunk, first in _chunks(make_rows(), ROW_GROUP_ROWS):
            for row in chunk:
                present.update(row)
            try:
                text = _group_json(chunk, checks if problem is None else [], first)
            except ValueError as exc:  # said after the unknown columns, as a second pass used to
                problem = exc
                continue
            spool.write(text)
            sizes.append(len(text))
        unknown = sorted(present - set(types))
        if unknown:
            raise ValueError(f"no Parquet type for column(s) {', '.join(unknown)}")
        schema = _checked({name: kind for name, kind in types.items() if name in present})
        if problem is not None:
            raise problem
        spool.seek(0)
        return _write_groups(path, _arrow_schema(schema), (spool.read(size) for size in sizes))


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Row groups of `size` rows, each with the index of its first row."""
    iterator, first = iter(rows), 0
    while chunk := list(islice(iterator, size)):
        yield chunk, first
        first += len(chunk)


def _value_checks(schema: Schema) -> list[tuple[str, Any, Callable[[Any], bool]]]:
    return [(name, kind, _plain_check(kind)) for name, kind in schema.items()]


def _group_json(chunk: list[dict[str, Any]], checks: list[tuple[str, Any, Callable[[Any], bool]]],
                first: int) -> bytes:
    """A row group's rows, each value checked against its column's type, as JSON lines.

    A row whose every key is a checked column and whose every value passed its quick check holds only text,
    true/false, null, lists and objects (no number, no key the schema lacks): orjson writes it, and pyarrow
    parses that line to what it parses json's line to. Any other row is written by json, as it always was."""
    fast, slow = _group_writers()
    columns = {name for name, _, _ in checks}
    plain = []
    for index, row in enumerate(chunk, first):  # every row checked before any is written, as before
        quick = row.keys() <= columns
        for name, kind, fits in checks:
            value = row.get(name)
            if not fits(value):
                quick = False
                _check_value(kind, value, name, index)
        plain.append(quick)
    text = bytearray()  # appended one by one: orjson's lines, held all at once to be joined, cost 90 MB more
    for row, quick in zip(chunk, plain, strict=True):
        text += fast(row) if quick else slow(row)
    return bytes(text)


@cache
def _group_writers() -> tuple[Callable[[dict[str, Any]], bytes], Callable[[dict[str, Any]], bytes]]:
    """(orjson's line where there is orjson, else json's; json's line): rows for pyarrow's reader."""
    from unified_ft.data.mixing import dump_record

    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a core dependency
        return dump_record, dump_record
    dumps, refused, newline = orjson.dumps, orjson.JSONEncodeError, orjson.OPT_APPEND_NEWLINE

    def fast(row: dict[str, Any]) -> bytes:
        try:
            return dumps(row, option=newline)
        except refused:  # a lone surrogate: json's line raises what it always raised
            return dump_record(row)
    return fast, dump_record


def _write_groups(path: Path, arrow_schema: Any, groups: Iterable[bytes]) -> Path:
    """One Parquet row group per JSON-lines text, each parsed by pyarrow's own JSON reader into `arrow_schema`:
    the same table as `Table.from_pylist` about three times faster, without the pandas import (0.3 s) that
    pyarrow's conversion of Python objects makes. A group too large for one parse block is converted from
    its rows instead."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    options = pj.ParseOptions(explicit_schema=arrow_schema, unexpected_field_behavior="ignore")
    with pq.ParquetWriter(str(path), arrow_schema) as writer:
        for text in groups:
            if len(text) >= MAX_JSON_BLOCK:
                table = pa.Table.from_pylist([json.loads(line) for line in text.splitlines()], schema=arrow_schema)
            else:
                block = pj.ReadOptions(block_size=max(len(text) + 1, 1 << 16))
                table = pj.read_json(pa.BufferReader(text), read_options=block, parse_options=options).combine_chunks()
            writer.write_table(table)
    return path


def _arrow_schema(schema: Schema) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(name, _arrow_type(kind)) for name, kind in schema.items()])


def _valid_kind(kind: Any) -> bool:
    try:
        _arrow_type(kind)
    except ValueError:
        return False
    return True


def _checked(schema: Schema) -> Schema:
    if not schema:
        raise ValueError("a Parquet schema needs at least one column")
    for kind in schema.values():
        _arrow_type(kind)
    return schema


def _arrow_type(kind: Any) -> Any:
    import pyarrow as pa

    if kind == "string":
        return pa.string()
    if kind == "bool":
        return pa.bool_()
    if isinstance(kind, list) and len(kind) == 1:
        return pa.list_(pa.field("element", _arrow_type(kind[0])))
    if isinstance(kind, dict) and kind:
        return pa.struct([pa.field(name, _arrow_type(sub)) for name, sub in kind.items()])
    raise ValueError(f"unsupported Parquet column type {kind!r}")


def _plain_check(kind: Any) -> Callable[[Any], bool]:
    """A test, built once per column, that a value fits `kind` with exact built-in types (what parsed JSON
    holds): the quick answer for almost every value. False sends the value to `_check_value`, which accepts
    it or names what is wrong, so the quick test only ever saves time. True also says the value holds no
    number and no object key outside `kind`, which lets orjson write its row (see `_group_json`)."""
    if kind in ("string", "bool"):
        exact = str if kind == "string" else bool
        return lambda value: value is None or type(value) is exact
    if isinstance(kind, list):
        item_fits = _plain_check(kind[0])

        def list_fits(value: Any) -> bool:
            if value is None:
                return True
            if type(value) is not list:
                return False
            return all(map(item_fits, value))
        return list_fits
    texts = tuple(name for name, sub in kind.items() if sub == "string")
    others = tuple((name, _plain_check(sub)) for name, sub in kind.items() if sub != "string")
    fields = kind.keys()

    def struct_fits(value: Any) -> bool:
        if value is None:
            return True
        if type(value) is not dict or not value.keys() <= fields:  # an unknown key: the full check decides
            return False
        for name in texts:
            text = value.get(name)
            if text is not None and type(text) is not str:
                return False
        return all(fits(value.get(name)) for name, fits in others)
    return struct_fits


def _check_value(kind: Any, value: Any, where: str, row: int) -> None:
    """Refuse a value pyarrow would convert (a number where text belongs) or reject without saying where."""
    if value is None:
        return
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise ValueError(f"column {where}, row {row}: expected a list, got {type(value).__name__}")
        for item in value:
            _check_value(kind[0], item, f"{where}.element", row)
    elif isinstance(kind, dict):
        if not isinstance(value, dict):
            raise ValueError(f"column {where}, row {row}: expected an object, got {type(value).__name__}")
        for name, sub in kind.items():
            _check_value(sub, value.get(name), f"{where}.{name}", row)
    elif (kind == "bool") != isinstance(value, bool) or (kind == "string" and not isinstance(value, str)):
        expected = "true/false" if kind == "bool" else "text"
        raise ValueError(f"column {where}, row {row}: expected {expected}, got {type(value).__name__}")
