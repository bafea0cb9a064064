"""Faults during real trl runs: signals to uft or its framework, a read-only or full runs directory.

Each run is a real `uft run` on the tiny model (max_steps huge, so it is still training when the fault
strikes). Every case checks the exit code, the manifest's status, that the message has no traceback,
and that no process of the run is left (found by its working directory or command line under the run
directory: the framework runs `python train.py config.yaml` from native/, so its command line alone
does not name the run). A read-only and a small full file system are real tmpfs mounts (as root); not
root, the read-only case uses a folder without write permission, and the full-disk cases, which need a
real small file system, say so and skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml
from fixtures import sft_rows, write_jsonl

from unified_ft.cli import main
from unified_ft.runs import run_status

pytestmark = pytest.mark.integration

STARTUP_S = 180  # import torch + transformers + trl and reach the first logged step, on a slow shared CPU


def _spec(folder: Path, model: Path, name: str) -> Path:
    """A LoRA SFT spec that trains until stopped, logging every step."""
    write_jsonl(folder / "sft.jsonl", sft_rows())
    spec = {
        "name": name,
        "model": {"path": str(model)},
        "template": "chatml",
        "adapter": {"type": "lora", "r": 4, "alpha": 8},
        "data": {"train": [{"path": str(folder / "sft.jsonl"), "format": "alpaca"}], "max_length": 64},
        "training": {"max_steps": 1_000_000, "learning_rate": 1.0e-3, "per_device_batch_size": 1,
                     "logging_steps": 1},
        "evaluation": {"enabled": False},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _processes_of(run_dir: Path) -> list[int]:
    """Live processes whose working directory or command line is under the run directory."""
    marker, found = str(run_dir), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and (marker in cwd or marker in cmdline):
                found.append(int(entry.name))
    return found


def _kill_all(proc: subprocess.Popen | None, run_dir: Path) -> None:
    """Whatever the test's outcome: uft and every process of its run are gone afterwards."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in _processes_of(run_dir):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start_uft(spec: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "unified_ft.cli", "run", str(spec), "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_for_training(proc: subprocess.Popen, run_dir: Path) -> None:
    """Until the trainer has logged a loss (the framework is really training), or fail with uft's output."""
    log = run_dir / "native" / "output" / "trainer_log.jsonl"
    deadline = time.time() + STARTUP_S
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and '"loss"' in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"the run never started training:\n{proc.communicate()[0].decode()[-3000:]}")


def _framework_pid(run_dir: Path) -> int:
    """The framework's leader: the process running train.py from the run's native/ folder."""
    for pid in _processes_of(run_dir):
        with suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd") == str(run_dir / "native"):
                return pid
    raise AssertionError(f"no framework process found for {run_dir}")


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _wait_until_gone(run_dir: Path, timeout_s: float = 5.0) -> list[int]:
    deadline = time.time() + timeout_s
    while (left := _processes_of(run_dir)) and time.time() < deadline:
        time.sleep(0.2)
    return left


@contextmanager
def _tmpfs(mount_point: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real small file system at mount_point (root only); skips with the reason where mount is refused."""
    mount_point.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {'read-only ' if read_only else ''}tmpfs here ({done.stderr.strip()}); "
                    "the fault needs a real file system of that kind")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte, as another program would."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 512, 1):  # big chunks, then what is left of the last block
            with suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


# -- signals ---------------------------------------------------------------------------------------

SIGNAL_CASES = {
    # case: (signal, sent to, uft's exit code, manifest status)
    "SIGINT to uft": (signal.SIGINT, "uft", 130, "interrupted"),
    "SIGTERM to uft": (signal.SIGTERM, "uft", 143, "interrupted"),
    "SIGHUP to uft": (signal.SIGHUP, "uft", 129, "interrupted"),
    "SIGKILL to the framework": (signal.SIGKILL, "framework", 1, "failed"),
}


@contextmanager
def _training(folder: Path, model: Path, runs: Path | None = None) -> Iterator[tuple[subprocess.Popen, Path, int]]:
    """A `uft run` that is training (its spec and data in `folder`, its runs directory `runs`, default
    folder/runs): (uft's process, its run directory, the framework's pid); whatever happens in the
    block, uft and every process of the run are gone afterwards."""
    runs = runs or folder / "runs"
    run_dir = runs / "long" / "trl"
    proc = None
    try:
        proc = _start_uft(_spec(folder, model, "long"), runs)
        _wait_for_training(proc, run_dir)
        yield proc, run_dir, _framework_pid(run_dir)
    finally:
        _kill_all(proc, run_dir)


@pytest.mark.parametrize("case", list(SIGNAL_CASES))
def test_a_signal_stops_the_run_records_it_and_leaves_no_process(case, tmp_path, tiny_model):
    signum, target, exit_code, status = SIGNAL_CASES[case]
    with _training(tmp_path, tiny_model) as (proc, run_dir, framework):
        os.kill(proc.pid if target == "uft" else framework, signum)
        out = proc.communicate(timeout=90)[0].decode()
        assert proc.returncode == exit_code, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        manifest = _manifest(run_dir)
        assert manifest["status"] == status
        name = signal.Signals(signum).name
        assert manifest["signal"] == name
        if target == "uft":
            assert f"interrupted: stopped by {name}" in out and "recorded as interrupted" in out, out[-3000:]
        else:
            assert manifest["exit_code"] == -signal.SIGKILL
            assert "killed by SIGKILL (out of memory?" in manifest["error"]
            assert "trl was killed by SIGKILL (out of memory?" in out and "recorded as failed" in out, out[-3000:]
        assert not _wait_until_gone(run_dir), f"processes of the run outlived uft: {_processes_of(run_dir)}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_sigkill_to_uft_still_stops_the_framework(tmp_path, tiny_model):
    """SIGKILL reaches no handler; the kernel's parent-death signal stops the framework all the same."""
    with _training(tmp_path, tiny_model) as (proc, run_dir, framework):
        proc.kill()
        proc.wait(timeout=30)
        assert not _wait_until_gone(run_dir, timeout_s=15), f"the framework outlived uft: {_processes_of(run_dir)}"
        with suppress(OSError):  # gone, or a zombie that only waits to be reaped by init
            state = Path(f"/proc/{framework}/stat").read_text().rsplit(")", 1)[1].split()[0]
            assert state == "Z", f"framework {framework} is still alive (state {state})"
        assert run_status(_manifest(run_dir)).startswith("abandoned")  # nobody could record it; readers say so


def test_sigterm_during_a_library_run_stops_the_framework_too(tmp_path, tiny_model):
    """`unified_ft.api.run` from a script gets the same protection as the CLI, and its handlers back after."""
    from unified_ft import api
    from unified_ft.errors import RunInterrupted

    run_dir = tmp_path / "runs" / "long" / "trl"
    before = signal.getsignal(signal.SIGTERM)
    sent = threading.Event()

    def on_progress(row: dict) -> None:
        if row.get("loss") is not None and not sent.is_set():
            sent.set()
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would

    # if it never trains, stop it anyway (the test then fails on `sent`) rather than hang
    watchdog = threading.Timer(STARTUP_S, lambda: sent.is_set() or os.kill(os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        with pytest.raises(RunInterrupted) as caught:
            api.run(_spec(tmp_path, tiny_model, "long"), "trl", tmp_path / "runs", on_progress=on_progress)
        assert sent.is_set(), "the run never logged a loss"
        assert caught.value.exit_code == 143 and caught.value.signal_name == "SIGTERM"
        assert _manifest(run_dir)["status"] == "interrupted" and _manifest(run_dir)["signal"] == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is before
        assert not _wait_until_gone(run_dir)
    finally:
        watchdog.cancel()
        _kill_all(None, run_dir)


# -- the runs directory ----------------------------------------------------------------------------

@contextmanager
def _unwritable_dir(folder: Path) -> Iterator[tuple[Path, str, str]]:
    """A runs directory uft cannot write: a read-only tmpfs, or (not root, no mount) a folder without
    write permission. Yields it with the words the error must say and the start of its fix."""
    if os.geteuid() == 0:
        with _tmpfs(folder, "1m", read_only=True) as mounted:
            yield mounted, "Read-only file system", "fix: that file system is read-only"
        return
    folder.mkdir()
    folder.chmod(0o555)
    try:
        yield folder, "Permission denied", "fix: you may not write there"
    finally:
        folder.chmod(0o755)


def test_a_read_only_runs_directory_is_one_clear_error(tmp_path, tiny_model, capsys):
    with _unwritable_dir(tmp_path / "ro") as (runs, words, fix):
        assert main(["run", str(_spec(tmp_path, tiny_model, "ro")), "--runs-dir", str(runs)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "cannot write the run directory" in err and words in err and str(runs) in err
        assert fix in err
        assert list(runs.iterdir()) == []


def test_a_full_runs_directory_before_the_run_is_one_clear_error_and_leaves_nothing(tmp_path, tiny_model,
                                                                                    capsys):
    with _tmpfs(tmp_path / "full", "256k") as disk:
        _fill(disk)
        assert main(["run", str(_spec(tmp_path, tiny_model, "full")), "--runs-dir", str(disk)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "cannot write the run directory" in err and "No space left on device" in err
        assert "fix: free some space" in err
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin"]  # the half-made run was removed


def test_a_disk_that_fills_during_training_fails_the_run_and_says_why(tmp_path, tiny_model):
    with _tmpfs(tmp_path / "small", "16m") as disk, \
            _training(tmp_path, tiny_model, disk / "runs") as (proc, run_dir, _):
        _fill(disk)
        out = proc.communicate(timeout=90)[0].decode()
        assert proc.returncode == 1, out[-3000:]
        assert "Traceback" not in out.split("--- last lines of")[0], out[-3000:]
        assert "no space left on device" in out and "recorded as failed" in out, out[-3000:]
        manifest = _manifest(run_dir)
        assert manifest["status"] == "failed" and "no space left on device" in manifest["error"]
        assert not _wait_until_gone(run_dir)
