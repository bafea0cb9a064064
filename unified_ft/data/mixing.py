"""Mix several record streams into one shuffled JSONL file, and split off an eval set.

Both work from files on disk, not lists in memory: each source is spooled to a JSONL file while
the byte offset of every line is kept (8 bytes a row); the mix is then a shuffled array of
(source, row) codes, read back by seeking. Randomness comes only from ``random.Random`` seeded
with a string derived from ``seed`` (hashed with SHA-512 by ``random``), so results depend on
the seed alone, never on PYTHONHASHSEED.
"""

from __future__ import annotations

import json
import math
import random
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from unified_ft.errors import DataError

RecordSource = Union[Iterable[dict[str, Any]], Callable[[], Iterable[dict[str, Any]]]]


@dataclass(frozen=True)
class MixResult:
    """Where the mix went and how many rows each source gave and contributed."""

    path: Path
    rows: int
    source_rows: tuple[int, ...]
    taken: tuple[int, ...]


def dump_record(record: dict[str, Any]) -> bytes:
    """One JSONL line: UTF-8, non-ASCII kept as is, key order as built (deterministic)."""
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def write_records(records: Iterable[dict[str, Any]], path: str | Path, name: str = "dataset") -> array:
    """Write records as JSONL; return the byte offset of each line (its length is the row count)."""
    offsets = array("q")
    pos = 0
    with open(path, "wb") as out:
        for i, rec in enumerate(records, 1):
            try:
                line = dump_record(rec)
            except UnicodeEncodeError:
                raise DataError(name, "the text contains an invalid character (a lone UTF-16 surrogate such as "
                                      "\\ud800)", row=i, hint="fix or remove the row") from None
            offsets.append(pos)
            out.write(line)
            pos += len(line)
    return offsets


def mix_datasets(sources: Sequence[tuple[Any, ...]], seed: int, work_dir: str | Path,
                 out_path: str | Path | None = None) -> MixResult:
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

    The same seed and inputs give byte-identical output.
    """
    if not sources:
        raise DataError("datasets", "no dataset to mix", hint="list at least one training dataset")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = Path(out_path) if out_path is not None else work_dir / "mixed.jsonl"
    names = [str(s[2]) if len(s) > 2 else f"dataset {i + 1}" for i, s in enumerate(sources)]
    weights = [s[1] for s in sources]
    for name, w in zip(names, weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise DataError(name, f"weight must be a positive number, got {w!r}")

    spools = [work_dir / f".mix-source-{i}.jsonl" for i in range(len(sources))]
    offsets = []
    for (src, *_), name, spool in zip(sources, names, spools):
        records = src() if callable(src) else src
        offsets.append(write_records(records, spool, name))
    counts = [len(o) for o in offsets]
    total = sum(counts)
    rng = random.Random(f"uft-mix:{seed}")

    n_src = len(sources)
    codes = array("q")  # row * n_src + source
    if len(set(weights)) == 1:
        taken = counts
        for s, n in enumerate(counts):
            codes.extend(j * n_src + s for j in range(n))
    else:
        total_w = float(sum(weights))
        taken = [round(total * w / total_w) for w in weights]
        for s, (n, t) in enumerate(zip(counts, taken)):
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
    rng.shuffle(codes)

    files = [open(p, "rb") for p in spools]
    try:
        with open(out, "wb") as dst:
            for code in codes:
                s, j = code % n_src, code // n_src
                f = files[s]
                f.seek(offsets[s][j])
                dst.write(f.readline())
    finally:
        for f in files:
            f.close()
        for p in spools:
            p.unlink(missing_ok=True)
    return MixResult(out, len(codes), tuple(counts), tuple(taken))


def split_eval(records_path: str | Path, ratio: float, seed: int, train_out: str | Path,
               eval_out: str | Path) -> tuple[int, int]:
    """Split a JSONL file into train and eval by ``ratio``; return ``(train_rows, eval_rows)``.

    ``max(1, round(rows * ratio))`` rows chosen by a seeded sample go to eval, the rest to train;
    both keep the input's order. It is an error unless each side gets at least one row.
    """
    records_path = Path(records_path)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise DataError(records_path, f"eval_ratio must be between 0 and 1 (exclusive), got {ratio!r}")
    with open(records_path, "rb") as f:
        n = sum(1 for line in f if line.strip())
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


def sample_rows(path: str | Path, count: int, seed: int, out: str | Path) -> Path:
    """`count` raw rows of a dataset file as JSONL: a seeded sample without replacement, or every row
    repeated and the rest sampled when `count` is larger (ms-swift's `dataset#N`)."""
    import json
    import random

    from unified_ft.data.files import iter_rows

    rows = [row for _, row in iter_rows(path)]
    rng = random.Random(seed)
    whole, rest = divmod(count, len(rows)) if rows else (0, 0)
    picked = rows * whole + rng.sample(rows, rest)
    out = Path(out)
    with out.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in picked)
    return out
