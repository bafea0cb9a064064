"""Run directories: where a run's files go, never overwritten, with a manifest written atomically.

Layout: runs/<name>/<backend>/ holding spec.yaml, native/, logs/, data/, metrics.jsonl, adapter/ and
manifest.json. A repeated name gets a suffixed directory (runs/<name>-2/<backend>/).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from .errors import RunDirError, UftError
from .spec import JobSpec
from .specfile import validate_spec_dict

STATUSES = ("running", "succeeded", "failed", "interrupted")


def create_run_dir(runs_dir: str | Path, name: str, backend: str) -> Path:
    """Make a new, empty runs/<name>/<backend>/ (suffixing the name if taken); never reuse one."""
    root = Path(runs_dir).resolve()
    for attempt in range(1, 10_000):
        run_name = name if attempt == 1 else f"{name}-{attempt}"
        run_dir = (root / run_name / backend).resolve()
        if root not in run_dir.parents:
            raise RunDirError(f"run name {name!r} would leave {root}; use a plain name")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()  # atomic: two runs racing for one name get different directories
        except FileExistsError:
            continue
        for sub in ("native", "logs", "data"):
            (run_dir / sub).mkdir()
        return run_dir
    raise RunDirError(f"too many runs named {name!r} under {root}")


def ensure_empty_dir(path: str | Path) -> Path:
    """An output folder for `uft translate -o`: created if absent, an error if it holds anything."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunDirError(f"{path} already exists and is not empty; choose a new folder (nothing was written)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON via a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; a missing file has none; a torn last line (a killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """manifest.json of one run: identity, hashes, versions, timings and status; rewritten atomically."""

    def __init__(self, run_dir: Path, **fields: Any) -> None:
        self.path = run_dir / "manifest.json"
        self.data: dict[str, Any] = {"status": "running", "started_at": now(), **fields}
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, status: str, exit_code: int | None, **fields: Any) -> None:
        assert status in STATUSES
        ended = datetime.now(timezone.utc)
        started = datetime.fromisoformat(self.data["started_at"])
        self.update(status=status, exit_code=exit_code, ended_at=ended.isoformat(timespec="seconds"),
                    duration_s=round((ended - started).total_seconds(), 1), **fields)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def load_finished_run(run_dir: Path) -> tuple[JobSpec, dict[str, Any], Path]:
    """A complete, succeeded run: its resolved spec, manifest and what was trained (adapter/ or model/)."""
    manifest_path, spec_path = run_dir / "manifest.json", run_dir / "spec.yaml"
    if not manifest_path.exists() or not spec_path.exists():
        raise UftError(f"{run_dir} is not a uft run directory (no manifest.json / spec.yaml)\n"
                       "    fix: give a path like runs/<name>/<backend>")
    manifest = read_json(manifest_path)
    if manifest.get("status") != "succeeded":
        raise UftError(f"{run_dir}: the run is {manifest.get('status')}, not succeeded; there is nothing to judge\n"
                       "    fix: run it again with `uft run`")
    spec = validate_spec_dict(yaml.safe_load(spec_path.read_text(encoding="utf-8")), str(spec_path))
    for name in ("adapter", "model"):
        if (run_dir / name).is_dir():
            return spec, manifest, run_dir / name
    raise UftError(f"{run_dir}: the run succeeded but has neither adapter/ nor model/; it is incomplete")
