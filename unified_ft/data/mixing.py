"""Mix several record streams into one shuffled JSONL file, and split off an eval set.

Both work from files on disk, not lists in memory: the sources are spooled one after another to
one JSONL file while the byte offset of every line is kept (8 bytes a row); the mix is then a
shuffled array of (source, row) codes, read back by seeking. One file is open at a time, whatever
the number of sources. Randomness comes only from ``random.Random`` seeded
with a string derived from ``seed`` (hashed with SHA-512 by ``random``), so results depend on
the seed alone, never on PYTHONHASHSEED.
"""

from __future__ import annotations

import json
import math
import os
import random
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from unified_ft.errors import DataError

RecordSource = Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class MixResult:
    """Where the mix went and how many rows each source gave and contributed."""

    path: Path
    rows: int
    source_rows: tuple[int, ...]
    taken: tuple[int, ...]


def _record_encoder() -> Callable[[Any], str]:
    """`json.dumps(record, ensure_ascii=False)` without its per-call cost (a new encoder, then a new C encoder
    for every row: a fifth of the data step's time): the C encoder that json.dumps builds, built once. Same
    separators, escaping and key order, so the same bytes; records hold no cycles (they come from parsed
    files), so the circular-reference check is left to the recursion limit."""
    encoder = json.JSONEncoder(ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return encoder.encode
    chunks = make(None, encoder.default, json.encoder.encode_basestring, None, encoder.key_separator,
                  encoder.item_separator, False, False, True)
    return lambda record: "".join(chunks(record, 0))


_ENCODE = _record_encoder()


def dump_record(record: dict[str, Any]) -> bytes:
    """One JSONL line: UTF-8, non-ASCII kept as is, key order as built (deterministic)."""
    return (_ENCODE(record) + "\n").encode("utf-8")


def write_records(records: Iterable[dict[str, Any]], path: str | Path, name: str = "dataset") -> array:
    """Write records as JSONL; return the byte offset of each line (its length is the row count)."""
    with open(path, "wb") as out:
        return _append_records(records, out, name)


def _append_records(records: Iterable[dict[str, Any]], out: BinaryIO, name: str) -> array:
    """Append records as JSONL lines to an open file; return the byte offset of each line in that file."""
    offsets = array("q")
    pos = out.tell()
    for i, rec in enumerate(records, 1):
        try:
            line = dump_record(rec)
        except UnicodeEncodeError:
            raise DataError(name, "the text contains an invalid character (a lone UTF-16 surrogate such as "
                                  "\\ud800)", row=i, hint="fix or remove the row") from None
        except (RecursionError, ValueError) as exc:
            raise DataError(name, f"the row cannot be written as JSON ({type(exc).__name__}: {exc})", row=i,
                            hint="fix or remove the row") from None
        offsets.append(pos)
        out.write(line)
        pos += len(line)
    return offsets


def shares(weights: Sequence[float], total: int) -> list[int]:
    """Rows each source gets out of ``total``: ``round(total * w / sum(w))``, computed on weights scaled by the
    largest one, so that huge (1e308) or tiny (1e-300) weights neither overflow nor vanish together."""
    top = max(weights)
    scaled = [w / top for w in weights]  # each in (0, 1]; the sum is at most len(weights)
    total_w = math.fsum(scaled)
    return [round(total * w / total_w) for w in scaled]


def mix_datasets(sources: Sequence[tuple[Any, ...]], seed: int, work_dir: str | Path,
                 out_path: str | Path | None = None, shuffle: bool = True) -> MixResult:
    """Mix record sources by weight into one shuffled JSONL file (default ``work_dir/mixed.jsonl``).

    ``sources`` holds ``(records, weight)`` or ``(records, weight, name)`` tuples; ``records`` is
    an iterable of records or a zero-argument callable returning one; ``name`` labels errors.

    Semantics:

    * All weights equal (including a single source): every row of every source exactly once,
      then a seeded shuffle.
    * Otherwise the mix has as many rows as all sources together (N). Source i contributes
      ``round(N * w_i / sum(w))`` rows: drawn without replacement when it has that many, else
      (upsampling) every row ``k`` whole times plus a seeded sample of the remainder. The result
      is shuffled. A source whose share rounds to 0 contributes nothing.

    With ``shuffle`` false nothing is shuffled: the sources follow one another, each in file order (the
    spec's ``data.shuffle: false``). The same seed and inputs give byte-identical output.
    """
    if not sources:
        raise DataError("datasets", "no dataset to mix", hint="list at least one training dataset")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = Path(out_path) if out_path is not None else work_dir / "mixed.jsonl"
    names = [str(s[2]) if len(s) > 2 else f"dataset {i + 1}" for i, s in enumerate(sources)]
    weights = [s[1] for s in sources]
    for name, w in zip(names, weights, strict=True):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise DataError(name, f"weight must be a positive number, got {w!r}")

    spool = work_dir / ".mix-sources.jsonl"
    try:
        offsets = []
        with open(spool, "wb") as spooled:
            for (src, *_), name in zip(sources, names, strict=True):
                records = src() if callable(src) else src
                offsets.append(_append_records(records, spooled, name))
        codes, counts, taken = _mix_codes(offsets, weights, names, seed, shuffle)
        _write_lines(spool, offsets, codes, out)
    finally:
        spool.unlink(missing_ok=True)
    return MixResult(out, len(codes), tuple(counts), tuple(taken))


def _write_lines(spool: Path, offsets: Sequence[array], codes: array, out: Path) -> None:
    """Copy the spooled lines named by `codes` (row * n_sources + source) to `out`, in that order.

    Each line is read whole by its start and the next line's start, in one positioned read: a seek and
    readline per row made the buffered reader fetch a whole buffer for every line (8 KiB for a 200-byte row),
    most of the shuffle's time on a large file. (Mapping the spool into memory is as fast but counts the
    whole file in the process's resident memory.)"""
    n_src = len(offsets)
    bases, starts = [], array("q")
    for source_offsets in offsets:  # one sorted array of line starts: the spool holds the sources in order
        bases.append(len(starts))
        starts.extend(source_offsets)
    starts.append(spool.stat().st_size)
    with open(spool, "rb", buffering=0) as f, open(out, "wb") as dst:
        read_at = _positioned_reader(f)
        for code in codes:
            at = bases[code % n_src] + code // n_src
            start, size = starts[at], starts[at + 1] - starts[at]
            line = read_at(size, start)
            while len(line) < size:  # a short read (allowed, though regular files do not do it)
                more = read_at(size - len(line), start + len(line))
                if not more:
                    raise DataError(str(spool), "the spooled data file was truncated while it was read")
                line += more
            dst.write(line)


def _positioned_reader(f: Any) -> Callable[[int, int], bytes]:
    """`read(size, offset)` on an unbuffered file: os.pread where there is one, else seek and read."""
    if hasattr(os, "pread"):
        fd = f.fileno()
        return lambda size, offset: os.pread(fd, size, offset)

    def read(size: int, offset: int) -> bytes:
        f.seek(offset)
        return f.read(size)
    return read


def _mix_codes(offsets: Sequence[array], weights: Sequence[float], names: Sequence[str],
               seed: int, shuffle: bool = True) -> tuple[array, list[int], list[int]]:
    """The shuffled (row * n_sources + source) codes of the mix, rows per source, and rows taken from each."""
    counts = [len(o) for o in offsets]
    total = sum(counts)
    rng = random.Random(f"uft-mix:{seed}")

    n_src = len(offsets)
    codes = array("q")  # row * n_src + source
    if len(set(weights)) == 1:
        taken = counts
        for s, n in enumerate(counts):
            codes.extend(j * n_src + s for j in range(n))
    else:
        taken = shares(weights, total)
        for s, (n, t) in enumerate(zip(counts, taken, strict=True)):
            if t and not n:
                raise DataError(names[s], "the dataset has no rows to sample from")
            if t <= n:
                rows: Iterable[int] = range(n) if t == n else rng.sample(range(n), t)
                codes.extend(j * n_src + s for j in rows)
            else:
                whole, rest = divmod(t, n)
                for _ in range(whole):
                    codes.extend(j * n_src + s for j in range(n))
                codes.extend(j * n_src + s for j in rng.sample(range(n), rest))
    if shuffle:
        rng.shuffle(codes)
    else:  # file order: source by source, each source's rows in their order
        codes = array("q", sorted(codes, key=lambda code: (code % n_src, code // n_src)))
    return codes, counts, taken


def split_eval(records_path: str | Path, ratio: float, seed: int, train_out: str | Path,
               eval_out: str | Path, rows: int | None = None) -> tuple[int, int]:
    """Split a JSONL file into train and eval by ``ratio``; return ``(train_rows, eval_rows)``.

    ``max(1, round(rows * ratio))`` rows chosen by a seeded sample go to eval, the rest to train;
    both keep the input's order. It is an error unless each side gets at least one row. ``rows`` is the
    file's count of non-blank lines when the caller knows it (``mix_datasets``' result), saving a pass.
    """
    records_path = Path(records_path)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise DataError(records_path, f"eval_ratio must be between 0 and 1 (exclusive), got {ratio!r}")
    if rows is None:
        with open(records_path, "rb") as f:
            rows = sum(1 for line in f if line.strip())
    n = rows
    n_eval = max(1, round(n * ratio))
    if n_eval >= n:
        raise DataError(records_path, f"cannot split {n} row(s) with eval_ratio {ratio}: train and eval each need "
                                      "at least one row",
                        hint="add rows, lower eval_ratio, or give a separate eval dataset")
    rng = random.Random(f"uft-eval-split:{seed}")
    is_eval = bytearray(n)
    for j in rng.sample(range(n), n_eval):
        is_eval[j] = 1
    with open(records_path, "rb") as src, open(train_out, "wb") as tr, open(eval_out, "wb") as ev:
        j = 0
        for line in src:
            if not line.strip():
                continue
            (ev if is_eval[j] else tr).write(line)
            j += 1
    return n - n_eval, n_eval


def sample_records(records: Callable[[], Iterable[dict[str, Any]]], count: int,
                   seed: int) -> Iterator[dict[str, Any]]:
    """``count`` records of a source (the spec's ``samples``): a seeded sample without replacement, in file
    order; or, when ``count`` is larger, every record ``count // n`` whole times and then a seeded sample of
    the rest (ms-swift's ``dataset#N``).

    The source is streamed again for each pass instead of being copied, so every error still names the
    user's own file and row, and memory stays at one byte a row.
    """
    n = sum(1 for _ in records())
    whole, rest = divmod(count, n) if n else (0, 0)
    picked = bytearray(n)
    for j in random.Random(f"uft-samples:{seed}").sample(range(n), rest):
        picked[j] = 1
    for _ in range(whole):
        yield from records()
    if rest:
        for j, record in enumerate(records()):
            if picked[j]:
                yield record
