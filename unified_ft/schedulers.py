"""Cluster schedulers for a translated job: a Slurm batch script or a SkyPilot task, written beside the native files.

They run on another machine, so nothing of this one is in them: the backend's environment is built there from
the lock copied into the folder (`.venv-<backend>` inside it), the framework is called inside that environment,
and each node's rank and node 0's address come from the scheduler's own variables when the node starts
(`shell_launch` templates node 0's launch). Pure functions returning text; launch.py writes the files.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path, PurePath

from .envs import EnvRecipe
from .errors import Problem, SpecError
from .launchers import endpoint, shell_launch
from .plugin import NativeJob
from .redact import is_secret_key
from .spec import JobSpec

LAUNCHERS = ("none", "slurm", "skypilot")
DEFAULT_PORT = 29500
#: What the user replaces in sky.yaml: the accelerator type to rent (SkyPilot cannot guess the cloud's GPUs).
GPU_PLACEHOLDER = "YOUR_GPU"


@dataclass
class SchedulerFiles:
    """The files a launcher adds to the native folder: texts by name, and files copied in (the lock)."""

    texts: dict[str, str] = field(default_factory=dict)
    copies: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Environment:
    """How a node builds the backend's environment: the requirements file (copied into the folder) and the uv
    lines that install it into `venv`."""

    venv: str
    requirements: str
    python: str
    install: str  # "sync": an exact lock; "install": the trl extra's ranges


def scheduler_files(spec: JobSpec, backend: str, recipe: EnvRecipe | None, job: NativeJob,
                    launcher: str) -> SchedulerFiles:
    """job.sbatch (slurm) or sky.yaml (skypilot) for a translated job; nothing for `none`."""
    if launcher == "none":
        return SchedulerFiles()
    env, files = environment(backend, recipe)
    render = {"slurm": ("job.sbatch", sbatch), "skypilot": ("sky.yaml", sky_task)}
    if launcher not in render:
        raise SpecError(f"unknown launcher {launcher}", [Problem("--launcher", f"{launcher} is not one of "
                                                                 f"{', '.join(LAUNCHERS)}", "pick one of them")])
    name, fn = render[launcher]
    files.texts[name] = fn(spec, backend, env, node_lines(spec, backend, env, job), secret_names(job))
    return files


def environment(backend: str, recipe: EnvRecipe | None) -> tuple[Environment, SchedulerFiles]:
    """The backend's lock (PyPI's torch: the CUDA build a GPU cluster wants) copied in; trl, which runs in uft's
    own environment, gets the `unified_ft[trl]` extra's requirements instead."""
    venv = f".venv-{backend}"
    if recipe is not None:
        env = Environment(venv, recipe.lock.name, lock_python(recipe.lock), "sync")
        return env, SchedulerFiles(copies={recipe.lock.name: recipe.lock})
    if backend != "trl":
        raise SpecError(f"backend {backend} has no environment uft can build on a cluster", [Problem(
            "--launcher", f"{backend} has no lock of its environment in uft to rebuild on the cluster's nodes",
            "translate without --launcher and install the framework on the cluster yourself")])
    env = Environment(venv, "requirements-trl.txt", f"{sys.version_info.major}.{sys.version_info.minor}", "install")
    return env, SchedulerFiles(texts={env.requirements: trl_requirements()})


def lock_python(lock: Path) -> str:
    """The Python version the lock was compiled for (`uv pip compile --python-version X.Y`), else uft's own."""
    found = re.search(r"--python-version[ =](\d+\.\d+)", lock.read_text(encoding="utf-8")[:2000])
    return found.group(1) if found else f"{sys.version_info.major}.{sys.version_info.minor}"


def trl_requirements() -> str:
    """The `unified_ft[trl]` extra (what the README installs for trl), as a requirements file."""
    from packaging.requirements import Requirement

    try:
        declared = requires("unified_ft") or []
    except PackageNotFoundError:  # pragma: no cover - uft always runs installed
        declared = []
    lines = []
    for text in declared:
        req = Requirement(text)
        if req.marker is not None and req.marker.evaluate({"extra": "trl"}) and not req.marker.evaluate({"extra": ""}):
            lines.append(f"{req.name}{req.specifier}")
    return "# trl's environment for this job: the unified_ft[trl] extra (trl has no lock of its own).\n" + \
        "\n".join(lines) + "\n"


def setup_lines(env: Environment) -> list[str]:
    """uv lines that build the environment inside this folder (reused when it is already there)."""
    python = f"{env.venv}/bin/python"
    install = (f"uv pip sync --python {python} {env.requirements}" if env.install == "sync"
               else f"uv pip install --python {python} -r {env.requirements}")
    return [f"[ -x {python} ] || uv venv --python {env.python} {env.venv}", install]


def portable_program(argv0: str, env: Environment) -> str:
    """The framework's command inside the environment the scheduler builds, not this machine's path to it."""
    if not PurePath(argv0).is_absolute():
        return argv0
    name = PurePath(argv0).name
    return f"{env.venv}/bin/{'python' if name.startswith('python') else name}"


def node_lines(spec: JobSpec, backend: str, env: Environment, job: NativeJob) -> list[str]:
    """What every node runs once NODE_RANK, MASTER_ADDR and MASTER_PORT are set: node 0's launch, templated."""
    node0 = job.nodes[0] if job.nodes else None
    argv = node0.argv if node0 else job.argv
    merged = {**job.env, **(node0.env if node0 else {})}
    kept = {k: v for k, v in merged.items() if not is_secret_key(k) and k != "PATH"}
    lines, ranked = shell_launch([portable_program(argv[0], env), *argv[1:]], kept)
    if spec.distributed.nodes > 1 and not ranked:
        raise SpecError(f"{backend}'s launch cannot be started by a scheduler", [Problem(
            "distributed.nodes", f"{backend}'s node launch has no node rank uft knows how to set at run time",
            "translate without --launcher and start launch_node<R>.sh on machine R")])
    return [f'export PATH="$PWD/{env.venv}/bin:$PATH"', *lines]


def secret_names(job: NativeJob) -> list[str]:
    """Secret variables the job needs but no file holds: the scheduler passes them from the submitter."""
    keys = {**job.env, **(job.nodes[0].env if job.nodes else {})}
    return sorted(k for k in keys if is_secret_key(k))


def rendezvous_port(spec: JobSpec) -> int:
    """The spec's rendezvous port; a single-node spec without one gets torch's usual 29500."""
    return endpoint(spec.distributed)[1] or DEFAULT_PORT


def job_name(spec: JobSpec) -> str:
    """spec.name as a scheduler job name (letters, digits, `._-`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec.name).strip("-") or "uft-job"


def sbatch(spec: JobSpec, backend: str, env: Environment, lines: list[str], secrets: list[str]) -> str:
    """job.sbatch: the environment built once in this (shared) folder, then one srun task per node."""
    d = spec.distributed
    # The first host through `sed -n 1p`, which reads every line: `head -n1` may close the pipe while the
    # writer still writes, and the SIGPIPE fails the task under pipefail.
    task = ["set -euo pipefail", 'NODE_RANK="$SLURM_NODEID"',
            'MASTER_ADDR="$(scontrol show hostnames "$SLURM_NODELIST" | sed -n 1p)"',
            f"MASTER_PORT={rendezvous_port(spec)}", *lines]
    head = [
        "#!/usr/bin/env bash",
        f"# Slurm job for uft spec {spec.name!r} on {backend}, written by uft: sbatch job.sbatch, from this folder",
        "# on a filesystem every node shares. It builds the environment here with uv (from "
        f"{env.requirements}),",
        "# then starts one task per node: the framework's own multi-node launch, with the node's rank",
        "# (SLURM_NODEID) and the first allocated node as the rendezvous host.",
        f"#SBATCH --job-name={job_name(spec)}",
        f"#SBATCH --nodes={d.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={d.processes_per_node}",
    ]
    body = ["set -euo pipefail", 'cd "${SLURM_SUBMIT_DIR:-.}"',
            'command -v uv >/dev/null || { echo "job.sbatch needs uv (https://docs.astral.sh/uv/)" >&2; exit 1; }',
            *setup_lines(env)]
    if secrets:
        body.append(f"# not written here (secret): {', '.join(secrets)}; export them before sbatch, srun passes "
                    "them on")
    body.append("srun --ntasks-per-node=1 bash -c " + shlex.quote("\n" + "\n".join(task) + "\n"))
    return "\n".join([*head, *body]) + "\n"


def sky_task(spec: JobSpec, backend: str, env: Environment, lines: list[str], secrets: list[str]) -> str:
    """sky.yaml: num_nodes machines with processes_per_node GPUs each; setup builds the environment on each."""
    d = spec.distributed
    setup = ["set -euo pipefail",
             "command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh",
             'export PATH="$HOME/.local/bin:$PATH"', *setup_lines(env)]
    run = ["set -euo pipefail", 'NODE_RANK="$SKYPILOT_NODE_RANK"',
           'MASTER_ADDR="$(echo "$SKYPILOT_NODE_IPS" | sed -n 1p)"',  # not head -n1: see sbatch
           f"MASTER_PORT={rendezvous_port(spec)}", *lines]
    secret = ([f"# not written here (secret): {', '.join(secrets)}; pass them from your shell: sky launch "
               + " ".join(f"--env {k}" for k in secrets) + " sky.yaml"] if secrets else [])
    return "\n".join([
        f"# SkyPilot task for uft spec {spec.name!r} on {backend}, written by uft: sky launch sky.yaml (from this",
        "# folder, which SkyPilot copies to every node as the working directory).",
        f"# Edit {GPU_PLACEHOLDER}: the accelerator type to rent on each node (`sky show-gpus` lists them); the count",
        "# is the spec's distributed.processes_per_node.",
        *secret,
        f"name: {json.dumps(job_name(spec))}",
        f"num_nodes: {d.nodes}",
        "resources:",
        f"  accelerators: {GPU_PLACEHOLDER}:{d.processes_per_node}",
        "workdir: .",
        "setup: |",
        *(f"  {line}" for line in setup),
        "run: |",
        *(f"  {line}" for line in run),
    ]) + "\n"
