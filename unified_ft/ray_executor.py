"""Bake-off runs spread over a Ray cluster: one Ray task per (backend, repeat).

Each task runs uft's ordinary run on whichever node Ray gives it, and that run only supervises the
framework's own launcher in the framework's own environment, as `uft run` does. Ray chooses the machine (and
its GPUs); it trains nothing itself (Ray Train would replace the frameworks' launchers, and the runs would no
longer be the frameworks' own). A timed run asks for a whole node's CPUs, so no other run disturbs its
timing. The bake-off folder must be on storage every node sees (the runs write their run directories there).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import Problem, SpecError, UftError
from .spec import JobSpec

INSTALL_HINT = "pip install 'unified_ft[ray]'"


@dataclass
class RunTicket:
    """One (backend, repeat) run to do, and where its run directory goes."""

    backend: str
    repeat: int
    runs_root: str


@dataclass
class RunOutcome:
    """What a Ray task reports back: the run directory, or why it failed, and the node it ran on."""

    ticket: RunTicket
    run_dir: str | None
    error: str | None
    node: str


def import_ray() -> Any:
    """Ray, or one clear message with the install command."""
    try:
        import ray
    except ImportError:
        raise UftError(f"--executor ray needs Ray, which is not installed\n    fix: {INSTALL_HINT}") from None
    return ray


def check_spec(spec: JobSpec) -> None:
    """A bake-off task runs on one node: a multi-node spec would need several."""
    if spec.distributed.nodes > 1:
        raise SpecError("This spec cannot run as a Ray bake-off task", [Problem(
            "distributed.nodes", f"{spec.distributed.nodes} nodes: a Ray task of the bake-off runs on one node",
            "use nodes 1 (processes_per_node still spreads a run over the node's GPUs), or the local executor")])


def task_resources(nodes: list[dict[str, Any]], spec: JobSpec, timed: bool = True) -> dict[str, float]:
    """What one run asks Ray for: a whole node's CPUs when timed (the largest node's, so no run shares a
    node), one CPU otherwise; on a cluster with GPUs, one per process of the run."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    cpus = max((r.get("CPU", 1.0) for r in alive), default=1.0)
    resources = {"num_cpus": cpus if timed else 1.0}
    if any(r.get("GPU", 0) for r in alive):
        resources["num_gpus"] = float(spec.distributed.processes_per_node)
    return resources


def _run_ticket(spec_data: dict[str, Any], ticket: RunTicket) -> RunOutcome:
    """Inside a Ray worker: one ordinary uft run (its framework's own launcher), reported back as data."""
    import platform

    from .errors import RunFailed
    from .launch import run_job

    node = platform.node()
    try:
        run = run_job(JobSpec.model_validate(spec_data), ticket.backend, ticket.runs_root)
    except (RunFailed, UftError) as exc:
        return RunOutcome(ticket, None, str(exc), node)
    except Exception as exc:  # the evaluation or export after a finished training
        return RunOutcome(ticket, None, f"{type(exc).__name__}: {exc}", node)
    return RunOutcome(ticket, str(run.run_dir), None, node)


def run_on_ray(spec: JobSpec, tickets: list[RunTicket], address: str | None,
               on_done: Callable[[RunOutcome], None], timed: bool = True) -> None:
    """Every ticket as a Ray task; `on_done` as each one ends (in the order they end). Interrupted, the tasks
    still running are cancelled, and each one's framework dies with its worker."""
    ray = import_ray()
    check_spec(spec)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # ray.init replaces them
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UftError(f"could not reach the Ray cluster at {address or 'the local default'}: {exc}\n"
                           "    fix: start one (`ray start --head`) and give its address with --address") from None
    try:
        resources = task_resources(ray.nodes(), spec, timed)
        remote = ray.remote(max_retries=0, **resources)(_run_ticket)
        data = spec.model_dump(mode="json")
        pending = {remote.remote(data, ticket): ticket for ticket in tickets}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    on_done(ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
