"""Stopping a run cleanly: the signals that end uft become an exception, and a child's death is named.

The framework runs in its own session (so a terminal's Ctrl-C reaches uft alone, which then stops the
framework on purpose). That means nothing else stops it: if uft died of SIGTERM (a scheduler), SIGHUP
(a closed terminal or a dropped SSH session) or SIGQUIT, the framework would keep training with nobody
watching. So while a run is in progress, `StopSignals` turns those signals into `StopSignal`, a
KeyboardInterrupt, which unwinds the run like Ctrl-C does: every `except KeyboardInterrupt` cleanup
runs, the child's process group is stopped and the manifest says "interrupted".
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

CAUGHT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

# Negative Popen return codes (death by a signal) and what a person should suspect.
_DEATH_HINTS = {
    "SIGKILL": "out of memory? the kernel's OOM killer sends SIGKILL; see `dmesg`",
    "SIGSEGV": "a crash in native code (a CUDA or library bug, or a version mismatch)",
    "SIGBUS": "a crash in native code, often a memory-mapped file that vanished or a full /dev/shm",
    "SIGABRT": "the framework aborted (a failed assertion in native code)",
    "SIGILL": "an illegal instruction: a binary built for another CPU",
    "SIGFPE": "a floating-point exception in native code",
    "SIGXCPU": "the CPU-time limit (ulimit -t) was reached",
    "SIGXFSZ": "the file-size limit (ulimit -f) was reached",
}


def signal_name(signum: int) -> str:
    """SIGTERM for 15; `signal 99` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignal(KeyboardInterrupt):
    """uft was told to stop by a signal while a run was in progress.

    A KeyboardInterrupt on purpose: no `except Exception` swallows it, and every cleanup written for
    Ctrl-C also runs for SIGTERM, SIGHUP and SIGQUIT.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal_name(signum)
        super().__init__(f"stopped by {self.name}")


def stop_signum(exc: BaseException) -> int:
    """The signal behind an interruption: a StopSignal says which; a bare KeyboardInterrupt is SIGINT."""
    return getattr(exc, "signum", signal.SIGINT)


def describe_death(returncode: int) -> str:
    """What a Popen return code means, in words: `killed by SIGKILL (out of memory? ...)`, or `exit code 3`."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    name = signal_name(-returncode)
    hint = _DEATH_HINTS.get(name)
    return f"was killed by {name}" + (f" ({hint})" if hint else "")


class StopSignals:
    """Context manager: while it is active, SIGINT/SIGTERM/SIGHUP/SIGQUIT raise StopSignal.

    It installs handlers only from the main thread (Python allows no other) and only over the
    default behaviour: a signal that is ignored (`nohup` ignores SIGHUP) stays ignored, and a handler
    the caller installed stays theirs; the previous handlers come back on exit. A first signal that
    arrives inside `held()` (while a process is being started, or the manifest written) is raised
    when the block ends; a second signal while stopping raises again, so a second Ctrl-C during the
    grace period escalates to SIGKILL.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._held = 0
        self._pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in CAUGHT_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            if current is signal.SIG_DFL or current is signal.default_int_handler:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self._held:
            if first:
                self._pending = signum
            return
        raise StopSignal(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        """A block that a signal must not cut in half; the first signal sent during it is raised after."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self._pending is not None:
            signum, self._pending = self._pending, None
            raise StopSignal(signum)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A cleanup block (recording an interruption already under way): signals during it are dropped."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            self._pending = None
