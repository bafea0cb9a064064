"""The bake-off: one spec on several backends, proven like-for-like from their own outputs, then reported.

Order of work, each stage before the next, so that nothing expensive starts on a comparison that cannot be fair:
1. every backend planned (every refusal of every backend listed together, before anything starts);
2. pre-flight: each backend's own command started with the trainer probe in pre-flight mode, which stops it
   as soon as its trainer is built and keeps the first step's samples as the framework's template, tokenizer
   and collator made them (checks 1-3 on those, before any training);
3. the runs, one at a time (so timings do not disturb each other), repeats interleaved across backends; a
   failed backend is recorded and the others go on; bakeoff.json is rewritten after every run, so an
   interrupted bake-off keeps what finished and `resume_bakeoff` runs only what is missing;
4. parity checks 1-9 on the runs' effective.json, measurements, comparisons, the report.

Layout of the bake-off folder: spec.yaml (as given), bakeoff.json, report.html, summary.md, preflight/<backend>/,
runs/repeat-<n>/<name>/<backend>/ (ordinary run directories: `uft inspect` and `uft eval` work on them).
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .comparison import (
    BackendResult,
    BakeoffResult,
    Comparison,
    Preflight,
    Stat,
    Verdict,
)
from .effective import Effective, attach_probe, load_effective, read_back, write_effective
from .errors import CapabilityError, Problem, RunFailed, RunInterrupted, SpecError, UftError
from .interrupts import StopSignals, signal_name, stop_signum
from .launch import prepare_data, ready_plan, run_job, translate_to
from .measure import LOWER_IS_BETTER, generations, loss_curve, measurements
from .parity import like_for_like, parity_checks, sample_checks
from .plan import Plan
from .plugin import backend_name_problem, eject_only_problem, load_backend
from .runs import now, read_json, sha256_text, write_json_atomic
from .spec import PREFERENCE_METHODS, JobSpec
from .specfile import dump_spec, load_spec
from .supervise import ProgressFn, execute, log_tail

BAKEOFF_FILE = "bakeoff.json"
#: Means closer than this (relative) are a tie: a float-level difference between frameworks is no win.
TIE = 1e-4
Say = Callable[[str], None]


class BakeoffNotLikeForLike(RunFailed):
    """With --strict: a parity check failed (exit code 1); bakeoff.json and the report say which."""

    exit_code = 1


def bakeoff(spec: JobSpec, backends: list[str], *, repeats: int = 1, strict: bool = False,
            out_dir: str | Path | None = None, warmup_steps: int | None = None, say: Say | None = None,
            on_progress: ProgressFn | None = None, executor: Executor | None = None) -> BakeoffResult:
    """Run `spec` on every backend and write bakeoff.json and report.html into `out_dir` (which must not exist).

    `say` gets a line per stage; `on_progress` each run's progress rows (step, loss, ...), tagged with `backend`
    and `repeat` (local executor only); `executor` spreads the runs over a Ray cluster (default: local).
    """
    names = check_backends(backends)
    if repeats < 1:
        raise UftError(f"--repeats must be 1 or more, not {repeats}")
    executor = executor or Executor()
    if executor.kind == "ray":
        from .ray_executor import check_spec, import_ray

        import_ray()  # before anything starts: the install command, not a half-made bake-off folder
        check_spec(spec)
    out = (Path(out_dir) if out_dir else Path(spec.runs_dir) / f"{spec.name}-bakeoff").expanduser().resolve()
    if out.exists():
        raise UftError(f"{out} exists; a bake-off never overwrites one\n    fix: `uft bakeoff --resume {out}` runs "
                       "what is missing there, or choose another folder with -o")
    plans = plan_all(spec, names)
    out.mkdir(parents=True)
    spec_text = dump_spec(spec)
    (out / "spec.yaml").write_text(spec_text, encoding="utf-8")
    result = BakeoffResult(name=spec.name, spec_sha256=sha256_text(spec_text), method=spec.method.name,
                           backends=names, repeats=repeats, strict=strict, executor=executor.kind,
                           created=now(), host=host_info(),
                           verdict=Verdict(like_for_like=False, judged_by=judged_by(spec)), preflight=Preflight(),
                           results=[BackendResult(backend=b, status="not run", notes=plans[b].notes) for b in names])
    _save(out, result)
    return _carry_on(spec, plans, result, out, warmup_steps, say or (lambda message: None), on_progress, executor)


@dataclass
class Executor:
    """Where the bake-off's runs run: `local` (one at a time, here) or `ray` (a Ray cluster at `address`, or
    the one RAY_ADDRESS names / a local one when None)."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None


def resume_bakeoff(out_dir: str | Path, *, warmup_steps: int | None = None, say: Say | None = None,
                   on_progress: ProgressFn | None = None, executor: Executor | None = None) -> BakeoffResult:
    """Go on with an interrupted (or partly failed) bake-off: only the runs that did not succeed run again."""
    out = Path(out_dir).expanduser().resolve()
    try:
        result = BakeoffResult.model_validate_json((out / BAKEOFF_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UftError(f"{out} is not a bake-off folder (no readable {BAKEOFF_FILE}: {exc})\n    fix: give the folder "
                       "that `uft bakeoff -o` wrote") from None
    spec = load_spec(out / "spec.yaml")
    plans = plan_all(spec, result.backends)
    result.finished = None
    executor = executor or Executor()
    result.executor = executor.kind
    return _carry_on(spec, plans, result, out, warmup_steps, say or (lambda message: None), on_progress, executor)


def check_backends(backends: list[str]) -> list[str]:
    """The backend list as given: at least two, each known, none repeated; every problem named together."""
    names = [b.strip() for b in backends if b.strip()]
    problems = [p for p in map(backend_name_problem, dict.fromkeys(names)) if p]
    repeated = sorted({b for b in names if names.count(b) > 1})
    if repeated:
        problems.append(Problem("--backends", f"{', '.join(repeated)} named more than once",
                                "name each backend once (use --repeats to run it several times)"))
    if len(dict.fromkeys(names)) < 2 and not problems:
        problems.append(Problem("--backends", f"a bake-off compares at least two backends, got {names or 'none'}",
                                "e.g. --backends trl,llamafactory,swift (see `uft backends --matrix`)"))
    if problems:
        raise SpecError("The bake-off's backend list is wrong", problems)
    return names


def plan_all(spec: JobSpec, backends: list[str]) -> dict[str, Plan]:
    """Every backend's plan, its native files written once to a scratch folder: what any backend cannot honour
    (its capabilities, its translator's refusals) is raised together, before anything starts."""
    plans: dict[str, Plan] = {}
    problems: list[Problem] = []
    for name in backends:
        refused = _eject_only(name)
        if refused is not None:
            problems.append(Problem(name, refused.message, refused.hint))
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="uft-bakeoff-") as scratch:
                plan = translate_to(spec, name, Path(scratch) / "native")[0]  # the translator's refusals too
        except CapabilityError as exc:
            problems += [Problem(f"{name}: {p.where}", p.message, p.hint) for p in exc.problems]
            continue
        except UftError as exc:
            problems.append(Problem(name, str(exc)))
            continue
        if plan.needs_gpu and not plan.has_gpu:
            problems += [Problem(f"{name}: {p.where}", p.message, p.hint) for p in plan.needs_gpu]
        elif not plan.environment.ready and not plan.environment.creatable:
            problems.append(Problem(name, f"not ready: {plan.environment.detail}", plan.environment.install_hint))
        plans[name] = plan
    if problems:
        raise CapabilityError("The spec cannot run on every backend of the bake-off (nothing was started)", problems)
    return plans


def _eject_only(name: str) -> Problem | None:
    """A backend that uft only translates for (axolotl) cannot take part; an unknown one is translate_to's to say."""
    try:
        return eject_only_problem(load_backend(name))
    except UftError:
        return None


def _carry_on(spec: JobSpec, plans: dict[str, Plan], result: BakeoffResult, out: Path, warmup: int | None,
              say: Say, on_progress: ProgressFn | None, executor: Executor) -> BakeoffResult:
    try:
        _preflight_all(spec, plans, result, out, say)
        if result.strict and like_for_like(result.preflight.checks):
            _finish(spec, result, out, warmup, say)
            raise BakeoffNotLikeForLike("pre-flight: not like-for-like, nothing was trained (--strict):\n  "
                                        + "\n  ".join(like_for_like(result.preflight.checks)))
        if executor.kind == "ray":
            _run_all_on_ray(spec, result, out, say, executor.address)
        else:
            _run_all(spec, result, out, say, on_progress)
    except KeyboardInterrupt as exc:
        name = signal_name(stop_signum(exc))
        _finish(spec, result, out, warmup, say)
        raise RunInterrupted(f"bake-off stopped by {name}; what finished is kept in {out}\n    fix: "
                             f"`uft bakeoff --resume {out}` runs what is missing", stop_signum(exc), name) from None
    except RunInterrupted:
        _finish(spec, result, out, warmup, say)
        raise
    _finish(spec, result, out, warmup, say)
    if result.strict and not result.verdict.like_for_like:
        raise BakeoffNotLikeForLike("not like-for-like (--strict):\n  " + "\n  ".join(result.verdict.reasons)
                                    + f"\n    the report: {out / 'report.html'}")
    return result


# -- pre-flight ---------------------------------------------------------------------------------------------

def _preflight_all(spec: JobSpec, plans: dict[str, Plan], result: BakeoffResult, out: Path, say: Say) -> None:
    """Each backend's first samples through its own template and collator, then checks 1-3 on them."""
    pre = result.preflight
    effectives: dict[str, Effective] = {}
    for name in result.backends:
        folder = out / "preflight" / name
        if name in pre.first_samples and (found := load_effective(folder)) is not None:
            effectives[name] = found  # a resumed bake-off keeps what its pre-flight already saw
            continue
        say(f"pre-flight {name}: rendering the first samples through its own template")
        _set_aside(folder)
        try:
            effectives[name] = preflight(plans[name], folder, say)
        except UftError as exc:
            pre.errors[name] = str(exc)
            continue
        pre.errors.pop(name, None)
        pre.first_samples[name] = [s.text or "" for s in effectives[name].samples.first_step[:3]]
    pre.checks = sample_checks(spec, effectives)
    _save(out, result)
    for line in like_for_like(pre.checks):
        say(f"pre-flight: not like-for-like: {line}")


def _set_aside(folder: Path) -> None:
    """An earlier pre-flight attempt (one that failed) keeps its files beside the new one: attempt-1, -2, ..."""
    if not folder.exists():
        return
    attempt = 1
    while folder.with_name(f"{folder.name}.attempt-{attempt}").exists():
        attempt += 1
    folder.rename(folder.with_name(f"{folder.name}.attempt-{attempt}"))


def preflight(plan: Plan, folder: Path, say: Say | None = None) -> Effective:
    """Start the backend's real command with the probe in pre-flight mode; what its trainer was about to train."""
    plan = ready_plan(plan, say)
    data = prepare_data(plan.spec, folder / "data")
    job = plan.backend.translate(plan.spec, data, folder / "native")
    attach_probe(job, folder / "probe")
    job.env["UFT_PROBE_PREFLIGHT"] = "1"
    (folder / "logs").mkdir(exist_ok=True)
    with StopSignals() as stops:
        code = execute(job, folder / "logs", stops=stops)
    effective = read_back(folder, plan.spec, plan.backend.name, data.train_rows)
    if code != 0 or not effective.samples.first_step:
        tail = log_tail(folder / "logs" / "stderr.log")
        why = f"exited with code {code}" if code != 0 else "built no training batch"
        raise UftError(f"{plan.backend.name} {why} in the pre-flight ({folder})\n--- last lines ---\n{tail}")
    write_effective(folder, effective)
    return effective


# -- the runs -----------------------------------------------------------------------------------------------

def _run_all(spec: JobSpec, result: BakeoffResult, out: Path, say: Say, on_progress: ProgressFn | None) -> None:
    """Repeats interleaved across backends (drift on the machine hits every backend alike); one at a time."""
    by_name = {r.backend: r for r in result.results}
    failed_now: set[str] = set()  # a backend that failed is not run again this time (a resume retries it)
    for repeat in range(1, result.repeats + 1):
        for name in result.backends:
            entry = by_name[name]
            entry.run_dirs = [str(d) for d in succeeded_runs(out, name)]
            if len(entry.run_dirs) >= repeat or name in failed_now:
                continue
            say(f"[repeat {repeat}/{result.repeats}] {name}: training")
            tagged = (lambda row, b=name, r=repeat: on_progress({**row, "backend": b, "repeat": r})) \
                if on_progress else None
            if not _run_one(spec, entry, out / "runs" / f"repeat-{repeat}", tagged, say):
                failed_now.add(name)
            _save(out, result)


def _run_all_on_ray(spec: JobSpec, result: BakeoffResult, out: Path, say: Say, address: str | None) -> None:
    """Every missing (backend, repeat) as one Ray task, all submitted at once; bakeoff.json after each ends."""
    from .ray_executor import RunOutcome, RunTicket, run_on_ray

    by_name = {r.backend: r for r in result.results}
    tickets = [RunTicket(name, repeat, str(out / "runs" / f"repeat-{repeat}"))
               for repeat in range(1, result.repeats + 1) for name in result.backends
               if len(succeeded_runs(out, name)) < repeat]
    for name in {t.backend for t in tickets}:
        by_name[name].status = "not run"

    def on_done(outcome: RunOutcome) -> None:
        entry, ticket = by_name[outcome.ticket.backend], outcome.ticket
        entry.run_dirs = [str(d) for d in succeeded_runs(out, entry.backend)]
        if outcome.error is None:
            if entry.status != "failed":
                entry.status, entry.error, entry.log_tail = "succeeded", None, None
            say(f"[repeat {ticket.repeat}/{result.repeats}] {ticket.backend}: done on {outcome.node}")
        else:
            _failed(entry, outcome.error)
            say(f"[repeat {ticket.repeat}/{result.repeats}] {ticket.backend} failed on {outcome.node}: "
                f"{outcome.error.splitlines()[0]}")
        _save(out, result)

    say(f"ray: {len(tickets)} runs submitted, one task per backend and repeat")
    run_on_ray(spec, tickets, address, on_done)


def _run_one(spec: JobSpec, entry: BackendResult, runs_root: Path, on_progress: ProgressFn | None,
             say: Say) -> bool:
    """One run of one backend; False (and the entry says why) when it failed. An interruption is raised."""
    try:
        run = run_job(spec, entry.backend, runs_root, on_progress, say)
    except RunInterrupted as exc:
        entry.status, entry.error = "interrupted", str(exc).splitlines()[0]
        raise
    except (RunFailed, UftError) as exc:
        _failed(entry, str(exc))
        say(f"{entry.backend} failed: {str(exc).splitlines()[0]}")
        return False
    except Exception as exc:  # the evaluation or export after a finished training
        _failed(entry, f"{type(exc).__name__}: {exc}")
        say(f"{entry.backend} failed after training: {exc}")
        return False
    entry.run_dirs.append(str(run.run_dir))
    entry.status, entry.error, entry.log_tail = "succeeded", None, None
    return True


def _failed(entry: BackendResult, error: str) -> None:
    """The error as uft reported it, split into the reason and the framework's log tail that RunFailed carries."""
    reason, found, rest = error.partition("\n--- last lines of ")
    entry.status, entry.error = "failed", reason
    entry.log_tail = rest.split(" ---\n", 1)[-1] if found else None


def succeeded_runs(out: Path, backend: str) -> list[Path]:
    """The bake-off's succeeded runs of one backend, one per repeat, in repeat order (read from their manifests)."""
    found: list[Path] = []
    for repeat_dir in sorted((out / "runs").glob("repeat-*"), key=lambda p: int(p.name.split("-")[1])):
        for manifest in sorted(repeat_dir.glob(f"*/{backend}/manifest.json")):
            if read_json(manifest).get("status") == "succeeded":
                found.append(manifest.parent)
                break
    return found


# -- what it all means ------------------------------------------------------------------------------------

def _finish(spec: JobSpec, result: BakeoffResult, out: Path, warmup: int | None, say: Say) -> None:
    """Parity, measurements, comparisons and the verdict from the runs on disk; bakeoff.json and the report."""
    effectives: dict[str, Effective] = {}
    for entry in result.results:
        dirs = [Path(d) for d in entry.run_dirs] or succeeded_runs(out, entry.backend)
        entry.run_dirs = [str(d) for d in dirs]
        if not dirs:
            continue
        if entry.status == "not run":
            entry.status = "succeeded" if len(dirs) >= result.repeats else entry.status
        first = dirs[0]
        manifest = read_json(first / "manifest.json")
        entry.command, entry.native_dir = list(manifest.get("command") or []), str(first / "native")
        entry.versions = {k: str(v) for k, v in (manifest.get("versions") or {}).items()}
        entry.loss_curves = [loss_curve(d) for d in dirs]
        entry.eval_loss_curves = [c for c in (loss_curve(d, "eval_loss") for d in dirs) if c]
        entry.measurements = measurements(dirs, warmup)
        entry.generations = generations(first)
        if (found := load_effective(first)) is not None:
            effectives[entry.backend] = found
    result.parity = parity_checks(spec, effectives, result.backends)
    result.comparisons = comparisons(result)
    reasons = like_for_like(result.parity)
    if len(effectives) < 2:  # the pre-flight is then all that was compared
        reasons += [f"pre-flight: {line}" for line in like_for_like(result.preflight.checks)]
        reasons.append(f"fewer than two backends finished ({', '.join(effectives) or 'none'}): nothing to compare "
                       "run against run")
    result.verdict = Verdict(like_for_like=not reasons, reasons=reasons, judged_by=judged_by(spec))
    result.finished = now()
    _save(out, result)
    from .report import markdown_summary, write_report

    write_report(result, out)
    (out / "summary.md").write_text(markdown_summary(result), encoding="utf-8")
    say(f"report: {out / 'report.html'}")


def comparisons(result: BakeoffResult) -> list[Comparison]:
    """Every measure across the backends that measured it: the best, and whether it is beyond the noise."""
    measured = {r.backend: r.measurements for r in result.results if r.measurements is not None}
    speed = [("wall_s", "lower"), ("first_step_s", "lower"), ("tokens_per_s", "higher"),
             ("supervised_tokens_per_s", "higher"), ("peak_memory_mb", "lower"), ("mfu", "higher"),
             ("final_loss", "lower")]
    rows: list[Comparison] = []
    for name, better in speed:
        rows.append(_compare(name, better, {b: getattr(m, name) for b, m in measured.items()}))
    eval_names = sorted({k for m in measured.values() for k in m.eval})
    for name in eval_names:
        better = "lower" if name in LOWER_IS_BETTER else "higher"
        rows.append(_compare(f"eval {name}", better, {b: m.eval.get(name) for b, m in measured.items()}))
    return [r for r in rows if r.values]


def _compare(measure: str, better: str, stats: dict[str, Stat | None]) -> Comparison:
    means = {b: s.mean for b, s in stats.items() if s is not None and s.mean is not None}
    ranked = sorted(means, key=lambda b: means[b], reverse=better == "higher")
    tie = len(ranked) >= 2 and math.isclose(means[ranked[0]], means[ranked[1]], rel_tol=TIE, abs_tol=1e-12)
    best = ranked[0] if len(ranked) >= 2 and not tie else None
    noise = None
    if best is not None:
        first, second = stats[ranked[0]], stats[ranked[1]]
        if first.spread is not None and second.spread is not None:
            noise = abs(first.mean - second.mean) <= first.spread + second.spread
    return Comparison(measure=measure, better=better, best=best, noise=noise, values=means)


def judged_by(spec: JobSpec) -> list[str]:
    """The eval measures that decide quality: the main metric (for preference methods and rm, their judges' own
    accuracy, see spec.py) and the margin or loss beside it."""
    name = spec.method.name
    second = "score_margin" if name == "rm" else "reward_margin" if name in PREFERENCE_METHODS else "loss"
    return [spec.evaluation.main_metric, second]


def host_info() -> dict[str, object]:
    info: dict[str, object] = {"machine": platform.machine(), "cores": os.cpu_count(), "python":
                               platform.python_version(), "system": platform.platform(terse=True)}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def _save(out: Path, result: BakeoffResult) -> None:
    write_json_atomic(out / BAKEOFF_FILE, result.model_dump(mode="json"))
