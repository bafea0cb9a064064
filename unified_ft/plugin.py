"""The Backend interface, the features a spec uses, and how backends are found.

Built-in and third-party backends are found the same way: the entry-point group `unified_ft.backends`,
with a lazy name -> "module:Class" table for the built-ins so that listing backends imports nothing heavy.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from .errors import BackendNotFound, CapabilityError, Problem, SpecError, UftError
from .redact import env_secrets, redact_text
from .spec import JobSpec, LoraFamilyAdapter

ENTRY_POINT_GROUP = "unified_ft.backends"

#: Built-in backends: name -> "module:Class", imported only when asked for.
BUILTIN_BACKENDS = {"trl": "unified_ft.backends.trl:TrlBackend",
                    "llamafactory": "unified_ft.backends.llamafactory:LlamaFactoryBackend",
                    "swift": "unified_ft.backends.swift:SwiftBackend"}

#: Backends the project plans; asking for one says so instead of "unknown".
PLANNED_BACKENDS = ("unsloth", "colossalai")

Level = Literal["native", "emulated", "unsupported"]

#: What a framework saves beside the trained weights that stays in native/output/, out of the adapter/ and
#: model/ folders people share: training_args.bin pickles every TrainingArguments value (hub_token,
#: model_init_kwargs, local paths), and loading a pickle runs code.
NOT_SHARED = ("training_args.bin",)


@dataclass(frozen=True)
class Capability:
    """How a backend handles one spec feature; `note` says how (emulated) or why not (unsupported)."""

    level: Level
    note: str = ""
    needs_gpu: bool = False


NATIVE = Capability("native")


@dataclass
class EnvStatus:
    """Whether a backend's environment can run it now, and what to do if not."""

    ready: bool
    detail: str
    versions: dict[str, str] = field(default_factory=dict)
    install_hint: str = ""
    creatable: bool = False  # uft can build it (an isolated environment from a lock)


@dataclass
class NativeJob:
    """What a translator produced: files in the native folder and the exact command that runs them."""

    native_dir: Path
    files: list[Path]
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    log_file: Path | None = None  # JSONL the framework writes while training (for progress)

    @property
    def command(self) -> str:
        import shlex

        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


@dataclass
class RunOutputs:
    """The standard outputs `collect` leaves in a run directory, whatever framework ran."""

    adapter_dir: Path | None
    metrics_path: Path
    final: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    checks: Any = None  # filled by launch: spec vs what the backend did


@runtime_checkable
class Backend(Protocol):
    """A framework plugin. `translate` is pure (no framework import) so it runs and is tested anywhere."""

    name: str
    capabilities: dict[str, Capability]

    def environment(self) -> EnvStatus: ...

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob: ...

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None: ...

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs: ...


def final_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run summary every backend reports from its standard metrics rows."""
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    summary = {"steps": rows[-1]["step"] if rows else 0, "first_loss": losses[0] if losses else None,
               "final_loss": losses[-1] if losses else None}
    evals = [r["eval_loss"] for r in rows if r.get("eval_loss") is not None]
    if evals:
        summary["eval_loss"] = evals[-1]
    return summary


def single_answers(record: dict[str, Any], backend: str, source: object) -> None:
    """Frameworks that take one chosen and one rejected message per preference row refuse anything longer."""
    if "chosen" in record and (len(record["chosen"]) != 1 or len(record["rejected"]) != 1):
        raise SpecError(f"{backend} takes one chosen and one rejected message per row", [Problem(
            str(source), "a preference row has a multi-message chosen/rejected answer",
            "use the trl backend for multi-turn preference answers")])


def run_native_check(backend: str, argv: list[str], cwd: Path, timeout_s: int = 600) -> None:
    """Run a framework's own argument parsing on translated files; its complaint becomes a clear error."""
    import subprocess

    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        lines = [redact_text(line, env_secrets()) for line in done.stderr.strip().splitlines() if line.strip()]
        raise UftError(f"{backend} rejects the translated config in {cwd}: {lines[-1] if lines else 'no message'}\n"
                       "    fix: correct the spec or backend_options (the framework's own parser said this)")


def merge_passthrough(spec: JobSpec, backend: str, native: dict[str, Any],
                      overridable: Mapping[str, str] | None = None) -> list[str]:
    """Add `backend_options.<backend>` to a native config; a key uft already writes from the spec is an error
    (the spec's own setting must win visibly, not be overridden), except the backend's declared `overridable`
    keys (key -> why; see `override_notes`, which shows each override in the plan). Returns the passed-through
    keys."""
    passthrough = spec.backend_options.get(backend, {})
    clashes = sorted(set(passthrough) & set(native) - set(overridable or {}))
    if clashes:
        raise SpecError(f"backend_options.{backend} repeats settings the spec already models", [
            Problem(f"backend_options.{backend}.{key}", "is written by uft from the portable spec",
                    "set it through the spec's own key (see `uft plan` for the mapping)") for key in clashes])
    native.update(passthrough)
    return sorted(passthrough)


def override_notes(spec: JobSpec, backend: str, uft_values: Mapping[str, Any],
                   overridable: Mapping[str, str]) -> list[str]:
    """One plan note per declared-overridable key that `backend_options.<backend>` sets: never silently.
    `uft_values` holds what uft writes for this spec (None: derived at translation, e.g. from config.json)."""
    notes = []
    for key in sorted(set(spec.backend_options.get(backend, {})) & set(overridable) & set(uft_values)):
        value = f"uft's value {uft_values[key]}" if uft_values.get(key) is not None else "uft's own value"
        notes.append(f"backend_options.{backend}.{key} overrides {value} ({overridable[key]})")
    return notes


def known_backends() -> list[str]:
    """Names `backend_options` may use: the installed backends and the planned ones."""
    return [*available_backends(), *PLANNED_BACKENDS]


def backend_name_problem(name: object) -> Problem | None:
    """`backend_options.<name>` for a backend that does not exist (a typo such as `swfit`) would never be used."""
    known = known_backends()
    if name in known:
        return None
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + f"backends: {', '.join(available_backends())}" + (
        f" (planned: {', '.join(PLANNED_BACKENDS)})" if PLANNED_BACKENDS else "")
    return Problem(f"backend_options.{name}", f"{name!r} names no backend, so these options would never be used",
                   hint)


def unused_options_notes(spec: JobSpec, backend: str) -> list[str]:
    """Options kept for other backends are fine (one spec, many backends), but the plan says they are not used."""
    return [f"backend_options.{name} is not used by backend {backend}" for name in sorted(spec.backend_options)
            if name != backend]


def spec_features(spec: JobSpec) -> dict[str, str]:
    """The features a spec uses, each mapped to the setting that asks for it (for error messages)."""
    feats = {
        f"method.{spec.method.name}": f"method: {spec.method.name}",
        f"adapter.{spec.adapter.type}": f"adapter.type: {spec.adapter.type}",
        f"optimizer.{spec.training.optimizer}": f"training.optimizer: {spec.training.optimizer}",
        f"precision.{spec.training.precision}": f"training.precision: {spec.training.precision}",
        f"scheduler.{spec.training.lr_scheduler}": f"training.lr_scheduler: {spec.training.lr_scheduler}",
    }
    if spec.method.name != "pt":  # plain-text pretraining renders no chat
        feats[f"template.{spec.template.name}"] = f"template: {spec.template.name}"
    feats.update(_lora_features(spec.adapter))
    if spec.data.packing:
        feats["data.packing"] = "data.packing: true"
    if spec.data.train_on_prompt:
        feats["data.train_on_prompt"] = "data.train_on_prompt: true"
    if len(spec.data.train) > 1:
        feats["data.mixing"] = "several data.train datasets"
    if spec.training.gradient_checkpointing:
        feats["training.gradient_checkpointing"] = "training.gradient_checkpointing: true"
    for tracker in spec.training.report_to:
        if tracker != "none":
            feats[f"report_to.{tracker}"] = f"training.report_to: {tracker}"
    if spec.model.trust_remote_code:
        feats["model.trust_remote_code"] = "model.trust_remote_code: true"
    if spec.model.gguf_file:
        feats["model.gguf"] = "model.gguf_file"
    loss_type = getattr(spec.method, "loss_type", None)  # dpo and kto have one
    if loss_type is not None:
        feats[f"loss_type.{spec.method.name}.{loss_type}"] = f"method.loss_type: {loss_type}"
    return feats


def _lora_features(adapter: Any) -> dict[str, str]:
    """The LoRA variants a lora/qlora/dora adapter asks for (other adapter types have none)."""
    if not isinstance(adapter, LoraFamilyAdapter):
        return {}
    feats = {}
    if adapter.rslora:
        feats["adapter.rslora"] = "adapter.rslora: true"
    if adapter.loraplus_lr_ratio is not None:
        feats["adapter.loraplus"] = "adapter.loraplus_lr_ratio"
    if adapter.init == "pissa":
        feats["adapter.pissa"] = "adapter.init: pissa"
    if adapter.use_dora and adapter.type != "dora":
        feats["adapter.dora"] = "adapter.use_dora: true"
    return feats


def loss_type_capabilities(supported: dict[str, tuple[str, ...]], framework: str) -> dict[str, Capability]:
    """One capability per loss type the spec knows (`loss_type.<method>.<loss>`): native where the
    framework's release has that loss, unsupported (saying so) where it has not."""
    from .spec import LOSS_TYPES

    table = {}
    for method, losses in LOSS_TYPES.items():
        for loss in losses:
            native = loss in supported.get(method, ())
            table[f"loss_type.{method}.{loss}"] = NATIVE if native else Capability(
                "unsupported", f"{framework} has no {method} loss {loss!r}")
    return table


def check_capabilities(spec: JobSpec, backend: Backend, has_gpu: bool) -> list[str]:
    """Fail before anything starts if the backend can't honour a setting (or, without a GPU, run one that
    needs it); return notes on emulated ones."""
    problems, notes = [], []
    for feature, setting in spec_features(spec).items():
        cap = backend.capabilities.get(feature, Capability("unsupported", "not declared by this backend"))
        if cap.level == "unsupported":
            others = [n for n in supporting_backends(feature) if n != backend.name]
            alt = f"backends that support it: {', '.join(others)}" if others else "no installed backend supports it"
            problems.append(Problem(setting, f"backend {backend.name} does not support {feature}"
                                    + (f" ({cap.note})" if cap.note else ""), alt))
        elif cap.level == "emulated":
            notes.append(f"{setting}: emulated by {backend.name} ({cap.note})")
    if not has_gpu:
        problems += gpu_problems(spec, backend)
    if problems:
        raise CapabilityError(f"The spec asks for what backend {backend.name} cannot do", problems)
    return notes


def gpu_problems(spec: JobSpec, backend: Backend) -> list[Problem]:
    """The settings that need a CUDA GPU on this backend: `uft run` refuses them on a machine without one,
    while translate and plan still write the files (a GPU job can be prepared on a laptop)."""
    problems = []
    for feature, setting in spec_features(spec).items():
        cap = backend.capabilities.get(feature)
        if cap is not None and cap.level != "unsupported" and cap.needs_gpu:
            problems.append(Problem(setting, f"{feature} needs a CUDA GPU and this machine has none",
                                    "run it on a GPU machine, or use adapter.type lora / a non-8-bit optimizer"))
    return problems


def supporting_backends(feature: str) -> list[str]:
    """Installed backends whose capability table marks `feature` native or emulated."""
    names = []
    for name in available_backends():
        try:
            cap = load_backend(name).capabilities.get(feature)
        except UftError:
            continue
        if cap and cap.level != "unsupported":
            names.append(name)
    return names


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of every backend that can be loaded: built-ins plus installed plugins."""
    return sorted({**BUILTIN_BACKENDS, **_entry_points()})


def load_backend(name: str) -> Backend:
    """Instantiate a backend by name; an unknown name lists what exists and how to get it."""
    target = _entry_points().get(name) or BUILTIN_BACKENDS.get(name)
    if target is None:
        known = ", ".join(available_backends())
        if name in PLANNED_BACKENDS:
            raise BackendNotFound(f"backend {name!r} is not available in this version of uft yet; "
                                  f"available: {known}")
        raise BackendNotFound(f"unknown backend {name!r}; available: {known} "
                              f"(third-party backends register the entry point group {ENTRY_POINT_GROUP!r})")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendNotFound(f"backend {name!r} ({target}) could not be imported: {exc}") from None
    return getattr(module, attr)()


def module_available(name: str) -> bool:
    """True if a module can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
