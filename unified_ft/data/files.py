"""Stream the rows of a dataset file, whatever its type, without changing any value.

File types, by extension: ``.json`` (a JSON array of row objects, parsed incrementally; a ``.json``
file holding one object per line is read as JSON lines), ``.jsonl``/``.ndjson``, ``.csv`` (UTF-8,
first line is the header), ``.parquet`` (needs pyarrow), and gzip-compressed ``.json.gz``/``.jsonl.gz``.
The name the user gave decides (a symbolic link keeps its own name); a link whose name has no known
extension is typed by its target's name; a file whose names have no extension at all (a blob named
by its hash, as in the Hugging Face cache or DVC) is typed by its content.
JSON numbers are kept as their literal text (``NumberText``) so that text stays text. Row numbers are
1-based: the element of a JSON array, the line of a JSON-lines file, the data row of a CSV file (the
header not counted), the row of a Parquet file.

Only regular files are read: a FIFO, socket or device (``/dev/zero``, ``/dev/stdin``) is refused up
front, since reading one blocks or never ends.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import json
import os
import re
import stat
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from unified_ft.errors import DataError
from unified_ft.fastjson import make_loads
from unified_ft.userfile import shown

FILE_TYPES = (".json", ".jsonl", ".ndjson", ".csv", ".parquet", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_CHUNK = 1 << 16  # bytes read per step when streaming a JSON array
_SNIFF = 1 << 16  # bytes looked at to tell an extension-less file's type
_WS = re.compile(r"[ \t\n\r]*")
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")  # where a bare '\r' ends a line (old Mac line endings)
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
_COLUMN_NAMES = ("text", "messages", "conversations", "instruction", "output", "prompt", "chosen", "rejected")


class NumberText(str):
    """The literal text of a JSON number: text fields keep it verbatim, type errors can still say "number"."""

    __slots__ = ()


class ConstantText(NumberText):
    """``NaN``, ``Infinity`` or ``-Infinity`` written bare: not valid JSON, and not text either (quote it)."""

    __slots__ = ()


DECODER = json.JSONDecoder(parse_int=NumberText, parse_float=NumberText, parse_constant=ConstantText)
#: One JSON line by DECODER's rules, through orjson when that gives the same (a row without numbers).
_DECODE_LINE = make_loads(DECODER.decode)


# ----------------------------------------------------------------------------------------------
# Paths: what the user named must be one readable regular file


def _path_error(path: Path, exc: OSError | ValueError) -> DataError:
    """A clear message for a path that cannot be opened, by the reason the system gave."""
    where = shown(path)
    if isinstance(exc, ValueError):  # os functions refuse an embedded NUL with ValueError
        return DataError(where, "the path contains a NUL character (\\0)", hint="remove the NUL from the path")
    code = exc.errno
    if code == errno.ENOENT and os.path.islink(path):
        return DataError(where, f"is a symbolic link to {shown(os.readlink(path))}, which does not exist",
                         hint="fix the link or point at the file itself")
    messages = {
        errno.ENOENT: ("file not found", "check the path; a relative path is resolved against the spec file's "
                                         "directory"),
        errno.ELOOP: ("the path goes round a loop of symbolic links",
                      "fix the links (`ls -l` shows where each one points) or point at the file itself"),
        errno.ENAMETOOLONG: ("the path (or one of its names) is too long for the file system",
                             "shorten the path: move or rename the file"),
        errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the folders in the path"),
        errno.EACCES: ("permission denied", "make the file readable (chmod) or copy it somewhere readable"),
        errno.EPERM: ("permission denied", "make the file readable (chmod) or copy it somewhere readable"),
        errno.ENXIO: ("is not a file that can be read (a socket?)",
                      f"point at one data file ({', '.join(FILE_TYPES)})"),
    }
    message, hint = messages.get(code, (f"cannot open the file: {exc.strerror or exc}", "check the path"))
    return DataError(where, message, hint=hint)


def _not_regular(path: Path, mode: int) -> DataError:
    if stat.S_ISDIR(mode):
        return DataError(shown(path), "is a directory, not a data file",
                         hint=f"point at one file in it ({', '.join(FILE_TYPES)})")
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return DataError(shown(path), f"is {kind}, not a data file: uft reads datasets twice or more, and a stream "
                                  "can be read only once (or never ends)",
                     hint="write the data to a file first and point at that file")


def check_file(path: str | Path) -> None:
    """Fail with a clear message unless ``path`` names an existing regular file (symbolic links followed)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        raise _path_error(path, exc) from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)


def open_regular(path: str | Path) -> BinaryIO:
    """Open a data file for reading in binary, refusing anything but a regular file without blocking on it."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        raise _path_error(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# ----------------------------------------------------------------------------------------------
# File types: by name, by the link's target, by content


def _type_from_name(name: str) -> tuple[str, bool] | None:
    name = name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    for suffix in (".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
        if name.endswith(suffix) and not (gz and suffix in (".csv", ".parquet")):
            return (".jsonl" if suffix == ".ndjson" else suffix), gz
    return None


def file_type(path: str | Path) -> tuple[str, bool]:
    """``(".json" | ".jsonl" | ".csv" | ".parquet", gzipped)`` from the name the user gave; when that name
    has no known extension, from a symbolic link's target; when neither name has any extension (a blob named
    by its hash), from the content (which needs the file). Another extension (``.txt``, ``.xlsx``) is refused:
    it says the file is something else."""
    path = Path(path)
    names = [path.name]
    if os.path.islink(path):
        names.append(os.path.basename(os.path.realpath(path)))
    for name in names:
        found = _type_from_name(name)
        if found is not None:
            return found
    suffix = next((Path(name).suffix for name in names if Path(name).suffix), "")
    if suffix:
        raise DataError(shown(path), f"unknown file type '{suffix}'", hint=f"use one of {', '.join(FILE_TYPES)}")
    return _type_from_content(path)


def _type_from_content(path: Path) -> tuple[str, bool]:
    """Sniff an extension-less file: '[' a JSON array, '{' JSON lines, PAR1 Parquet, gzip of the JSON ones,
    a header line of column names CSV; anything else is refused rather than guessed."""
    refused = DataError(shown(path), "unknown file type: the name has no extension and the content is not "
                                     "recognisable as JSON, JSON lines, CSV or Parquet",
                        hint=f"name the file (or a link to it) with one of {', '.join(FILE_TYPES)}")
    with open_regular(path) as f:
        head = f.read(_SNIFF)
        gz = head[:2] == b"\x1f\x8b"
        if gz:
            f.seek(0)
            try:
                with gzip.GzipFile(fileobj=f) as inner:
                    head = inner.read(_SNIFF)
            except _GZIP_ERRORS as exc:
                raise _gzip_error(path, exc, None) from None
    if not gz and head.startswith(b"PAR1"):
        return ".parquet", False
    text = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if not text:
        raise DataError(shown(path), "the file is empty", hint="check this is the file you meant")
    if text[:1] == b"[":
        return ".json", gz
    if text[:1] == b"{":
        return ".jsonl", gz
    if not gz and _looks_like_csv(head):
        return ".csv", False
    raise refused


def _looks_like_csv(head: bytes) -> bool:
    """Clearly CSV: UTF-8 text whose first line is a header of distinct column names (two or more, or one
    of the usual single names such as ``text``)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[:exc.start].decode("utf-8")  # a character cut at the end of the sniffed bytes
    text = text.removeprefix("\ufeff")
    if "\0" in text or not text.strip():
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        header = next(csv.reader(lines[:1], strict=True), [])
    except csv.Error:
        return False
    plain = all(re.fullmatch(r"\w[\w .\-]{0,62}\w|\w", h) for h in header) and len(set(header)) == len(header)
    if not plain or (len(header) < 2 and header[0].lower() not in _COLUMN_NAMES):
        return False
    return len(lines) > 1  # a header and at least one row: prose with a comma on its first line is not CSV


# ----------------------------------------------------------------------------------------------
# Rows


def iter_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Stream ``(row number, raw row)`` from a file of any supported type, without converting values.

    The path is checked (exists, regular file, known or recognisable type) when this is called, not
    when the first row is asked for.
    """
    path = Path(path)
    check_file(path)
    suffix, gz = file_type(path)
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".parquet":
        return _parquet_rows(path)
    if suffix == ".json":
        return _json_rows(path, gz)
    return _jsonl_rows(path, gz)


def _gzip_error(path: Path, exc: BaseException, row: int | None) -> DataError:
    if isinstance(exc, EOFError):
        what = "the gzip file is cut off (it ends before its end marker)"
    elif isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc):
        what = "the file is not gzip data, though its name says so"
    else:
        what = f"the gzip data is corrupt ({exc})"
    reached = f"; reading stopped in row {row}" if row else ""
    return DataError(shown(path), what + reached, row=row,
                     hint="test it with `gzip -t`; download or compress it again")


def _read_error(path: Path, exc: BaseException, row: int | None) -> DataError:
    if isinstance(exc, _GZIP_ERRORS):
        return _gzip_error(path, exc, row)
    if isinstance(exc, RecursionError):
        return DataError(shown(path), "the JSON nests lists or objects too deeply to read", row=row,
                         hint="a training row holds at most a few levels of nesting; fix the row")
    return DataError(shown(path), f"cannot read the file: {getattr(exc, 'strerror', None) or exc}", row=row)


def _encoding_error(path: Path, exc: UnicodeDecodeError, line: int, row: int | None,
                    column: int | None = None) -> DataError:
    at = f"line {line}" + (f", byte {column} of the line" if column else "")
    return DataError(shown(path), f"the file is not UTF-8 text ({at}: {exc.reason})", row=row,
                     hint="re-save the file as UTF-8")


def _open_data(stack: ExitStack, path: Path, gz: bool) -> BinaryIO:
    raw = stack.enter_context(open_regular(path))
    return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if gz else raw  # type: ignore[return-value]


def _jsonl_rows(path: Path, gz: bool, hint: str = "") -> Iterator[tuple[int, Any]]:
    """JSON lines: row N is line N; blank lines are skipped. Read as bytes so only '\\n' ends a line."""
    lineno = 0
    try:
        with ExitStack() as stack:
            for lineno, raw in enumerate(_open_data(stack, path, gz), 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _encoding_error(path, exc, lineno, lineno, exc.start + 1) from None
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                if not line.strip():
                    continue
                try:
                    obj = _DECODE_LINE(line)
                except json.JSONDecodeError as exc:
                    raise DataError(shown(path), f"malformed JSON (column {exc.colno}): {exc.msg}", row=lineno,
                                    hint=hint or "each line must hold one complete JSON object") from None
                yield lineno, obj
    except (OSError, RecursionError, *_GZIP_ERRORS) as exc:
        raise _read_error(path, exc, lineno + 1 if not isinstance(exc, RecursionError) else lineno) from None


def _json_rows(path: Path, gz: bool) -> Iterator[tuple[int, Any]]:
    """A JSON array, parsed one element at a time; a file starting with '{' is taken as JSON lines."""
    stream: _JsonArrayStream | None = None
    try:
        with ExitStack() as stack:
            stream = _JsonArrayStream(_open_data(stack, path, gz), path)
            lines = stream.peek() == "{"
            if not lines:
                yield from stream
    except (OSError, RecursionError, *_GZIP_ERRORS) as exc:
        raise _read_error(path, exc, stream.row if stream else None) from None
    if lines:
        yield from _jsonl_rows(path, gz, hint="a .json file must hold a JSON array of row objects, "
                                              "or one object per line (JSON lines)")


class _JsonArrayStream:
    """Incremental parser for ``[obj, obj, ...]``: keeps one element plus one chunk in memory.

    Bytes are decoded as they are read; a byte that is not UTF-8 is reported only when the parser
    reaches it, so the message names the row that holds it, not the row being parsed when it was read.
    """

    def __init__(self, f: IO[bytes], path: Path) -> None:
        self.f, self.path = f, path
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof, self.started = "", 0, False, False
        self.line = 1  # line number of buf[0], for error messages
        self.row: int | None = None  # the row being read, for error messages
        self.bad: tuple[UnicodeDecodeError, int] | None = None  # a decoding error ahead, and its line

    def _decoded(self, raw: bytes) -> str:
        try:
            return self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            good = exc.object[:exc.start].decode("utf-8")
            self.bad = (exc, self._line_at(len(self.buf)) + good.count("\n"))
            self.eof = True
            return good

    def _more(self, at_least: int = 0) -> bool:
        if self.eof:
            if self.bad:
                raise _encoding_error(self.path, self.bad[0], self.bad[1], self.row)
            return False
        chunk = self._decoded(self.f.read(max(_CHUNK, at_least)))
        if not self.started:
            chunk, self.started = chunk.removeprefix("\ufeff"), True
        if not chunk:
            if not self.bad:
                self.eof = True
            return self._more() if self.bad else False
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
                if self.bad:
                    self._more()  # the element runs into bytes that are not UTF-8: say that
                raise DataError(shown(self.path), f"malformed JSON (line {self._line_at(exc.pos)}): {exc.msg}",
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
            raise DataError(shown(self.path), f"malformed JSON (line {self._line_at(self.pos)}): expected '[' to "
                                              f"start an array of rows, found {c!r}",
                            hint="a .json file must hold a JSON array of row objects, or one object per line")
        self.pos += 1
        row = 0
        self.row = 1
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                self.row = row + 1
                if self.peek() == "":
                    raise DataError(shown(self.path), "the JSON array is cut off (the file ends inside it)",
                                    row=row + 1)
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
                    raise DataError(shown(self.path), f"the JSON array is cut off (the file ends after row {row})",
                                    row=row)
                else:
                    raise DataError(shown(self.path), f"malformed JSON (line {self._line_at(self.pos)}): expected "
                                                      f"',' or ']' after this row, found {c!r}", row=row)
        self.row = None
        if self.peek() != "":
            raise DataError(shown(self.path), f"malformed JSON (line {self._line_at(self.pos)}): extra data after "
                                              "the closing ']' of the array", row=row + 1)


@dataclass
class _CsvPlace:
    """Where the CSV reader is: the last physical line read, the data row being read and its first line."""

    line: int = 0
    row: int | None = None
    row_line: int = 0
    row_text: str = ""


def _csv_lines(f: BinaryIO, path: Path, place: _CsvPlace) -> Iterator[str]:
    """Physical lines as text (line endings kept, as csv wants with newline=''), each decoded on its own so an
    encoding error names its line and row."""
    for raw in f:
        for piece in (_LONE_CR.split(raw) if b"\r" in raw else (raw,)):
            if not piece:
                continue
            place.line += 1
            if b"\0" in piece:
                raise DataError(shown(path), f"line {place.line} holds a NUL byte: this is not a text file (binary, "
                                             "or UTF-16?)", row=place.row, hint="re-save the file as UTF-8 CSV")
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _encoding_error(path, exc, place.line, place.row, exc.start + 1) from None
            if place.line == 1:
                text = text.removeprefix("\ufeff")
            if place.row_line == 0:
                place.row_line, place.row_text = place.line, text
            yield text


def _csv_error(path: Path, exc: csv.Error, place: _CsvPlace, header: list[str]) -> DataError:
    where = f"line {place.row_line}" if place.row_line == place.line else f"lines {place.row_line}-{place.line}"
    if "unexpected end of data" in str(exc):
        try:
            opened = len(next(csv.reader([place.row_text]), [])) - 1
        except csv.Error:
            opened = -1
        column = header[opened] if header and 0 <= opened < len(header) else None
        return DataError(shown(path), f"a quoted cell opens on line {place.row_line} and is never closed: the file "
                                      "ends inside the quotes, so every line after it would become part of this cell",
                         row=place.row, field=column,
                         hint='close the quote; a quote inside a quoted cell is written twice ("")')
    if "expected after" in str(exc):
        return DataError(shown(path), f"malformed CSV ({where}): a quoted cell has more text after its closing quote",
                         row=place.row, hint='a quote inside a quoted cell is written twice (""), and a cell '
                                             "holding quotes, commas or line breaks is quoted as a whole")
    return DataError(shown(path), f"malformed CSV ({where}): {exc}", row=place.row)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV with a header line; every cell stays text. Row N is the Nth data row (header not counted).

    Strict quoting: a quote left open at the end of the file is an error naming the row where it opened
    (a lenient reader would swallow every following row into that one cell), as is text after a
    closing quote.
    """
    csv.field_size_limit(2**31 - 1)  # long documents are normal in training data
    row, place, header = 0, _CsvPlace(), []
    try:
        with open_regular(path) as f:
            reader = csv.reader(_csv_lines(f, path, place), strict=True)
            header = next(reader, None)
            if header is None:
                return
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise DataError(shown(path), f"the header repeats column name(s) {', '.join(map(repr, dupes))}",
                                hint="give each column a unique name")
            while True:
                place.row, place.row_line = row + 1, 0
                cells = next(reader, None)
                if cells is None:
                    break
                if not cells:
                    continue  # blank line
                row += 1
                if len(cells) > len(header):
                    raise DataError(shown(path), f"the row (line {place.row_line}) has {len(cells)} cells but the "
                                                 f"header has {len(header)} columns",
                                    row=row, hint="quote cells that contain commas or line breaks")
                yield row, dict(zip(header, cells, strict=False))  # cells missing at the end are absent
    except csv.Error as exc:
        raise _csv_error(path, exc, place, header or []) from None
    except OSError as exc:
        raise _read_error(path, exc, row + 1) from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parquet, one record batch at a time (pyarrow imported only here: it is an optional dependency)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(shown(path), "reading Parquet files needs pyarrow, which is not installed",
                        hint="pip install pyarrow") from None
    row = 0
    try:
        with open_regular(path) as f:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=1024):
                for rec in batch.to_pylist():
                    row += 1
                    yield row, rec
    except (OSError, pa.ArrowException) as exc:
        raise DataError(shown(path), f"cannot read the Parquet file: {exc}", row=row + 1 if row else None) from None
