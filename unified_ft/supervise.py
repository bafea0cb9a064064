"""Supervising one framework process: its own session, logs to files, progress from its JSONL log, and
stopping its whole process group however uft's wait ends.

The framework runs in a session of its own, so a terminal's Ctrl-C reaches uft alone, which then stops
the framework on purpose (interrupts.py turns SIGTERM, SIGHUP and SIGQUIT into the same path). On Linux
the kernel is also asked to stop it if uft dies without a word (SIGKILL). Nothing here knows about run
directories or manifests: `launch` records what happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext, suppress
from functools import partial
from pathlib import Path
from typing import Any

from .interrupts import StopSignals, stop_signum
from .plugin import NativeJob
from .redact import env_secrets, redact_text

ProgressFn = Callable[[dict[str, Any]], None]
#: How often the framework's exit is checked; progress is read every `poll_s`. Sleeping `poll_s` between
#: checks kept every run waiting a quarter of a second on average after the framework had ended.
EXIT_POLL_S = 0.02


def execute(job: NativeJob, logs_dir: Path, on_progress: ProgressFn | None = None, poll_s: float = 0.5, *,
            stops: StopSignals | None = None, on_stopping: Callable[[BaseException], None] | None = None,
            grace_s: float = 30.0) -> int:
    """Run the native command in its own session, logs to files, progress from its JSONL log.

    A multi-node rehearsal on this machine (`job.nodes`) starts every node's launcher, each in its own
    session; when one fails, the others are stopped. Whatever ends uft's wait (Ctrl-C, a StopSignal, an error
    in uft itself) stops every process group first (see `stop`; `on_stopping(exc)` runs once they have been
    told), then goes on. Returns the framework's return code (negative: killed by that signal; for several
    nodes the first that failed). Nothing of its process groups is left running when this returns.
    """
    launches = [(n.argv, n.env, "" if n.rank == 0 else f"node{n.rank}-") for n in job.nodes] or [(job.argv, {}, "")]
    children: list[subprocess.Popen] = []
    with ExitStack() as files:
        with stops.held() if stops else nullcontext():  # a signal must not strike between start and `try`
            for argv, env, prefix in launches:
                out = files.enter_context((logs_dir / f"{prefix}stdout.log").open("wb"))
                err = files.enter_context((logs_dir / f"{prefix}stderr.log").open("wb"))
                children.append(subprocess.Popen(
                    dies_with_uft(argv), cwd=job.cwd, env={**os.environ, **job.env, **env}, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL, start_new_session=True))
            follower = _Follower(job.log_file)
        try:
            fed = time.monotonic()
            while _running(children):  # polled often, so uft ends right after the framework does
                time.sleep(min(EXIT_POLL_S, poll_s))
                if time.monotonic() - fed >= poll_s:
                    follower.feed(on_progress)
                    fed = time.monotonic()
            follower.feed(on_progress)
            for child in children:  # one node failed: the others would wait for it forever
                if child.poll() is None:
                    stop(child, signal.SIGTERM, grace_s)
        except BaseException as exc:
            told = partial(on_stopping, exc) if on_stopping else None
            for child in children:
                stop(child, _signal_to_pass_on(exc), grace_s, on_sent=told)
                told = None
            raise
        finally:
            for child in children:
                _kill_group(child.pid)  # stragglers: workers its leader left behind
    failed = [c.returncode for c in children if c.returncode != 0]
    return failed[0] if failed else 0


def _running(children: list[subprocess.Popen]) -> bool:
    """Until every process has ended, or one has failed."""
    codes = [c.poll() for c in children]
    return not any(code not in (None, 0) for code in codes) and any(code is None for code in codes)


#: Run in front of the framework on Linux: ask the kernel to send SIGTERM when uft dies (even by SIGKILL,
#: which no handler sees), then become the framework (exec keeps that request). Arguments: uft's pid, argv.
_PARENT_DEATH_SIGNAL = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):  # uft died before the request was made\n"
    "    sys.exit(143)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dies_with_uft(argv: list[str]) -> list[str]:
    """The command, wrapped (Linux) so the framework is stopped even if uft itself is SIGKILLed."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-c", _PARENT_DEATH_SIGNAL, str(os.getpid()), *argv]


def stop(child: subprocess.Popen, signum: int = signal.SIGINT, grace_s: float = 30.0,
         on_sent: Callable[[], None] | None = None) -> None:
    """Stop the child's process group: `signum` first, SIGKILL after `grace_s` seconds (or at once
    when a second interruption arrives while waiting). Returns when the child has been reaped."""
    _signal_group(child.pid, signum)
    try:
        if on_sent:
            on_sent()
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()
        _kill_group(child.pid)


def _signal_to_pass_on(exc: BaseException) -> int:
    """Ctrl-C goes on as SIGINT (frameworks save or clean up on KeyboardInterrupt); anything else as SIGTERM."""
    return signal.SIGINT if isinstance(exc, KeyboardInterrupt) and stop_signum(exc) == signal.SIGINT \
        else signal.SIGTERM


def _kill_group(pgid: int, timeout_s: float = 5.0) -> None:
    """SIGKILL what is left of a process group and wait (a little) until the kernel has removed it."""
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def _signal_group(pgid: int, signum: int) -> None:
    """Signal a process group that may already be gone."""
    with suppress(ProcessLookupError, PermissionError):  # gone (PermissionError: only zombies left, on macOS)
        os.killpg(pgid, signum)


class _Follower:
    """Reads rows appended to a JSONL file since the last call."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.offset = path, 0

    def feed(self, on_progress: ProgressFn | None) -> None:
        if on_progress is None or self.path is None or not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:  # a stray non-JSON line is the framework's business, not a reason to stop
                continue
            if isinstance(row, dict):
                on_progress(row)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, secrets redacted (they are shown in errors and kept in the manifest)."""
    if not path.exists():
        return ""
    tail = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return redact_text(tail, env_secrets())
