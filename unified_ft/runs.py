"""Run directories: where a run's files go, never overwritten, with a manifest written atomically.

Layout: runs/<name>/<backend>/ holding spec.yaml, native/, logs/, data/, metrics.jsonl, adapter/ and
manifest.json. A repeated name gets a suffixed directory (runs/<name>-2/<backend>/).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ProblemsError, RunDirError, UftError
from .fastjson import make_loads
from .redact import env_secrets, redact_data
from .spec import JobSpec
from .specfile import validate_spec_dict
from .userfile import load_yaml, os_error_text, path_problem, read_json_file, read_user_file, shown

STATUSES = ("running", "succeeded", "failed", "interrupted")


_MADE: dict[Path, tuple[Path, ...]] = {}  # run dir -> the folders create_run_dir made to hold it, deepest first


def create_run_dir(runs_dir: str | Path, name: str, backend: str) -> Path:
    """Make a new, empty runs/<name>/<backend>/ (suffixing the name if taken); never reuse one.

    It remembers which folders it made (runs/ itself, runs/<name>/), so that `discard_run_dir` can take
    back exactly those when the run never starts.
    """
    root = Path(runs_dir).expanduser().resolve()  # "~/runs" is the home folder's, never a folder named "~"
    for attempt in range(1, 10_000):
        run_name = name if attempt == 1 else f"{name}-{attempt}"
        run_dir = (root / run_name / backend).resolve()
        if root not in run_dir.parents:
            raise RunDirError(f"run name {name!r} would leave {root}; use a plain name")
        made = _missing_folders(run_dir.parent)
        ours = False
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                run_dir.mkdir()  # atomic: two runs racing for one name get different directories
            except FileExistsError:
                continue
            ours = True
            for sub in ("native", "logs", "data"):
                (run_dir / sub).mkdir()
        except BaseException:
            _remove_made(run_dir if ours else None, made)
            raise
        _MADE[run_dir] = tuple(made)
        return run_dir
    raise RunDirError(f"too many runs named {name!r} under {root}")


def discard_run_dir(run_dir: Path) -> None:
    """Remove a run directory that never started (an input error) and the folders made for it, so nothing is
    left behind; a runs/ or runs/<name>/ that existed before stays, as does one another run is using."""
    _remove_made(run_dir, _MADE.pop(run_dir, (run_dir.parent,)))


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first (what mkdir(parents=True) makes)."""
    missing = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    return missing


def _remove_made(run_dir: Path | None, parents: Iterable[Path]) -> None:
    """Remove our run folder with its contents, then the parents we made (deepest first) while they are empty."""
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    for folder in parents:
        try:
            folder.rmdir()
        except OSError:
            return


def ensure_empty_dir(path: str | Path) -> Path:
    """An output folder for `uft translate -o`: created if absent, an error if it holds anything."""
    path = Path(path)
    problem = path_problem(path)
    try:
        if not problem and path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(f"{path} already exists and is not empty; choose a new folder (nothing was written)")
        if not problem:
            path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, a name too long, no permission
        problem = os_error_text(exc)
    if problem:
        raise RunDirError(f"cannot make the folder {shown(path)}: {problem}\n"
                          "    fix: choose another folder (nothing was written)")
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


_LOADS = make_loads(json.loads)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; a missing file has none; a torn last line (a killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield _LOADS(line)
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
        # uft's pid and host tell a later reader whether a "running" run still has a uft watching it
        self.data: dict[str, Any] = {"status": "running", "started_at": now(), "uft_pid": os.getpid(),
                                     "host": socket.gethostname(), **fields}
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
        """Written redacted: the command, notes and error tails must not carry a secret into a shared folder.

        On a full disk the atomic write has no room for its temporary file, so the manifest is rewritten in
        place over its own blocks instead: a run must never stay "running" because the disk filled up.
        """
        data = redact_data(self.data, env_secrets(), free_text=True)
        try:
            write_json_atomic(self.path, data)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not _overwrite_in_place(self.path, data):
                raise


def _overwrite_in_place(path: Path, data: dict[str, Any]) -> bool:
    """Write `data` over the file's already allocated blocks if it fits (without the log tail if need be)."""
    try:
        info = path.stat()
    except OSError:
        return False
    room = max(info.st_size, info.st_blocks * 512)
    slim = {key: value for key, value in data.items() if key != "error_tail"}
    for candidate in (data, slim):
        text = (json.dumps(candidate, default=str) + "\n").encode("utf-8")
        if len(text) <= room:
            with path.open("r+b") as handle:
                handle.write(text)
                handle.truncate()
            return True
    return False


_WRITE_FIXES = {
    errno.ENOSPC: "free some space on that disk, or choose another --runs-dir (or runs_dir: in the spec)",
    errno.EDQUOT: "free some of your quota, or choose another --runs-dir (or runs_dir: in the spec)",
    errno.EROFS: "that file system is read-only; choose a writable --runs-dir (or runs_dir: in the spec)",
    errno.EACCES: "you may not write there; choose another --runs-dir (or runs_dir: in the spec), or fix its "
                  "permissions",
}
_WRITE_FIXES[errno.EPERM] = _WRITE_FIXES[errno.EACCES]
#: Any other reason a folder cannot be made there (/proc, a vanished mount, a name the file system refuses).
_OTHER_WRITE_FIX = "choose a folder you can create and write: --runs-dir (or runs_dir: in the spec)"


@contextmanager
def run_dir_errors(root: str | Path) -> Iterator[None]:
    """A new run directory under `root` that cannot be made or filled (read-only, full, not ours) is a
    RunDirError naming the path and the fix, not a traceback; other errors go on unchanged."""
    try:
        yield
    except OSError as exc:
        fix = _WRITE_FIXES.get(exc.errno, _OTHER_WRITE_FIX)  # type: ignore[arg-type]
        top = _real(root)
        where = _real(exc.filename) if exc.filename else top  # a failed write() names no file
        if not (where == top or top in where.parents or where in top.parents):
            raise  # not the run directory's (a dataset that cannot be read): its own error
        path = "" if where == top else f"{where}: "
        raise RunDirError(f"cannot write the run directory under {root}: {path}{exc.strerror}\n"
                          f"    fix: {fix}; nothing was kept") from exc


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def load_finished_run(run_dir: Path) -> tuple[JobSpec, dict[str, Any], Path]:
    """A complete, succeeded run: its resolved spec, manifest and what was trained (adapter/ or model/)."""
    run_dir = Path(run_dir)
    manifest_path, spec_path = run_dir / "manifest.json", run_dir / "spec.yaml"
    if path_problem(run_dir) or not _both_exist(manifest_path, spec_path):
        raise UftError(f"{shown(run_dir)} is not a uft run directory (no manifest.json / spec.yaml)\n"
                       "    fix: give a path like runs/<name>/<backend>")
    damaged = "the run's record is damaged; run the job again with `uft run`"
    manifest = read_json_file(manifest_path, "run manifest", damaged, error=ProblemsError, broken_hint=damaged)
    if not isinstance(manifest, dict):
        raise UftError(f"{manifest_path}: expected a JSON object, found {type(manifest).__name__}\n    fix: {damaged}")
    if manifest.get("status") != "succeeded":
        raise UftError(f"{run_dir}: the run is {run_status(manifest)}, not succeeded; there is nothing to judge\n"
                       "    fix: run it again with `uft run`")
    document = load_yaml(read_user_file(spec_path, "run's spec", damaged), str(spec_path), "run's spec")
    spec = validate_spec_dict(document.data, str(spec_path), document.lines, document.typed)
    for name in ("adapter", "model"):
        if (run_dir / name).is_dir():
            return spec, manifest, run_dir / name
    raise UftError(f"{run_dir}: the run succeeded but has neither adapter/ nor model/; it is incomplete")


def run_status(manifest: dict[str, Any]) -> str:
    """The manifest's status, and for a "running" run whose uft process is gone (killed by SIGKILL, or its
    machine went down) what that means: nothing is watching it and it will never finish."""
    status = str(manifest.get("status"))
    pid, host = manifest.get("uft_pid"), manifest.get("host")
    if status != "running" or not isinstance(pid, int) or host != socket.gethostname():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"abandoned (its manifest says running, but uft process {pid} is gone: killed, or the machine restarted)"
    except PermissionError:
        pass  # alive, someone else's
    return status


def _both_exist(*paths: Path) -> bool:
    try:
        return all(path.exists() for path in paths)
    except OSError:  # a name too long, a symlink loop: not a run directory
        return False
