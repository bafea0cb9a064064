"""Stopping cleanly, without a framework: signal handlers, a child's process group, the manifest on a full disk.

The child here is a small Python program that starts a grandchild in its own process group (as a
launcher's workers would) and writes progress rows, so that "nothing outlives uft" is checked for
the whole group, fast.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from unified_ft import runs
from unified_ft.errors import RunDirError
from unified_ft.interrupts import StopSignal, StopSignals, describe_death
from unified_ft.plugin import NativeJob
from unified_ft.runs import Manifest, run_dir_errors
from unified_ft.supervise import execute

CHILD = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open("pids", "w").write(f"{os.getpid()} {worker.pid}")
with open("log.jsonl", "a") as log:
    for step in range(100000):
        log.write('{"step": %d, "loss": 1.0}\\n' % step)
        log.flush()
        time.sleep(0.05)
"""


def _job(tmp_path: Path, mode: str = "plain") -> NativeJob:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return NativeJob(native_dir=tmp_path, files=[], argv=[sys.executable, "-c", CHILD, mode], cwd=tmp_path,
                     log_file=tmp_path / "log.jsonl")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def test_an_error_inside_uft_while_the_child_runs_stops_its_whole_group(tmp_path):
    seen: list[BaseException] = []

    def broken_progress(row: dict) -> None:
        raise RuntimeError("a bug in uft's progress display")

    with pytest.raises(RuntimeError, match="progress display"):
        execute(_job(tmp_path), tmp_path / "logs", broken_progress, poll_s=0.05, on_stopping=seen.append)
    assert len(seen) == 1 and isinstance(seen[0], RuntimeError)
    assert not any(_alive(pid) for pid in _pids(tmp_path))


def test_sigterm_to_uft_becomes_stopsignal_and_a_stubborn_child_is_killed_after_the_grace(tmp_path):
    rows: list[dict] = []

    def progress(row: dict) -> None:
        rows.append(row)
        if len(rows) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    started = time.monotonic()
    with StopSignals() as stops, pytest.raises(StopSignal) as caught:
        execute(_job(tmp_path, "stubborn"), tmp_path / "logs", progress, poll_s=0.05, stops=stops, grace_s=1.0)
    assert caught.value.name == "SIGTERM" and caught.value.signum == signal.SIGTERM
    assert 1.0 <= time.monotonic() - started < 20
    assert not any(_alive(pid) for pid in _pids(tmp_path))


def test_a_child_that_ends_on_its_own_leaves_no_worker_behind(tmp_path):
    job = _job(tmp_path)
    job.argv = [sys.executable, "-c", CHILD.replace("range(100000)", "range(3)"), "plain"]
    assert execute(job, tmp_path / "logs", poll_s=0.05) == 0
    assert not any(_alive(pid) for pid in _pids(tmp_path))


def test_handlers_are_installed_only_over_the_default_and_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT)}
    mine = lambda signum, frame: None  # noqa: E731
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    signal.signal(signal.SIGQUIT, mine)  # a library user's own handler
    try:
        with StopSignals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGQUIT) is mine
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, before[signal.SIGTERM])
            with pytest.raises(StopSignal, match="SIGTERM"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is before[signal.SIGINT]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker() -> None:
        with StopSignals() as stops:
            seen.append(stops._previous)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [{}]


def test_a_signal_inside_held_waits_for_the_block_and_shielded_drops_it():
    with StopSignals() as stops:
        finished = []
        with pytest.raises(StopSignal), stops.held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            finished.append(True)
        assert finished == [True]
    with StopSignals() as stops, stops.shielded():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)


@pytest.mark.parametrize("code, words", [(-9, "killed by SIGKILL (out of memory?"), (-11, "killed by SIGSEGV"),
                                         (-6, "killed by SIGABRT"), (3, "exited with code 3")])
def test_a_death_is_named(code, words):
    assert words in describe_death(code)


def test_a_manifest_on_a_full_disk_is_rewritten_in_place_not_left_running(tmp_path, monkeypatch):
    manifest = Manifest(tmp_path, run_name="x", command=["python", "train.py"])

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runs, "write_json_atomic", disk_full)
    manifest.finish("failed", 1, error="trl exited with code 1; no space left on device", error_tail="x" * 100_000)
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["status"] == "failed" and "no space" in saved["error"] and "error_tail" not in saved


def test_an_unwritable_run_directory_is_a_run_dir_error_but_a_dataset_error_is_not(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(RunDirError, match="Read-only file system") as caught, run_dir_errors(root):
        raise OSError(errno.EROFS, "Read-only file system", str(root / "x" / "trl"))
    assert "fix: that file system is read-only" in str(caught.value)
    with pytest.raises(PermissionError), run_dir_errors(root):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "data.jsonl"))
