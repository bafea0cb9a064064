"""What `from unified_ft import ...` offers: the same behaviour as the CLI, as plain functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .comparison import BakeoffResult
from .errors import UftError
from .launch import ProgressFn, RunResult, run_job, translate_to
from .plan import Plan, make_plan
from .plugin import NativeJob
from .spec import JobSpec
from .specfile import load_spec, validate_spec_dict

SpecLike = JobSpec | str | Path | dict[str, Any]


def as_spec(spec: SpecLike) -> JobSpec:
    """Accept a JobSpec, a path to a spec file, or a plain dict."""
    if isinstance(spec, JobSpec):
        return spec
    if isinstance(spec, dict):
        return validate_spec_dict(spec)
    return load_spec(spec)


def validate(spec: SpecLike) -> JobSpec:
    """Validate a spec; raises SpecError listing every problem."""
    return as_spec(spec)


def plan(spec: SpecLike, backend: str = "trl") -> Plan:
    """The resolved spec for a backend, with what was derived; raises if the backend can't honour it."""
    return make_plan(as_spec(spec), backend)


def translate(spec: SpecLike, backend: str, out_dir: str | Path, launcher: str = "none") -> NativeJob:
    """Write the backend's native files into an empty folder (with a launcher, slurm or skypilot, also its job
    file); returns the command that runs them."""
    return translate_to(as_spec(spec), backend, out_dir, launcher)[1]


def run(spec: SpecLike, backend: str = "trl", runs_dir: str | Path | None = None,
        on_progress: ProgressFn | None = None) -> RunResult:
    """Run a job to the end; returns the run directory, status and final metrics.

    Raises RunFailed when the framework fails, RunInterrupted (with `signal_name`, `exit_code`) when
    Ctrl-C, SIGTERM, SIGHUP or SIGQUIT stop it: called from the main thread, uft catches those signals
    while the run is in progress (an ignored one stays ignored, a handler of yours stays yours) so
    that the framework's process group never outlives the call.
    """
    return run_job(as_spec(spec), backend, runs_dir, on_progress)


def bakeoff(spec: SpecLike | None, backends: list[str], repeats: int = 1, strict: bool = False,
            out_dir: str | Path | None = None, resume: str | Path | None = None,
            on_message: Callable[[str], None] | None = None) -> BakeoffResult:
    """One spec on several backends, like-for-like checked; writes bakeoff.json and report.html into `out_dir`.

    With `resume` (a bake-off folder), goes on with that one instead (its spec, backends and repeats).
    Raises BakeoffNotLikeForLike with `strict` when a parity check fails; a failed backend does not raise.
    """
    from .bakeoff_run import bakeoff as run_bakeoff
    from .bakeoff_run import resume_bakeoff

    if resume is not None:
        return resume_bakeoff(resume, say=on_message)
    if spec is None:
        raise UftError("give a spec, or resume= a bake-off folder")
    return run_bakeoff(as_spec(spec), backends, repeats=repeats, strict=strict, out_dir=out_dir, say=on_message)
