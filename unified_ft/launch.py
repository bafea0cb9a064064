"""Launching: plan, prepare data, translate, run the framework as a subprocess, collect, record.

Everything that can fail because of the input (spec, data, capabilities) fails before the framework
starts, and leaves no run directory behind. Once the framework starts, the run directory records
what happened: succeeded, failed (with the log tail, or the signal that killed it) or interrupted
(Ctrl-C, SIGTERM, SIGHUP or SIGQUIT to uft stop the framework's process group; see interrupts.py and
supervise.py, which runs the framework process itself).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .data import DatasetSource, PreparedData, detect_format, prepare_records
from .data.hub import fetch_hub_dataset
from .effective import Check, attach_probe, compare, differences, standard_metrics, write_effective
from .envs import described_versions
from .errors import BackendNotReady, CapabilityError, Problem, RunFailed, RunInterrupted, SpecError
from .interrupts import StopSignals, describe_death, signal_name, stop_signum
from .launchers import is_loopback
from .plan import Plan, make_plan
from .plugin import NativeJob, RunOutputs, eject_only_problem, final_metrics, load_backend
from .redact import env_secrets, is_secret_key, scrub_tree
from .runs import Manifest, create_run_dir, discard_run_dir, ensure_empty_dir, run_dir_errors, sha256_text
from .spec import DatasetSpec, JobSpec
from .specfile import dump_spec
from .supervise import ProgressFn, execute, log_tail


@dataclass
class RunResult:
    """What `run` returns: where the run is, how it ended, and its final metrics."""

    run_dir: Path
    status: str
    exit_code: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    adapter_dir: Path | None = None
    evaluation: Any = None  # the EvalReport of the shared evaluation, when it ran
    exports: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # emulated settings and what the backend cannot honour
    checks: list[Check] | None = None  # spec vs what the backend did (effective.json); None: not read back


def prepare_data(spec: JobSpec, out_dir: Path) -> PreparedData:
    """The spec's datasets read, checked, mixed and split into canonical JSONL under `out_dir`."""
    d, seed = spec.data, spec.training.seed
    out_dir.mkdir(parents=True, exist_ok=True)

    def source(ds: DatasetSpec) -> DatasetSource:
        """A local file (hub datasets fetched) and its format (`auto` told from the data); `samples` are drawn
        from the file itself while reading, so every message names the user's own file and row."""
        path: str | Path = ds.path or fetch_hub_dataset(ds.hub, ds.subset, ds.split, ds.hub_site)
        fmt = detect_format(path) if ds.format == "auto" else ds.format
        return DatasetSource(path, fmt, ds.columns or None, ds.weight, ds.samples, ds.first_rows)

    train = [source(ds) for ds in d.train]
    eval_source = source(d.eval) if d.eval else None
    return prepare_records(train, eval_source, d.eval_split, seed, out_dir, spec.record_kind, d.shuffle,
                           spec.template.system)


def translate_to(spec: JobSpec, backend_name: str, out_dir: str | Path,
                 launcher: str = "none") -> tuple[Plan, NativeJob]:
    """Eject: the native files for a spec in an empty folder, runnable without uft; with a launcher (slurm,
    skypilot) also its job file, which builds the environment and starts every node on a cluster."""
    plan = _for_backend(make_plan(spec, backend_name))
    out = ensure_empty_dir(out_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="uft-data-") as tmp:
            data = prepare_data(plan.spec, Path(tmp))
            job = plan.backend.translate(plan.spec, data, out)
            job.files += write_node_scripts(job)
            job.files += write_scheduler_files(plan, job, launcher)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return plan, job


def write_node_scripts(job: NativeJob) -> list[Path]:
    """launch_node<R>.sh for each node of a multi-node job: the framework's own launch line with that node's
    rank, to start on machine R (paths are this machine's; elsewhere use the framework's command there)."""
    written = []
    for node in job.nodes:
        env = {k: v for k, v in {**job.env, **node.env}.items() if not is_secret_key(k)}
        path = job.native_dir / f"launch_node{node.rank}.sh"
        path.write_text("#!/usr/bin/env bash\n"
                        f"# Node {node.rank} of {len(job.nodes)}: start this on machine {node.rank}; node 0 hosts "
                        "the rendezvous.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n"
                        + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
                        + shlex.join(node.argv) + "\n", encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written


def write_scheduler_files(plan: Plan, job: NativeJob, launcher: str) -> list[Path]:
    """The launcher's job file (and the lock it builds the environment from) in the native folder."""
    from .schedulers import scheduler_files

    files = scheduler_files(plan.spec, plan.backend.name, plan.backend.env_recipe(), job, launcher)
    written = []
    for name, text in files.texts.items():
        path = job.native_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for name, source in files.copies.items():
        written.append(Path(shutil.copyfile(source, job.native_dir / name)))
    return written


def refuse_remote_nodes(spec: JobSpec) -> None:
    """`uft run` starts a multi-node run only as a rehearsal on this machine (every node on the loopback
    address); uft runs no cluster of its own, so real nodes start the framework's launcher themselves."""
    d = spec.distributed
    if d.nodes > 1 and not is_loopback(d):
        raise SpecError("uft run cannot start the other machines of a multi-node run", [Problem(
            "distributed.rendezvous.endpoint", f"{d.rendezvous.endpoint} is not this machine's loopback address, "
            f"so nodes 1-{d.nodes - 1} run elsewhere",
            "write each node's launch script with `uft translate SPEC --backend B -o DIR` and start "
            "launch_node<R>.sh on machine R; or rehearse on one machine with endpoint 127.0.0.1:<port>")])


def _for_backend(plan: Plan, say: Callable[[str], None] | None = None) -> Plan:
    """A GGUF model becomes a cached safetensors folder for backends that cannot read GGUF."""
    from .models import for_backend

    plan.spec, derived = for_backend(plan.spec, plan.backend, say or (lambda message: None))
    if derived:
        plan.derived["model.path (for this backend)"] = derived
    return plan


def refuse_eject_only(backend: object) -> None:
    """`uft run` (and a bake-off) on a backend that uft only translates for is one clear refusal, before
    anything else is checked or written."""
    problem = eject_only_problem(backend)
    if problem is not None:
        raise SpecError(f"backend {problem.where.removeprefix('--backend ')} cannot be run by uft", [problem])


def ready_plan(plan: Plan, say: Callable[[str], None] | None = None) -> Plan:
    """A plan that can run here: refused if it needs a GPU this machine lacks, its environment built if missing."""
    name = plan.backend.name
    refuse_eject_only(plan.backend)
    if plan.needs_gpu and not plan.has_gpu:  # refused before an environment is built; plan/translate only note it
        raise CapabilityError(f"The spec asks for what backend {name} cannot do", plan.needs_gpu)
    if not plan.environment.ready and plan.environment.creatable:
        from .envs import create_env

        create_env(plan.backend.env_recipe(), say or (lambda message: None))
        plan.environment = plan.backend.environment()
    if not plan.environment.ready:
        raise BackendNotReady(f"backend {name} is not ready: {plan.environment.detail}\n"
                              f"    fix: {plan.environment.install_hint}")
    refuse_missing_deepspeed(plan)
    return _for_backend(plan, say)


def refuse_missing_deepspeed(plan: Plan) -> None:
    """strategy deepspeed needs the deepspeed package where the framework runs; uft's locks leave it out (it
    builds against the machine's CUDA toolkit), so a run says so before it starts instead of failing inside."""
    if plan.spec.distributed.strategy != "deepspeed" or _has_module(plan.backend, "deepspeed"):
        return
    recipe = plan.backend.env_recipe()
    where = f"uft's environment for {plan.backend.name}" if recipe else "uft's own environment"
    target = f"--python \"$(uft env path {plan.backend.name})/bin/python\" " if recipe else ""
    raise SpecError("DeepSpeed is not installed where the framework runs", [Problem(
        "distributed.strategy: deepspeed", f"{where} has no deepspeed package",
        f"install it there (uv pip install {target}deepspeed, on the GPU machine), or use distributed.strategy "
        "fsdp2")])


def _has_module(backend: Any, module: str) -> bool:
    """Whether `module` is importable in the backend's environment (its own uv environment, else uft's)."""
    recipe = backend.env_recipe()
    if recipe is None:
        import importlib.util

        return importlib.util.find_spec(module) is not None
    from .envs import env_dir

    return any(env_dir(recipe).glob(f"lib/python*/site-packages/{module}/__init__.py"))


def run_job(spec: JobSpec, backend_name: str = "trl", runs_dir: str | Path | None = None,
            on_progress: ProgressFn | None = None,
            on_eval_progress: Callable[[str], None] | None = None) -> RunResult:
    """Run one job to the end and return its result; raises RunFailed if the framework failed.

    Every way this can stop ends the same: SIGINT, SIGTERM, SIGHUP or SIGQUIT (from the main thread),
    an error inside uft, a failed evaluation or export; the framework's process group is stopped and
    the manifest records what happened (RunInterrupted carries the signal and exit code 128 + it).
    """
    with StopSignals() as stops:
        try:
            return _run_job(spec, backend_name, runs_dir, on_progress, on_eval_progress, stops)
        except KeyboardInterrupt as exc:  # before the framework started or after it ended
            signum = stop_signum(exc)
            raise RunInterrupted(f"stopped by {signal_name(signum)}; {backend_name} was not running, nothing was "
                                 "left behind", signum, signal_name(signum)) from None


def multi_process_env(job: NativeJob, has_gpu: bool) -> None:
    """What a framework's own multi-process launcher needs on this machine: torchrun beside the framework's
    command (LLaMA-Factory and ms-swift call it by name), and transformers told to go data parallel over gloo
    when there is no GPU."""
    job.env["PATH"] = os.pathsep.join([str(Path(job.argv[0]).parent), os.environ.get("PATH", "")])
    if not has_gpu:
        job.env["ACCELERATE_USE_CPU"] = "true"


def _run_job(spec: JobSpec, backend_name: str, runs_dir: str | Path | None, on_progress: ProgressFn | None,
             on_eval_progress: Callable[[str], None] | None, stops: StopSignals) -> RunResult:
    refuse_eject_only(load_backend(backend_name))
    refuse_remote_nodes(spec)
    plan = ready_plan(make_plan(spec, backend_name), on_eval_progress)
    runs_root = Path(runs_dir or spec.runs_dir)
    with run_dir_errors(runs_root):
        run_dir = create_run_dir(runs_root, spec.name, backend_name)
        try:
            data = prepare_data(plan.spec, run_dir / "data")
            job = plan.backend.translate(plan.spec, data, run_dir / "native")
            write_node_scripts(job)
            attach_probe(job, run_dir / "probe")
            if plan.spec.distributed.world_size > 1:
                multi_process_env(job, plan.has_gpu)
            spec_text = dump_spec(plan.spec)
            (run_dir / "spec.yaml").write_text(spec_text, encoding="utf-8")
            manifest = Manifest(
                run_dir, run_name=run_dir.parent.name, backend=backend_name, uft_version=__version__,
                spec_sha256=sha256_text(spec_text), data_sha256=data.sha256, train_rows=data.train_rows,
                eval_rows=data.eval_rows, seed=plan.spec.training.seed, derived=plan.derived, notes=plan.notes,
                command=job.argv, env_keys=sorted(job.env), environment=plan.environment.versions,
                python=sys.version.split()[0],
            )
        except BaseException:
            discard_run_dir(run_dir)  # our own fresh directory (and runs/ if we made it): an input error leaves nothing
            raise

    def forward(row: dict[str, Any]) -> None:
        mapped = plan.backend.progress(row)
        if mapped and on_progress:
            on_progress(mapped)

    exit_code = _train(job, run_dir, manifest, backend_name, forward if on_progress else None, stops)
    with stops.shielded():  # the framework has ended on its own: record how, whatever arrives meanwhile
        if exit_code != 0:
            raise _framework_failed(backend_name, exit_code, run_dir, manifest)
    try:
        with stops.held():  # a signal now waits until the outputs are collected and the run is recorded
            outputs, checks = _collect(plan, job, run_dir, manifest)
        result = RunResult(run_dir, "succeeded", 0, outputs.final, outputs.adapter_dir, notes=plan.notes,
                           checks=checks)
        result.evaluation = _evaluate_after_run(plan.spec, data, run_dir, manifest, on_eval_progress)
        result.exports = _export_after_run(plan.spec, run_dir, manifest, on_eval_progress)
    except KeyboardInterrupt as exc:
        signum = stop_signum(exc)
        raise RunInterrupted(f"stopped by {signal_name(signum)} after training; the trained run is kept in "
                             f"{run_dir} (its manifest says which stage was cut short)",
                             signum, signal_name(signum)) from None
    return result


def _train(job: NativeJob, run_dir: Path, manifest: Manifest, backend_name: str, forward: ProgressFn | None,
           stops: StopSignals) -> int:
    """Run the framework; however uft stops meanwhile, the framework is stopped and the manifest says why."""

    def on_stopping(exc: BaseException) -> None:
        """The framework was just told to stop: record why now, in case uft is killed while it winds down."""
        with stops.shielded():
            if isinstance(exc, KeyboardInterrupt):
                name = signal_name(stop_signum(exc))
                _record(manifest, "interrupted", None, signal=name, error=f"uft was stopped by {name}")
            else:
                _record(manifest, "failed", None, error=f"uft itself failed while {backend_name} ran: {exc!r}")

    started = time.monotonic()
    try:
        try:
            return execute(job, run_dir / "logs", forward, stops=stops, on_stopping=on_stopping)
        finally:
            manifest.data["framework_s"] = round(time.monotonic() - started, 3)  # saved with the outcome
            with stops.held():
                _scrub_secrets(run_dir, job)
    except KeyboardInterrupt as exc:
        signum = stop_signum(exc)
        with stops.shielded():
            if manifest.data["status"] == "running":  # the signal came just as the framework ended
                _record(manifest, "interrupted", None, signal=signal_name(signum),
                        error=f"uft was stopped by {signal_name(signum)}")
        raise RunInterrupted(f"stopped by {signal_name(signum)}; {backend_name} was stopped and the run is "
                             f"recorded as interrupted in {run_dir}", signum, signal_name(signum)) from None
    except Exception as exc:  # it could not start (no room for its logs), or uft itself failed while it ran
        started = manifest.data["status"] != "running"  # on_stopping has recorded it
        what = f"uft failed while {backend_name} ran" if started else f"{backend_name} could not be started"
        reason = _disk_trouble(exc) or (f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else None)
        with stops.shielded():
            unrecorded = "" if started else _record(manifest, "failed", None, error=f"{what}: {reason or exc!r}")
        if reason is None:
            raise  # a bug in uft: its traceback is what helps
        raise RunFailed(f"{what}: {reason}; run recorded as failed in {run_dir}{unrecorded}") from exc


def _collect(plan: Plan, job: NativeJob, run_dir: Path, manifest: Manifest) -> tuple[RunOutputs, list[Check] | None]:
    """The framework's outputs as standard ones with what it did against the spec (None: not read back), and
    the run recorded as succeeded (or failed, and raise)."""
    try:
        outputs = plan.backend.collect(run_dir, job)
    except Exception as exc:
        reason = _disk_trouble(exc) or str(exc)
        unrecorded = _record(manifest, "failed", 0, error=f"collecting outputs failed: {reason}",
                             error_tail=f"collecting outputs failed: {exc!r}")
        raise RunFailed(f"{plan.backend.name} finished but its outputs could not be collected: {reason}; "
                        f"run recorded as failed in {run_dir}{unrecorded}") from exc
    checks = _read_back(plan, run_dir, manifest, outputs)
    found = [c.setting for c in differences(checks)] if checks is not None else None
    manifest.finish("succeeded", 0, versions=outputs.versions, final_metrics=outputs.final,
                    effective_differences=found)
    return outputs, checks


def _read_back(plan: Plan, run_dir: Path, manifest: Manifest, outputs: RunOutputs) -> list[Check] | None:
    """effective.json from the probe, compared with the spec; metrics.jsonl and versions as the run itself
    recorded them. A read-back that fails is recorded and shown, never a failed run."""
    try:
        effective = plan.backend.effective(run_dir, plan.spec, manifest.data.get("train_rows"))
        write_effective(run_dir, effective)
        rows = standard_metrics(run_dir)
    except Exception as exc:  # the training succeeded; what uft could not read back is said, not raised
        manifest.update(effective=f"read-back failed: {exc!r}")
        return None
    if rows is not None:
        outputs.final.update(final_metrics(rows))
    if effective.versions:  # recorded by the run itself, inside the framework's environment
        recipe = plan.backend.env_recipe()
        outputs.versions = dict(effective.versions) if recipe is None else described_versions(effective.versions,
                                                                                             recipe)
    return compare(plan.spec, effective, plan.backend.name)


def _framework_failed(backend_name: str, exit_code: int, run_dir: Path, manifest: Manifest) -> RunFailed:
    """The framework ended badly on its own: named by its signal or exit code, a full disk said so."""
    interrupted = exit_code in (130, -signal.SIGINT)  # only a deliberate Ctrl-C-like stop sends SIGINT
    status = "interrupted" if interrupted else "failed"
    stderr_log = run_dir / "logs" / "stderr.log"
    tail = log_tail(stderr_log)
    reason = f"{backend_name} {describe_death(exit_code)}"
    if _disk_full(run_dir, tail):
        reason += "; no space left on device"
    extra = {"signal": signal_name(-exit_code)} if exit_code < 0 else {}
    unrecorded = _record(manifest, status, exit_code, error=reason, error_tail=tail, **extra)
    error = RunInterrupted if interrupted else RunFailed
    return error(f"{reason}; run recorded as {status} in {run_dir}{unrecorded}\n"
                 f"--- last lines of {stderr_log} ---\n{tail}")


def _record(manifest: Manifest, status: str, exit_code: int | None, **fields: Any) -> str:
    """Finish the manifest; "" when written, else a sentence to add to the message (the disk may be gone)."""
    try:
        manifest.finish(status, exit_code, **fields)
    except OSError as exc:
        return f" (but {manifest.path} could not be updated: {exc.strerror or exc})"
    return ""


def _disk_trouble(exc: BaseException) -> str | None:
    """"no space left on device (PATH)" for an OSError that means the disk is full, else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{exc.strerror.lower() if exc.strerror else 'no space left on device'} ({exc.filename})"
    return None


def _disk_full(path: Path, log_text: str) -> bool:
    """Whether a failure looks like a full disk: the log says so, or the run's file system has no room left."""
    if "No space left on device" in log_text or "Disk quota exceeded" in log_text:
        return True
    try:
        fs = os.statvfs(path)
    except OSError:
        return False
    blocks = fs.f_bfree if os.geteuid() == 0 else fs.f_bavail  # root may use the reserved blocks
    return blocks * fs.f_frsize < 1024 * 1024


def _export_after_run(spec: JobSpec, run_dir: Path, manifest: Manifest,
                      say: Callable[[str], None] | None) -> list[Path]:
    """The spec's `export.formats`, each into run_dir/export/<format>/."""
    if not spec.export.formats:
        return []
    from .export import export_run

    folders: list[Path] = []
    try:
        for kind in spec.export.formats:
            folders.append(export_run(run_dir, kind, on_progress=say))
    except KeyboardInterrupt as exc:
        manifest.update(exports=[str(f) for f in folders], export=f"interrupted by {signal_name(stop_signum(exc))} "
                        "(run `uft export` on the run directory to export it)")
        raise
    manifest.update(exports=[str(f) for f in folders])
    return folders


def _evaluate_after_run(spec: JobSpec, data: PreparedData, run_dir: Path, manifest: Manifest,
                        on_eval_progress: Callable[[str], None] | None):
    """The shared evaluation (a reward model's too: pairwise accuracy), unless the spec turns it off or there
    is no eval set; the manifest says which."""
    if not spec.evaluation.enabled:
        manifest.update(evaluation="off (evaluation.enabled: false)")
        return None
    if data.eval_path is None:
        manifest.update(evaluation="skipped: no eval set (add data.eval or data.eval_split)")
        return None
    from .evaluate import evaluate_run

    try:
        report = evaluate_run(run_dir, on_eval_progress)
    except KeyboardInterrupt as exc:
        manifest.update(evaluation=f"interrupted by {signal_name(stop_signum(exc))} (run `uft eval` on the run "
                                   "directory to evaluate it)")
        raise
    except Exception as exc:
        manifest.update(evaluation=f"failed: {exc}")
        raise
    manifest.update(evaluation=f"succeeded in {report.duration_s}s (eval.json)")
    return report


def _scrub_secrets(run_dir: Path, job: NativeJob) -> None:
    """Once the framework has exited, its logs and output folder lose any secret it echoed from its
    environment (the only place a secret lives): the run directory is what people share."""
    known = env_secrets(os.environ, job.env)
    for folder in (run_dir / "logs", job.native_dir / "output"):
        with contextlib.suppress(OSError):  # a full or read-only disk: the run's own outcome is what matters
            scrub_tree(folder, known)
