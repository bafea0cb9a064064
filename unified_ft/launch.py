"""Launching: plan, prepare data, translate, run the framework as a subprocess, collect, record.

Everything that can fail because of the input (spec, data, capabilities) fails before the framework
starts, and leaves no run directory behind. Once the framework starts, the run directory records
what happened: succeeded, failed (with the log tail) or interrupted (Ctrl-C is forwarded to the child).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .data import PreparedData, prepare_records
from .data import detect_format
from .data.hub import fetch_hub_dataset
from .data.mixing import sample_rows
from .errors import BackendNotReady, RunFailed, RunInterrupted
from .plan import Plan, make_plan
from .plugin import NativeJob
from .runs import Manifest, create_run_dir, ensure_empty_dir, sha256_text
from .spec import DatasetSpec, JobSpec
from .specfile import dump_spec

ProgressFn = Callable[[dict[str, Any]], None]


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


def prepare_data(spec: JobSpec, out_dir: Path) -> PreparedData:
    """The spec's datasets read, checked, mixed and split into canonical JSONL under `out_dir`."""
    d, seed = spec.data, spec.training.seed
    out_dir.mkdir(parents=True, exist_ok=True)

    def source(ds: DatasetSpec, label: str) -> tuple[str | Path, str, dict[str, str] | None]:
        """A local file (hub datasets fetched, `samples` drawn) and its format (`auto` told from the data)."""
        path: str | Path = ds.path or fetch_hub_dataset(ds.hub, ds.subset, ds.split, ds.hub_site)
        if ds.samples:
            path = sample_rows(path, ds.samples, seed, out_dir / f"sampled-{label}.jsonl")
        return path, detect_format(path) if ds.format == "auto" else ds.format, ds.columns or None

    train = [(*source(ds, f"train{i}"), ds.weight) for i, ds in enumerate(d.train)]
    eval_source = source(d.eval, "eval") if d.eval else None
    return prepare_records(train, eval_source, d.eval_split, seed, out_dir, spec.record_kind)


def translate_to(spec: JobSpec, backend_name: str, out_dir: str | Path) -> tuple[Plan, NativeJob]:
    """Eject: the native files for a spec in an empty folder, runnable without uft."""
    plan = _for_backend(make_plan(spec, backend_name))
    out = ensure_empty_dir(out_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="uft-data-") as tmp:
            data = prepare_data(plan.spec, Path(tmp))
            job = plan.backend.translate(plan.spec, data, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return plan, job


def _for_backend(plan: Plan, say: Callable[[str], None] | None = None) -> Plan:
    """A GGUF model becomes a cached safetensors folder for backends that cannot read GGUF."""
    from .models import for_backend

    plan.spec, derived = for_backend(plan.spec, plan.backend, say or (lambda message: None))
    if derived:
        plan.derived["model.path (for this backend)"] = derived
    return plan


def run_job(spec: JobSpec, backend_name: str = "trl", runs_dir: str | Path | None = None,
            on_progress: ProgressFn | None = None,
            on_eval_progress: Callable[[str], None] | None = None) -> RunResult:
    """Run one job to the end and return its result; raises RunFailed if the framework failed."""
    plan = make_plan(spec, backend_name)
    if not plan.environment.ready and plan.environment.creatable:
        from .envs import create_env

        create_env(plan.backend.env_recipe(), on_eval_progress or (lambda message: None))
        plan.environment = plan.backend.environment()
    if not plan.environment.ready:
        raise BackendNotReady(f"backend {backend_name} is not ready: {plan.environment.detail}\n"
                              f"    fix: {plan.environment.install_hint}")
    plan = _for_backend(plan, on_eval_progress)
    run_dir = create_run_dir(runs_dir or spec.runs_dir, spec.name, backend_name)
    try:
        data = prepare_data(plan.spec, run_dir / "data")
        job = plan.backend.translate(plan.spec, data, run_dir / "native")
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # our own fresh directory: an input error leaves nothing
        _remove_if_empty(run_dir.parent)
        raise
    spec_text = dump_spec(plan.spec)
    (run_dir / "spec.yaml").write_text(spec_text, encoding="utf-8")
    manifest = Manifest(
        run_dir, run_name=run_dir.parent.name, backend=backend_name, uft_version=__version__,
        spec_sha256=sha256_text(spec_text), data_sha256=data.sha256, train_rows=data.train_rows,
        eval_rows=data.eval_rows, seed=plan.spec.training.seed, derived=plan.derived, notes=plan.notes,
        command=job.argv, env_keys=sorted(job.env), environment=plan.environment.versions,
        python=sys.version.split()[0],
    )

    def forward(row: dict[str, Any]) -> None:
        mapped = plan.backend.progress(row)
        if mapped and on_progress:
            on_progress(mapped)

    try:
        exit_code = execute(job, run_dir / "logs", forward if on_progress else None)
    except KeyboardInterrupt:
        manifest.finish("interrupted", None)
        raise RunInterrupted(f"interrupted by Ctrl-C; the run is recorded as interrupted in {run_dir}") from None
    if exit_code != 0:
        status = "interrupted" if exit_code in (130, -signal.SIGINT) else "failed"
        tail = log_tail(run_dir / "logs" / "stderr.log")
        manifest.finish(status, exit_code, error_tail=tail)
        error = RunInterrupted if status == "interrupted" else RunFailed
        raise error(f"{backend_name} exited with code {exit_code}; run recorded as {status} in {run_dir}\n"
                    f"--- last lines of {run_dir / 'logs' / 'stderr.log'} ---\n{tail}")
    try:
        outputs = plan.backend.collect(run_dir, job)
    except Exception as exc:
        manifest.finish("failed", exit_code, error_tail=f"collecting outputs failed: {exc!r}")
        raise RunFailed(f"{backend_name} finished but its outputs could not be collected: {exc}; "
                        f"run recorded as failed in {run_dir}") from exc
    manifest.finish("succeeded", 0, versions=outputs.versions, final_metrics=outputs.final)
    result = RunResult(run_dir, "succeeded", 0, outputs.final, outputs.adapter_dir, notes=plan.notes)
    result.evaluation = _evaluate_after_run(plan.spec, data, run_dir, manifest, on_eval_progress)
    result.exports = _export_after_run(plan.spec, run_dir, manifest, on_eval_progress)
    return result


def _export_after_run(spec: JobSpec, run_dir: Path, manifest: Manifest,
                      say: Callable[[str], None] | None) -> list[Path]:
    """The spec's `export.formats`, each into run_dir/export/<format>/."""
    if not spec.export.formats:
        return []
    from .export import export_run

    folders = [export_run(run_dir, kind, on_progress=say) for kind in spec.export.formats]
    manifest.update(exports=[str(f) for f in folders])
    return folders


def _evaluate_after_run(spec: JobSpec, data: PreparedData, run_dir: Path, manifest: Manifest,
                        on_eval_progress: Callable[[str], None] | None):
    """The shared evaluation, unless the spec turns it off; the manifest says which."""
    if not spec.evaluation.enabled:
        manifest.update(evaluation="off (evaluation.enabled: false)")
        return None
    if data.eval_path is None:
        manifest.update(evaluation="skipped: no eval set (add data.eval or data.eval_split)")
        return None
    if spec.method.name == "rm":
        manifest.update(evaluation="skipped: a reward model scores answers; the shared evaluation judges "
                                   "generators (set evaluation.enabled: false to silence this)")
        return None
    from .evaluate import evaluate_run

    try:
        report = evaluate_run(run_dir, on_eval_progress)
    except KeyboardInterrupt:
        manifest.update(evaluation="interrupted (run `uft eval` on the run directory to evaluate it)")
        raise
    except Exception as exc:
        manifest.update(evaluation=f"failed: {exc}")
        raise
    manifest.update(evaluation=f"succeeded in {report.duration_s}s (eval.json)")
    return report


def execute(job: NativeJob, logs_dir: Path, on_progress: ProgressFn | None = None,
            poll_s: float = 0.5) -> int:
    """Run the native command, logs to files, progress from its JSONL log; Ctrl-C is passed on."""
    env = {**os.environ, **job.env}
    with (logs_dir / "stdout.log").open("wb") as out, (logs_dir / "stderr.log").open("wb") as err:
        child = subprocess.Popen(job.argv, cwd=job.cwd, env=env, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        follower = _Follower(job.log_file)
        try:
            while child.poll() is None:
                time.sleep(poll_s)
                follower.feed(on_progress)
            follower.feed(on_progress)
        except KeyboardInterrupt:
            stop(child)
            raise
    return child.returncode


def stop(child: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Forward Ctrl-C to the child's process group; kill it if it does not stop in time."""
    try:
        os.killpg(child.pid, signal.SIGINT)
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


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
        for line in complete.decode("utf-8").splitlines():
            if line.strip():
                on_progress(json.loads(line))


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass

