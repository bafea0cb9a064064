"""Turn the job spec's datasets into canonical JSONL files every backend can train on.

``prepare_records`` is the one entry point the rest of unified_ft needs: it reads each training
dataset (any supported format and file type), checks every row is the kind of record the method
needs, mixes the datasets by weight, splits off or reads the eval set, and writes
``train.jsonl`` / ``eval.jsonl`` in trl's conversational shapes (see ``records``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unified_ft.data.files import FILE_TYPES, iter_rows
from unified_ft.data.mixing import MixResult, dump_record, mix_datasets, sample_records, split_eval, write_records
from unified_ft.data.readers import (
    FORMAT_COLUMNS,
    FORMAT_KIND,
    FORMATS,
    ROLE_ALIASES,
    check_format_kind,
    check_source,
    count_and_validate,
    detect_format,
    read_records,
)
from unified_ft.data.records import (
    RECORD_KINDS,
    ROLES,
    message,
    record_kind,
    validate_chat,
    validate_preference,
    validate_record,
    validate_text,
)
from unified_ft.errors import DataError

__all__ = [
    "FILE_TYPES", "FORMATS", "FORMAT_COLUMNS", "FORMAT_KIND", "RECORD_KINDS", "ROLES", "ROLE_ALIASES",
    "DataError", "DatasetSource", "MixResult", "PreparedData", "check_format_kind", "check_source",
    "count_and_validate", "detect_format", "dump_record", "iter_rows", "mix_datasets", "prepare_records",
    "read_records", "record_kind", "split_eval",
    "validate_chat", "validate_preference", "validate_record", "validate_text", "write_records",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class DatasetSource:
    """One dataset to read: its file, format and column mapping, mixing weight, ``samples`` (use this many
    rows: see ``mixing.sample_records``; None means every row once) and ``first_rows`` (read only the first
    N rows of the file, before sampling)."""

    path: PathLike
    fmt: str
    columns: Mapping[str, str] | None = None
    weight: float = 1.0
    samples: int | None = None
    first_rows: int | None = None


Source = DatasetSource | tuple[Any, ...]  # or a tuple (path, fmt, columns | None[, weight])


@dataclass(frozen=True)
class PreparedData:
    """The prepared files and what a run manifest records about them.

    ``sha256`` is the data hash: SHA-256 over ``b"train.jsonl\\0"`` + the train file's bytes, then
    (when there is an eval file) ``b"eval.jsonl\\0"`` + its bytes.
    """

    train_path: Path
    eval_path: Path | None
    train_rows: int
    eval_rows: int
    sha256: str
    source_rows: tuple[int, ...] = ()  # rows read from each training dataset, in spec order


def _checked(path: PathLike, fmt: str, columns: Mapping[str, str] | None, kind: str) -> Iterator[dict[str, Any]]:
    """Records of ``path``, each confirmed to be of ``kind`` (a guard on top of the format check)."""
    for row, rec in enumerate(read_records(path, fmt, columns), 1):
        if record_kind(rec) != kind:
            check_format_kind(path, fmt, kind)
            raise DataError(path, f"expected a {kind} record, got {record_kind(rec)}", row=row)
        yield rec


def with_system(record: dict[str, Any], system: str | None) -> dict[str, Any]:
    """The record with ``system`` as its first message where it has no system message of its own."""
    turns_key = "messages" if "messages" in record else "prompt"
    turns = record.get(turns_key)
    if not system or not isinstance(turns, list) or (turns and turns[0].get("role") == "system"):
        return record
    return {**record, turns_key: [message("system", system), *turns]}


def _records(src: DatasetSource, kind: str, seed: int, system: str | None = None) -> Iterator[dict[str, Any]]:
    """A source's checked records, sampled from the file itself when ``samples`` is set (so errors name the
    user's file and row, never a copy), each given the spec's system prompt where it has none."""
    def read() -> Iterator[dict[str, Any]]:
        records = _checked(src.path, src.fmt, src.columns, kind)
        if src.first_rows is not None:
            records = itertools.islice(records, src.first_rows)
        return records if not system else (with_system(rec, system) for rec in records)

    return read() if src.samples is None else sample_records(read, src.samples, seed)


def _unpack(source: Source, what: str, weighted: bool) -> DatasetSource:
    if isinstance(source, DatasetSource):
        return source
    if len(source) not in ((4,) if weighted else (3, 4)):
        shape = "(path, fmt, columns, weight)" if weighted else "(path, fmt, columns[, weight])"
        raise ValueError(f"{what} must be a DatasetSource or {shape}, got {source!r}")
    return DatasetSource(*source)


def prepare_records(train: Sequence[Source], eval_source: Source | None, eval_ratio: float | None, seed: int,
                    out_dir: PathLike, kind: str, shuffle: bool = True, system: str | None = None) -> PreparedData:
    """Write ``out_dir/train.jsonl`` (and ``eval.jsonl``) from the spec's datasets; return what was written.

    ``train`` holds ``DatasetSource``s or ``(path, fmt, columns, weight)`` tuples (paths already
    resolved), mixed as described in ``mix_datasets``. The eval set is ``eval_source`` (a
    ``DatasetSource`` or ``(path, fmt, columns)``, read in file order) or a seeded ``eval_ratio``
    split of the mixed training rows, or none. Every record must be of ``kind`` ("chat",
    "preference" or "text"), e.g. a DPO run given an alpaca file fails before reading it. Files
    are written to a temporary name and moved into place, so a failure leaves no half-written
    train.jsonl; a stale eval.jsonl is removed when there is no eval set. ``shuffle`` false keeps the
    training rows in file order (see ``mix_datasets``). ``system`` is put first in every conversation
    (train and eval) that has no system message.
    """
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")
    if not train:
        raise DataError("datasets", "no training dataset given", hint="list at least one dataset under train")
    sources = [_unpack(src, "a train dataset", weighted=True) for src in train]
    eval_src = _unpack(eval_source, "the eval dataset", weighted=False) if eval_source is not None else None
    if eval_src is not None and eval_ratio is not None:
        raise DataError(eval_src.path, "both an eval dataset and eval_ratio are given",
                        hint="use either a separate eval dataset or eval_ratio, not both")
    for src in [*sources, *([eval_src] if eval_src else [])]:
        check_source(src.path, src.fmt, src.columns, kind)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_path, eval_path = out / "train.jsonl", out / "eval.jsonl"
    with tempfile.TemporaryDirectory(dir=out, prefix=".uft-data-") as tmp_name:
        tmp = Path(tmp_name)
        streams = [(lambda s=src: _records(s, kind, seed, system), src.weight, str(src.path)) for src in sources]
        mixed = mix_datasets(streams, seed, tmp, shuffle=shuffle)
        train_tmp, eval_tmp = tmp / "train.jsonl", tmp / "eval.jsonl"
        has_eval = True
        if eval_src is not None:
            eval_rows = len(write_records(_records(eval_src, kind, seed, system), eval_tmp, str(eval_src.path)))
            os.replace(mixed.path, train_tmp)
            train_rows = mixed.rows
        elif eval_ratio is not None:
            train_rows, eval_rows = split_eval(mixed.path, eval_ratio, seed, train_tmp, eval_tmp,
                                               rows=mixed.rows)
        else:
            os.replace(mixed.path, train_tmp)
            train_rows, eval_rows, has_eval = mixed.rows, 0, False
        os.replace(train_tmp, train_path)
        if has_eval:
            os.replace(eval_tmp, eval_path)
        else:
            eval_path.unlink(missing_ok=True)

    digest = hashlib.sha256()
    for label, p in (("train.jsonl", train_path), ("eval.jsonl", eval_path if has_eval else None)):
        if p is None:
            continue
        digest.update(label.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return PreparedData(train_path, eval_path if has_eval else None, train_rows, eval_rows, digest.hexdigest(),
                        mixed.source_rows)
