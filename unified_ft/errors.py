"""Errors that mean "the user's input is wrong", as opposed to bugs.

Only the CLI turns these into exit codes; the library raises them. Each problem names where it is
(file, key or row), what was wrong and how to fix it, so a person can act without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what, and what to do instead."""

    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n    fix: {self.hint}" if self.hint else text


class UftError(Exception):
    """Base class of every error that is the user's input, not a bug (exit code 2)."""

    exit_code = 2


@dataclass
class ProblemsError(UftError):
    """Several problems found together, shown together."""

    title: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [self.title] + [f"  - {p}".replace("\n", "\n  ") for p in self.problems]
        return "\n".join(lines)


class SpecError(ProblemsError):
    """The job spec is malformed or inconsistent."""


class DataError(UftError):
    """A dataset file is missing, empty or has a bad row: names the file, row and field."""

    def __init__(self, path: object, message: str, *, row: int | None = None, field: str | None = None,
                 hint: str = "") -> None:
        self.path, self.row, self.field, self.hint = str(path), row, field, hint
        where = self.path + (f", row {row}" if row is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}" + (f"\n    fix: {hint}" if hint else ""))


class CapabilityError(ProblemsError):
    """The spec asks for something the chosen backend cannot do."""


class BackendNotFound(UftError):
    """No backend of that name is installed."""


class BackendInvalid(UftError):
    """An installed backend plugin does not implement the Backend protocol (names what it lacks)."""


class BackendNotReady(UftError):
    """The backend is known but its environment is missing (e.g. the [trl] extra)."""


class RunDirError(UftError):
    """A run or output directory would be overwritten or escapes its parent."""


class RunFailed(Exception):
    """The framework process failed; the run directory records it (exit code 1)."""

    exit_code = 1


class RunInterrupted(RunFailed):
    """The run was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT); recorded as interrupted.

    The exit code is the shell's convention for death by that signal: 128 + its number (130 for Ctrl-C).
    """

    exit_code = 130

    def __init__(self, message: str, signum: int = 2, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.signum, self.signal_name, self.exit_code = signum, signal_name, 128 + signum


class NotLikeTheSpec(RunFailed):
    """With --strict: the run finished, but the framework did not do what the spec says (exit code 1)."""

    exit_code = 1
