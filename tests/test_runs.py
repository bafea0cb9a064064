"""Run directories: never reused or overwritten, manifests written atomically, JSONL read safely."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from unified_ft.errors import RunDirError, UftError
from unified_ft.runs import (
    Manifest,
    create_run_dir,
    ensure_empty_dir,
    load_finished_run,
    read_json,
    read_jsonl,
    sha256_text,
    write_json_atomic,
    write_jsonl,
)


def test_create_run_dir_layout(tmp_path):
    run_dir = create_run_dir(tmp_path / "runs", "job", "trl")
    assert run_dir == (tmp_path / "runs" / "job" / "trl").resolve()
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "logs", "native"]
    assert all((run_dir / sub).is_dir() for sub in ("data", "logs", "native"))


def test_same_name_gets_suffixed_and_first_is_untouched(tmp_path):
    runs = tmp_path / "runs"
    first = create_run_dir(runs, "job", "trl")
    (first / "logs" / "marker.txt").write_text("first run")
    second = create_run_dir(runs, "job", "trl")
    third = create_run_dir(runs, "job", "trl")
    assert second == (runs / "job-2" / "trl").resolve()
    assert third == (runs / "job-3" / "trl").resolve()
    assert (first / "logs" / "marker.txt").read_text() == "first run"
    assert sorted(p.name for p in first.iterdir()) == ["data", "logs", "native"]
    assert not any((second / "logs").iterdir())


def test_other_backend_reuses_the_name_folder(tmp_path):
    runs = tmp_path / "runs"
    trl = create_run_dir(runs, "job", "trl")
    other = create_run_dir(runs, "job", "unsloth")
    assert other == (runs / "job" / "unsloth").resolve()
    assert trl.parent == other.parent
    assert sorted(p.name for p in (runs / "job").iterdir()) == ["trl", "unsloth"]
    assert not (runs / "job-2").exists()


def test_create_run_dir_accepts_str_and_creates_parents(tmp_path):
    run_dir = create_run_dir(str(tmp_path / "a" / "b"), "n", "trl")
    assert run_dir.is_dir() and run_dir.parent.parent == (tmp_path / "a" / "b").resolve()


@pytest.mark.parametrize("name", ["..", "../escape", "x/../../escape"])
def test_create_run_dir_refuses_to_leave_runs(tmp_path, name):
    runs = tmp_path / "runs"
    with pytest.raises(RunDirError):
        create_run_dir(runs, name, "trl")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "trl").exists()


def test_ensure_empty_dir_creates_missing(tmp_path):
    out = ensure_empty_dir(tmp_path / "a" / "native")
    assert out.is_dir() and not any(out.iterdir())


def test_ensure_empty_dir_accepts_existing_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    assert ensure_empty_dir(tmp_path / "empty") == tmp_path / "empty"


def test_ensure_empty_dir_refuses_non_empty(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("keep")
    with pytest.raises(RunDirError, match="not empty"):
        ensure_empty_dir(tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "keep"


def test_ensure_empty_dir_refuses_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError):
        ensure_empty_dir(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_manifest_lifecycle(tmp_path):
    manifest = Manifest(tmp_path, run_name="job", backend="trl", seed=3)
    data = read_json(tmp_path / "manifest.json")
    assert data["status"] == "running" and data["run_name"] == "job" and data["seed"] == 3
    datetime.fromisoformat(data["started_at"])
    manifest.update(train_rows=10)
    assert read_json(tmp_path / "manifest.json")["train_rows"] == 10
    manifest.finish("failed", 3, error_tail="boom")
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["status"] == "failed" and data["exit_code"] == 3 and data["error_tail"] == "boom"
    assert isinstance(data["duration_s"], float) and 0 <= data["duration_s"] < 60
    assert datetime.fromisoformat(data["ended_at"]) >= datetime.fromisoformat(data["started_at"])
    assert data["train_rows"] == 10 and data["backend"] == "trl"


def test_manifest_finish_rejects_unknown_status(tmp_path):
    with pytest.raises(AssertionError):
        Manifest(tmp_path).finish("exploded", 1)


def test_write_json_atomic_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.json"
    for i in range(3):
        write_json_atomic(target, {"i": i, "path": tmp_path})  # Path is written via default=str
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert read_json(target) == {"i": 2, "path": str(tmp_path)}


def test_write_json_atomic_failure_leaves_no_temp_file(tmp_path):
    circular: dict = {}
    circular["self"] = circular
    (tmp_path / "out.json").write_text('{"old": true}')
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "out.json", circular)
    assert read_json(tmp_path / "out.json") == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_jsonl_skips_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo')
    assert list(read_jsonl(path)) == [{"step": 1}, {"step": 2}]


def test_read_jsonl_missing_file_is_empty(tmp_path):
    assert list(read_jsonl(tmp_path / "absent.jsonl")) == []


def test_write_jsonl_round_trip(tmp_path):
    rows = [{"a": 1, "t": "é"}, {"b": [1, 2]}]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    assert list(read_jsonl(path)) == rows
    assert "é" in path.read_text(encoding="utf-8")


def test_sha256_text():
    assert sha256_text("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_running_run_whose_uft_is_gone_is_called_abandoned(tmp_path):
    """uft killed by SIGKILL leaves "running" in its manifest; a later reader says nobody is watching it."""
    import socket
    import subprocess
    import sys

    from unified_ft.runs import run_status

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    here = socket.gethostname()
    assert run_status({"status": "running", "uft_pid": os.getpid(), "host": here}) == "running"
    assert run_status({"status": "running", "uft_pid": dead_pid, "host": here}).startswith("abandoned")
    assert run_status({"status": "running", "uft_pid": dead_pid, "host": "elsewhere"}) == "running"
    assert run_status({"status": "failed", "uft_pid": dead_pid, "host": here}) == "failed"
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running", "uft_pid": dead_pid, "host": here}))
    (run_dir / "spec.yaml").write_text("name: x\n")
    with pytest.raises(UftError, match="abandoned"):
        load_finished_run(run_dir)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_a_runs_directory_that_cannot_be_made_for_any_reason_is_a_run_dir_error():
    from unified_ft.runs import run_dir_errors

    with pytest.raises(RunDirError) as caught, run_dir_errors("/proc/uft-x"):
        create_run_dir("/proc/uft-x", "n", "trl")
    assert "cannot write the run directory under /proc/uft-x" in str(caught.value)
    assert "--runs-dir" in str(caught.value)
