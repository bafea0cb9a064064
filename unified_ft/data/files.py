"""Stream the rows of a dataset file, whatever its type, without changing any value.

File types, by extension: ``.json`` (a JSON array of row objects, parsed incrementally; a ``.json``
file holding one object per line is read as JSON lines), ``.jsonl``/``.ndjson``, ``.csv`` (UTF-8,
first line is the header), ``.parquet`` (needs pyarrow), and gzip-compressed ``.json.gz``/``.jsonl.gz``.
JSON numbers are kept as their literal text (``NumberText``) so that text stays text. Row numbers are
1-based: the element of a JSON array, the line of a JSON-lines file, the data row of a CSV file (the
header not counted), the row of a Parquet file.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from unified_ft.errors import DataError

FILE_TYPES = (".json", ".jsonl", ".ndjson", ".csv", ".parquet", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_CHUNK = 1 << 16  # characters read per step when streaming a JSON array
_WS = re.compile(r"[ \t\n\r]*")


class NumberText(str):
    """The literal text of a JSON number: text fields keep it verbatim, type errors can still say "number"."""

    __slots__ = ()


DECODER = json.JSONDecoder(parse_int=NumberText, parse_float=NumberText, parse_constant=NumberText)


def iter_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Stream ``(row number, raw row)`` from a file of any supported type, without converting values."""
    path = Path(path)
    suffix, gz = file_type(path)
    if not path.exists():
        raise DataError(path, "file not found",
                        hint="check the path; a relative path is resolved against the spec file's directory")
    if path.is_dir():
        raise DataError(path, "is a directory, not a data file", hint=f"point at one file ({', '.join(FILE_TYPES)})")
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".parquet":
        return _parquet_rows(path)
    if suffix == ".json":
        return _json_rows(path, gz)
    return _jsonl_rows(path, gz)



def file_type(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    for suffix in (".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
        if name.endswith(suffix) and not (gz and suffix in (".csv", ".parquet")):
            return (".jsonl" if suffix == ".ndjson" else suffix), gz
    raise DataError(path, f"unknown file type '{''.join(path.suffixes) or path.name}'",
                    hint=f"use one of {', '.join(FILE_TYPES)}")


def _open_text(path: Path, gz: bool) -> IO[str]:
    if gz:
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def _decode_error(path: Path, exc: Exception, row: int | None) -> DataError:
    if isinstance(exc, UnicodeDecodeError):
        return DataError(path, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", row=row,
                         hint="re-save the file as UTF-8")
    return DataError(path, f"cannot read the file: {exc}", row=row)


def _jsonl_rows(path: Path, gz: bool, hint: str = "") -> Iterator[tuple[int, Any]]:
    """JSON lines: row N is line N; blank lines are skipped. Read as bytes so only '\\n' ends a line."""
    opener = gzip.open if gz else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.decode("utf-8")
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                try:
                    obj = DECODER.decode(line)
                except json.JSONDecodeError as exc:
                    raise DataError(path, f"malformed JSON (column {exc.colno}): {exc.msg}", row=lineno,
                                    hint=hint or "each line must hold one complete JSON object") from None
                yield lineno, obj
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _decode_error(path, exc, lineno + 1) from None


def _json_rows(path: Path, gz: bool) -> Iterator[tuple[int, Any]]:
    """A JSON array, parsed one element at a time; a file starting with '{' is taken as JSON lines."""
    try:
        with _open_text(path, gz) as f:
            stream = _JsonArrayStream(f, path)
            if stream.peek() == "{":
                lines = True
            else:
                lines = False
                yield from stream
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _decode_error(path, exc, None) from None
    if lines:
        yield from _jsonl_rows(path, gz, hint="a .json file must hold a JSON array of row objects, "
                                              "or one object per line (JSON lines)")


class _JsonArrayStream:
    """Incremental parser for ``[obj, obj, ...]``: keeps one element plus one chunk in memory."""

    def __init__(self, f: IO[str], path: Path) -> None:
        self.f, self.path = f, path
        self.buf, self.pos, self.eof = "", 0, False
        self.line = 1  # line number of buf[0], for error messages

    def _more(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(max(_CHUNK, at_least))
        if not chunk:
            self.eof = True
            return False
        if self.pos:
            self.line += self.buf.count("\n", 0, self.pos)
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk
        return True

    def _line_at(self, pos: int) -> int:
        return self.line + self.buf.count("\n", 0, pos)

    def peek(self) -> str:
        """Skip whitespace; return the next character, or '' at end of file."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _decode(self, row: int) -> Any:
        while True:
            try:
                obj, end = DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # An error near the end of the buffer (or in a string running past it) may just mean
                # the element continues in the next chunk; read more (doubling) and try again.
                if not self.eof and ("Unterminated string" in exc.msg or exc.pos >= len(self.buf) - 32):
                    self._more(len(self.buf) - self.pos)
                    continue
                raise DataError(self.path, f"malformed JSON (line {self._line_at(exc.pos)}): {exc.msg}",
                                row=row) from None
            if isinstance(obj, NumberText) and end > len(self.buf) - 32 and self._more(len(self.buf) - self.pos):
                continue  # a number is not self-delimiting: "1" may be the start of "1.5e3" in the next chunk
            self.pos = end
            return obj

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        c = self.peek()
        if c == "":
            return  # empty file: no rows
        if c != "[":
            raise DataError(self.path, f"malformed JSON (line {self._line_at(self.pos)}): expected '[' to start "
                                       f"an array of rows, found {c!r}",
                            hint="a .json file must hold a JSON array of row objects, or one object per line")
        self.pos += 1
        row = 0
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                if self.peek() == "":
                    raise DataError(self.path, "the JSON array is cut off (the file ends inside it)", row=row + 1)
                obj = self._decode(row + 1)
                row += 1
                yield row, obj
                c = self.peek()
                if c == ",":
                    self.pos += 1
                elif c == "]":
                    self.pos += 1
                    break
                elif c == "":
                    raise DataError(self.path, f"the JSON array is cut off (the file ends after row {row})", row=row)
                else:
                    raise DataError(self.path, f"malformed JSON (line {self._line_at(self.pos)}): expected ',' or "
                                               f"']' after this row, found {c!r}", row=row)
        if self.peek() != "":
            raise DataError(self.path, f"malformed JSON (line {self._line_at(self.pos)}): extra data after the "
                                       "closing ']' of the array", row=row + 1)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV with a header line; every cell stays text. Row N is the Nth data row (header not counted)."""
    csv.field_size_limit(2**31 - 1)  # long documents are normal in training data
    row = 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise DataError(path, f"the header repeats column name(s) {', '.join(map(repr, dupes))}",
                                hint="give each column a unique name")
            for cells in reader:
                if not cells:
                    continue  # blank line
                row += 1
                if len(cells) > len(header):
                    raise DataError(path, f"the row has {len(cells)} cells but the header has {len(header)} columns",
                                    row=row, hint="quote cells that contain commas or line breaks")
                yield row, dict(zip(header, cells))  # cells missing at the end are absent
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}", row=row + 1) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise _decode_error(path, exc, row + 1) from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parquet, one record batch at a time (pyarrow imported only here: it is an optional dependency)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(path, "reading Parquet files needs pyarrow, which is not installed",
                        hint="pip install pyarrow") from None
    row = 0
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"cannot read the Parquet file: {exc}", row=row + 1 if row else None) from None
