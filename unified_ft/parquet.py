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

from collections.abc import Callable, Iterable
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_schema = pa.schema([pa.field(name, _arrow_type(kind)) for name, kind in _checked(schema).items()])
    iterator, first_row = iter(rows), 0
    with pq.ParquetWriter(str(path), arrow_schema) as writer:
        columns = [(name, kind, _plain_check(kind)) for name, kind in schema.items()]
        while chunk := list(islice(iterator, row_group_rows)):
            for index, row in enumerate(chunk, first_row):
                for name, kind, fits in columns:
                    value = row.get(name)
                    if not fits(value):
                        _check_value(kind, value, name, index)
            writer.write_table(_table(chunk, arrow_schema))
            first_row += len(chunk)
    return path


def _table(rows: list[dict[str, Any]], arrow_schema: Any) -> Any:
    """Checked rows as an Arrow table of `arrow_schema`: parsed from their JSON lines by pyarrow's own reader,
    which gives the same table as `Table.from_pylist` about three times faster, and without the pandas import
    (0.3 s) that pyarrow's conversion of Python objects makes. A chunk too large for one parse block falls
    back to `from_pylist`."""
    import pyarrow as pa
    import pyarrow.json as pj

    from unified_ft.data.mixing import dump_record

    text = b"".join(map(dump_record, rows))
    if len(text) >= MAX_JSON_BLOCK:
        return pa.Table.from_pylist(rows, schema=arrow_schema)
    table = pj.read_json(pa.BufferReader(text), read_options=pj.ReadOptions(block_size=max(len(text) + 1, 1 << 16)),
                         parse_options=pj.ParseOptions(explicit_schema=arrow_schema,
                                                       unexpected_field_behavior="ignore"))
    return table.combine_chunks()


def write_present_columns(path: Path, make_rows: Callable[[], Iterable[dict[str, Any]]], types: Schema) -> Path:
    """Write only the columns of `types` that occur in some row, in `types` order (two passes over
    `make_rows()`, so rows are streamed, never all held); a column not in `types` raises ValueError."""
    present: set[str] = set()
    for row in make_rows():
        present.update(row)
    unknown = sorted(present - set(types))
    if unknown:
        raise ValueError(f"no Parquet type for column(s) {', '.join(unknown)}")
    return write_parquet(path, make_rows(), {name: kind for name, kind in types.items() if name in present})


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
    it or names what is wrong, so the quick test only ever saves time."""
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

    def struct_fits(value: Any) -> bool:
        if value is None:
            return True
        if type(value) is not dict:
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
