"""The Backend contract, the features a spec uses, and how backends are found.

Every backend, built-in or third-party, is an entry point of the group `unified_ft.backends`
("name = module:Class"); listing them reads package metadata and imports nothing heavy. `load_backend`
checks a plugin against the `Backend` protocol at once, so a plugin that lacks a member is an error that
names it, not an AttributeError in the middle of a command. A built-in backend is one that unified_ft's
own distribution registers; a third-party entry point of the same name is ignored (and `uft backends`
says so), so installing a package never changes what `--backend trl` runs.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, get_origin, runtime_checkable

from .errors import BackendInvalid, BackendNotFound, CapabilityError, Problem, SpecError, UftError
from .migrate import ImportResult  # noqa: F401  (re-exported: plugins import it from here)
from .redact import env_secrets, redact_text
from .spec import LOSS_TYPES, TEMPLATE_NAMES, AdapterType, JobSpec, LoraFamilyAdapter, MethodName, Strategy

if TYPE_CHECKING:
    from .effective import Effective
    from .envs import EnvRecipe

ENTRY_POINT_GROUP = "unified_ft.backends"
#: The distribution whose entry points are the built-in backends (its own `backends/` folders).
BUILTIN_DISTRIBUTION = "unified-ft"

#: Backends the project plans; asking for one says so instead of "unknown".
PLANNED_BACKENDS: tuple[str, ...] = ()

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
#: `precision: auto` never reaches a framework: uft's plan resolves it first, the same way for every backend.
AUTO_PRECISION = Capability("native", "resolved by uft's plan before translation: bf16 with a CUDA GPU, else fp32")


@dataclass
class EnvStatus:
    """Whether a backend's environment can run it now, and what to do if not."""

    ready: bool
    detail: str
    versions: dict[str, str] = field(default_factory=dict)
    install_hint: str = ""
    creatable: bool = False  # uft can build it (an isolated environment from a lock)


@dataclass
class NodeLaunch:
    """The command and environment that start one node's processes of a multi-node run."""

    rank: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class NativeJob:
    """What a translator produced: files in the native folder and the exact command that runs them."""

    native_dir: Path
    files: list[Path]
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    log_file: Path | None = None  # JSONL the framework writes while training (for progress)
    nodes: list[NodeLaunch] = field(default_factory=list)  # a multi-node run: each node's launch (argv is node 0's)

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


@runtime_checkable
class Backend(Protocol):
    """Everything the core uses of a framework plugin; `load_backend` checks a plugin has all of it.

    `translate` is pure (no framework import) so it runs and is tested anywhere. Inherit `BackendBase`
    for the optional members (env_recipe, notes, gpu_needs, effective, import_native)."""

    name: str
    capabilities: dict[str, Capability]
    #: `import_native(path, **options) -> ImportResult`: a native config as a spec; None without an importer.
    import_native: Callable[..., ImportResult] | None

    def environment(self) -> EnvStatus: ...

    def env_recipe(self) -> EnvRecipe | None: ...

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob: ...

    def check(self, job: NativeJob) -> None: ...

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None: ...

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs: ...

    def effective(self, run_dir: Path, spec: JobSpec, uft_rows: int | None) -> Effective: ...

    def notes(self, spec: JobSpec) -> list[str]: ...

    def gpu_needs(self, spec: JobSpec) -> list[Problem]: ...


class BackendBase:
    """Defaults for the members of `Backend` that a backend may leave out."""

    import_native: Callable[..., ImportResult] | None = None
    #: Set (to the message that says what to do instead) on a backend uft only translates for: `uft run` and
    #: `uft bakeoff` refuse it, while `uft translate` and `uft plan` write its files (see `eject_only_problem`).
    eject_only: str | None = None

    def env_recipe(self) -> EnvRecipe | None:
        """None: the backend runs in uft's own environment, so there is nothing to build."""
        return None

    def notes(self, spec: JobSpec) -> list[str]:
        """Nothing to warn about beyond what the capability table says."""
        return []

    def gpu_needs(self, spec: JobSpec) -> list[Problem]:
        """Settings outside the portable features (e.g. a plugin named in backend_options) that need a CUDA GPU on
        this backend; the capability table already covers the spec's own features."""
        return []

    def setting_problems(self, spec: JobSpec) -> list[Problem]:
        """Combinations of supported features this framework still cannot do (an offload its shipped DeepSpeed
        configs lack), found by the plan before anything is written."""
        return []

    def effective(self, run_dir: Path, spec: JobSpec, uft_rows: int | None) -> Effective:
        """What the framework did, as uft's trainer probe saw it inside any transformers.Trainer (trl, LLaMA-Factory,
        ms-swift, unsloth); a backend that trains otherwise reads back its own outputs here."""
        from .effective import read_back

        return read_back(run_dir, spec, self.name, uft_rows)


def protocol_members() -> tuple[list[str], list[str]]:
    """(attributes, methods) that `Backend` declares, read from the protocol itself."""
    methods = [k for k, v in vars(Backend).items() if callable(v) and not k.startswith("_")]
    return list(Backend.__annotations__), methods


def check_contract(plugin: object, name: str, where: str) -> None:
    """A loaded plugin has every member of `Backend`, of the right kind, and the name it is registered by."""
    attributes, methods = protocol_members()
    missing = [m for m in attributes + methods if not hasattr(plugin, m)]
    wrong = [f"{m} is not callable" for m in methods if m not in missing and not callable(getattr(plugin, m))]
    if "import_native" not in missing and plugin.import_native is not None and not callable(plugin.import_native):
        wrong.append("import_native is neither None nor callable")
    if "name" not in missing and plugin.name != name:
        wrong.append(f"its name is {plugin.name!r}, but it is registered as {name!r}")
    if "capabilities" not in missing and not (isinstance(plugin.capabilities, dict) and all(
            isinstance(c, Capability) for c in plugin.capabilities.values())):
        wrong.append("capabilities is not a dict of unified_ft.plugin.Capability")
    if missing or wrong:
        lacking = [f"it lacks {', '.join(missing)}"] if missing else []
        raise BackendInvalid(f"backend {name!r} ({where}) does not implement the Backend protocol: "
                             f"{'; '.join(lacking + wrong)}\n    fix: give the plugin those members (inherit "
                             "unified_ft.plugin.BackendBase for the defaults of env_recipe, notes, effective and "
                             "import_native), or uninstall the package that registers it")


def eject_only_problem(backend: object) -> Problem | None:
    """The refusal of `uft run` / `uft bakeoff` on a backend that uft only ejects to (axolotl), else None; a
    plugin without the attribute runs."""
    message = getattr(backend, "eject_only", None)
    if not message:
        return None
    name = getattr(backend, "name", "?")
    return Problem(f"--backend {name}", f"backend {name} is eject-only in uft: uft writes its native config and "
                   "does not run it", message)


def importer_options(backend: str, options: dict[str, Any], takes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options an importer takes; one that it does not take is an error, never silently dropped."""
    extra = [f"--{key.replace('_', '-')}" for key in sorted(set(options) - set(takes))]
    if extra:
        raise UftError(f"`uft import {backend}` takes no {', '.join(extra)}\n    fix: remove it (nothing was written)")
    return options


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


@dataclass(frozen=True)
class CheckCause:
    """Why a framework's own check failed: `kind` is "spec" (the translated config), "machine" (this host lacks
    a GPU or a precision), "network" (a hub model or dataset out of reach) or "package" (a module the
    environment lacks); `cause` says what (empty for "spec"), `fix` what to do."""

    kind: Literal["spec", "machine", "network", "package"]
    cause: str
    fix: str


SPEC_FIX = "correct the spec or backend_options (the framework's own parser said this)"
_TRACEBACK = "Traceback (most recent call last):"
#: (pattern in the final error, what the machine lacks, fix); the first match wins.
_MACHINE = (
    (r"doesn't support bf16|bf16 mixed precision requires|bf16.*not supported on|Ampere\+? GPU",
     "a CUDA GPU with bf16 (Ampere or newer)",
     "run on such a GPU, or set training.precision: fp32 (or auto: bf16 only where the GPU has it)"),
    (r"fp16.*can only be used on CUDA|fp16 mixed precision requires",
     "a CUDA GPU for fp16",
     "run on a CUDA GPU, or set training.precision: fp32 (or auto)"),
    (r"Found no NVIDIA driver|Torch not compiled with CUDA|CUDA is not available|No CUDA GPUs are available|"
     r"cannot find any torch accelerator|You need a GPU|is not available on CPU|requires a (?:CUDA )?GPU|"
     r"CUDA driver initialization failed|no CUDA-capable device",
     "a usable CUDA GPU (torch sees none: no NVIDIA driver, no visible device, or a CPU-only torch build)",
     "run on a machine with a CUDA GPU, or drop the GPU-only setting from the spec or backend_options"),
    (r"CUDA out of memory|OutOfMemoryError",
     "enough GPU memory",
     "use a larger GPU or lower the memory use (smaller batch or max_length, qlora, gradient checkpointing)"),
)
_MISSING = (
    r"No module named '([\w.]+)'",
    r"package (?:for )?(FlashAttention\d?|[\w.-]+) (?:doesn't seem to be|seems to be not|is not) installed",
    r"requires (?:the )?`?([\w.-]+)`?: `pip install",
    r"\b(DeepSpeed|bitsandbytes|flash_attn|liger[_-]kernel|deepspeed) is not installed",
)
_NETWORK = (r"couldn't connect to|LocalEntryNotFoundError|OfflineModeIsEnabled|outgoing traffic has been disabled|"
            r"HF_HUB_OFFLINE|Couldn't reach|Max retries exceeded|Failed to establish a new connection|"
            r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
            r"ConnectTimeout|ConnectionError|check your (?:internet )?connection")
_NOT_ON_HUB = (r"is not a local folder and is not a valid model identifier|RepositoryNotFoundError|"
               r"doesn't exist on the Hub|Repository Not Found")
#: (pattern whose last group is a hub id, what it names: None when the text around it says).
_HUB_ID = (
    (r"repo_id: ([\w.-]+(?:/[\w.-]+)?)", None),
    (r"([\w.-]+(?:/[\w.-]+)?)['\"]? is not a local folder", "model"),
    (r"Couldn't reach (?:the Hugging Face Hub for dataset )?'([^'\s]+)'", "dataset"),  # the datasets library
    (r"Dataset '([^'\s]+)' doesn't exist", "dataset"),
    (r"(?:load|find) (?:the )?(?:configuration|config|tokenizer|model|files?) (?:of|for) '([^'\s]+)'", "model"),
    (r"(?:huggingface\.co|url: )/?(?:api/)?(?:(datasets)/|models/)?([\w.-]+/[\w.-]+)/(?:resolve|revision|tree)",
     None),
)
#: Module -> the distribution that provides it, where the names differ.
_DISTRIBUTIONS = {"flash_attn": "flash-attn", "liger_kernel": "liger-kernel", "yaml": "pyyaml",
                  "sklearn": "scikit-learn", "google": "protobuf"}


def final_error(text: str) -> str:
    """The error a failed program ended with: the message lines of its last traceback (a chained exception's
    last one), else its last non-empty line. Warnings printed earlier (torch's "Found no NVIDIA driver" on any
    CPU host) are not the error."""
    if _TRACEBACK in text:
        tail = text.rsplit(_TRACEBACK, 1)[1].splitlines()
        lines = [line for line in tail if line.strip() and not line[:1].isspace() and not line.startswith("^")]
        if lines:
            return "\n".join(lines)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _hub_id(text: str) -> tuple[str, str] | None:
    """(id, "model" or "dataset") of the hub repository an error names, if it names one."""
    for pattern, kind in _HUB_ID:
        found = re.search(pattern, text)
        if found:
            dataset = "/datasets/" in found.group(0) or "repo_type: dataset" in text
            return found.group(found.lastindex or 1), kind or ("dataset" if dataset else "model")
    return None


def classify_check_failure(text: str, backend: str, own_environment: bool = False) -> CheckCause:
    """Why `backend`'s own check failed, from what it printed (stderr). `own_environment`: the check ran in
    uft's own environment (trl) rather than the backend's locked one."""
    error = final_error(text)
    for pattern, lacks, fix in _MACHINE:
        if re.search(pattern, error, re.IGNORECASE):
            return CheckCause("machine", f"this machine lacks {lacks}", fix)
    for number, pattern in enumerate(_MISSING):
        found = re.search(pattern, error, re.IGNORECASE)
        if found:
            module = found.group(1) if number == 0 else found.group(1).lower().replace("-", "_")  # "DeepSpeed"
            module = "flash_attn" if module.startswith("flashattention") else module
            top = module.split(".")[0]
            dist = _DISTRIBUTIONS.get(top, top)
            where = ("uft's own environment" if own_environment
                     else f"{backend}'s environment (its lock in backends/{backend}/ does not have it)")
            add = (f"`pip install {dist}` into the environment uft runs in" if own_environment else
                   f"add {dist} to backends/{backend}/requirements.in (and requirements-cpu.in), refresh the locks "
                   f"with `scripts/lock.sh {backend}` and recreate the environment (`uft env remove {backend}`)")
            return CheckCause("package", f"the module {module!r} is not installed in {where}",
                              f"{add}, or drop the setting that needs it from the spec or backend_options")
    not_found = re.search(_NOT_ON_HUB, error, re.IGNORECASE)
    if not_found or re.search(_NETWORK, error, re.IGNORECASE):
        # The id may be named by a chained exception above the last traceback, so look at the whole text.
        hub = _hub_id(error) or _hub_id(text)
        # transformers names no id when it cannot reach the hub, but it is loading a model (or its tokenizer).
        model = hub is None and re.search(r"couldn't connect to .* to load the files", error) is not None
        name = f"the {hub[1]} {hub[0]!r}" if hub else "the model in model.path" if model else "a model or dataset"
        download = (f"`hf download {hub[0]}{' --repo-type dataset' if hub[1] == 'dataset' else ''}`" if hub
                    else "`hf download <id>`")
        key = "data.train[].path" if hub and hub[1] == "dataset" else "model.path"
        local = f"download it where the hub is reachable ({download}) and give its local path in {key}"
        if not_found:
            return CheckCause("network", f"{name} is neither a local folder nor found on the Hugging Face hub",
                              f"correct the id, or {local}; a private or gated repo needs HF_TOKEN")
        return CheckCause("network", f"{name} is not in the local cache and the Hugging Face hub cannot be "
                          "reached from here (offline, or HF_HUB_OFFLINE is set)", local)
    return CheckCause("spec", "", SPEC_FIX)


def run_native_check(backend: str, argv: list[str], cwd: Path, timeout_s: int = 600) -> None:
    """Run a framework's own argument parsing on translated files; its complaint becomes a clear error that says
    whether the spec, this machine, the network or a missing package is the cause."""
    import subprocess
    import sys

    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        stderr = redact_text(done.stderr, env_secrets())
        said = final_error(stderr).split("\n", 1)[0] or "no message"  # "OSError: We couldn't connect ..."
        why = classify_check_failure(stderr, backend, own_environment=bool(argv) and argv[0] == sys.executable)
        if why.kind == "spec":
            raise UftError(f"{backend} rejects the translated config in {cwd}: {said}\n    fix: {why.fix}")
        raise UftError(f"{backend} could not check the translated config in {cwd}: {said}\n"
                       f"    cause ({why.kind}): {why.cause}\n    fix: {why.fix}")


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
    """Options kept for other backends are fine (one spec, many backends), but the plan names each one that does
    not reach this backend (a swift `system`, a DeepSpeed config...), so a migration loses nothing unseen."""
    notes = []
    for name in sorted(set(spec.backend_options) - {backend}):
        keys = sorted(spec.backend_options[name])
        shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        notes.append(f"backend_options.{name} is not used by backend {backend}: {shown or 'nothing set'} "
                     f"{'does' if len(keys) == 1 else 'do'} not reach {backend}")
    return notes


def _lora(spec: JobSpec) -> bool:
    """LoRA variants exist only on lora/qlora/dora adapters (other adapter types have no such fields)."""
    return isinstance(spec.adapter, LoraFamilyAdapter)


#: Spec settings whose value names the feature: prefix -> (spec section, field, the setting in messages).
CHOICE_FEATURES = {
    "method": ("method", "name", "method"),
    "adapter": ("adapter", "type", "adapter.type"),
    "optimizer": ("training", "optimizer", "training.optimizer"),
    "precision": ("training", "precision", "training.precision"),
    "scheduler": ("training", "lr_scheduler", "training.lr_scheduler"),
}

#: Discriminated sections: their tag's values.
UNION_TAGS = {("method", "name"): MethodName, ("adapter", "type"): AdapterType}

#: Spec settings that are a feature when on: feature -> (is it on?, the setting in messages).
FLAG_FEATURES: dict[str, tuple[Callable[[JobSpec], bool], str]] = {
    "adapter.rslora": (lambda s: _lora(s) and s.adapter.rslora, "adapter.rslora: true"),
    "adapter.loraplus": (lambda s: _lora(s) and s.adapter.loraplus_lr_ratio is not None, "adapter.loraplus_lr_ratio"),
    "adapter.pissa": (lambda s: _lora(s) and s.adapter.init == "pissa", "adapter.init: pissa"),
    "adapter.dora": (lambda s: _lora(s) and s.adapter.use_dora and s.adapter.type != "dora",
                     "adapter.use_dora: true"),
    "data.packing": (lambda s: s.data.packing, "data.packing: true"),
    "data.train_on_prompt": (lambda s: s.data.train_on_prompt, "data.train_on_prompt: true"),
    "data.mixing": (lambda s: len(s.data.train) > 1, "several data.train datasets"),
    "training.gradient_checkpointing": (lambda s: s.training.gradient_checkpointing,
                                        "training.gradient_checkpointing: true"),
    "model.trust_remote_code": (lambda s: s.model.trust_remote_code, "model.trust_remote_code: true"),
    "model.gguf": (lambda s: bool(s.model.gguf_file), "model.gguf_file"),
}


def distributed_features(spec: JobSpec) -> dict[str, str]:
    """`distributed.<strategy>` once a run has more than one process (or a sharding strategy even on one), and
    multi-node and elastic runs as features of their own."""
    d, feats = spec.distributed, {}
    if not d.single_process:
        feats[f"distributed.{d.strategy}"] = f"distributed.strategy: {d.strategy}"
    if d.nodes > 1:
        feats["distributed.multi_node"] = f"distributed.nodes: {d.nodes}"
    r = d.rendezvous
    if r.min_nodes is not None or r.max_nodes is not None or r.max_restarts:
        feats["distributed.elastic"] = "distributed.rendezvous (elastic nodes or max_restarts)"
    return feats


def spec_features(spec: JobSpec) -> dict[str, str]:
    """The features a spec uses, each mapped to the setting that asks for it (for error messages)."""
    feats = {}
    for prefix, (section, name, setting) in CHOICE_FEATURES.items():
        value = getattr(getattr(spec, section), name)
        feats[f"{prefix}.{value}"] = f"{setting}: {value}"
    if spec.method.name != "pt":  # plain-text pretraining renders no chat
        feats[f"template.{spec.template.name}"] = f"template: {spec.template.name}"
    feats.update({feature: setting for feature, (used, setting) in FLAG_FEATURES.items() if used(spec)})
    for tracker in spec.training.report_to:
        if tracker != "none":
            feats[f"report_to.{tracker}"] = f"training.report_to: {tracker}"
    loss_type = getattr(spec.method, "loss_type", None)  # dpo and kto have one
    if loss_type is not None:
        feats[f"loss_type.{spec.method.name}.{loss_type}"] = f"method.loss_type: {loss_type}"
    feats.update(distributed_features(spec))
    return feats


def all_features() -> list[str]:
    """Every feature `spec_features` can produce, read from the spec's own types (a backend declares each)."""
    feats = [f"{prefix}.{value}" for prefix, (section, name, _) in CHOICE_FEATURES.items()
             for value in _choices(section, name)]
    feats += [f"template.{name}" for name in (*TEMPLATE_NAMES, "jinja")]
    feats += list(FLAG_FEATURES)
    feats += [f"report_to.{tracker}" for tracker in _choices("training", "report_to") if tracker != "none"]
    feats += [f"loss_type.{method}.{loss}" for method, losses in LOSS_TYPES.items() for loss in losses]
    feats += [f"distributed.{s}" for s in get_args(Strategy)] + ["distributed.multi_node", "distributed.elastic"]
    return list(dict.fromkeys(feats))  # adapter.dora is both `type: dora` and `use_dora: true`: one feature


def _choices(section: str, name: str) -> tuple[Any, ...]:
    """The values a Literal-typed spec field (or a list of them) accepts."""
    if (section, name) in UNION_TAGS:  # one model per method / adapter type: the tag's Literal lists them all
        return get_args(UNION_TAGS[section, name])
    annotation = JobSpec.model_fields[section].annotation.model_fields[name].annotation
    while get_origin(annotation) is not Literal:
        annotation = get_args(annotation)[0]
    return get_args(annotation)


def loss_type_capabilities(supported: dict[str, tuple[str, ...]], framework: str) -> dict[str, Capability]:
    """One capability per loss type the spec knows (`loss_type.<method>.<loss>`): native where the
    framework's release has that loss, unsupported (saying so) where it has not."""
    table = {}
    for method, losses in LOSS_TYPES.items():
        for loss in losses:
            native = loss in supported.get(method, ())
            table[f"loss_type.{method}.{loss}"] = NATIVE if native else Capability(
                "unsupported", f"{framework} has no {method} loss {loss!r}")
    return table


def distributed_capabilities(framework: str, supported: dict[str, Capability],
                             pending: tuple[str, ...] = ()) -> dict[str, Capability]:
    """One capability per distributed feature: the `supported` ones; `pending`, which the framework has but uft
    does not map onto its launcher yet; and the strategies the framework itself lacks."""
    table = {}
    for feature in [f"distributed.{s}" for s in get_args(Strategy)] + ["distributed.multi_node", "distributed.elastic"]:
        name = feature.removeprefix("distributed.")
        if feature in supported:
            table[feature] = supported[feature]
        elif name in pending:
            table[feature] = Capability("unsupported", f"{framework} has {name}, but uft does not map it onto "
                                        f"{framework}'s launcher yet")
        else:
            table[feature] = Capability("unsupported", f"{framework} has no {name}")
    return table


#: Native options that turn on the other sharding engine: DeepSpeed and FSDP cannot wrap one model together.
OTHER_SHARDING: dict[str, tuple[str, ...]] = {"fsdp2": ("deepspeed",), "deepspeed": ("fsdp", "fsdp_config")}


def sharding_conflicts(spec: JobSpec) -> list[Problem]:
    """strategy fsdp2 with a backend option that turns DeepSpeed on (or deepspeed with FSDP): an error naming
    both, whichever backend runs, since no framework runs the two engines on one model."""
    strategy = spec.distributed.strategy
    return [Problem(f"backend_options.{name}.{key}", f"distributed.strategy {strategy} and "
                    f"backend_options.{name}.{key} both turn on sharding, and DeepSpeed and FSDP cannot run together",
                    f"remove backend_options.{name}.{key}, or change distributed.strategy")
            for name, options in spec.backend_options.items()
            for key in OTHER_SHARDING.get(strategy, ()) if key in options]


def problems_of(build: Callable[[], object]) -> list[Problem]:
    """The problems a translator's mapping raises (as SpecError), so the plan can report them before translating."""
    try:
        build()
    except SpecError as exc:
        return list(exc.problems)
    return []


def check_capabilities(spec: JobSpec, backend: Backend, has_gpu: bool) -> list[str]:
    """Fail before anything starts if the backend can't honour a setting (or, without a GPU, run one that
    needs it); return notes on emulated ones."""
    problems, notes = sharding_conflicts(spec), []
    for feature, setting in spec_features(spec).items():
        cap = backend.capabilities.get(feature, Capability("unsupported", "not declared by this backend"))
        if cap.level == "unsupported":
            others = [n for n in supporting_backends(feature) if n != backend.name]
            alt = f"backends that support it: {', '.join(others)}" if others else "no installed backend supports it"
            problems.append(Problem(setting, f"backend {backend.name} does not support {feature}"
                                    + (f" ({cap.note})" if cap.note else ""), alt))
        elif cap.level == "emulated":
            notes.append(f"{setting}: emulated by {backend.name} ({cap.note})")
    own = getattr(backend, "setting_problems", None)  # BackendBase has it; a bare plugin may not
    problems += list(own(spec)) if own is not None and not problems else []
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
            hint = ("run it on a GPU machine, or use distributed.strategy ddp" if feature.startswith("distributed.")
                    else "run it on a GPU machine, or use adapter.type lora / a non-8-bit optimizer")
            problems.append(Problem(setting, f"{feature} needs a CUDA GPU and this machine has none"
                                    + (f" ({cap.note})" if cap.note and feature.startswith("distributed.") else ""),
                                    hint))
    own = getattr(backend, "gpu_needs", None)  # a loaded plugin has it (check_contract); a bare test double may not
    return problems + (list(own(spec)) if own is not None else [])


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


def _distribution(ep: EntryPoint) -> str:
    """The normalized name of the distribution that registers an entry point ("?" when unknown)."""
    return re.sub(r"[-_.]+", "-", ep.dist.metadata["Name"]).lower() if ep.dist is not None else "?"


def _registrations() -> dict[str, list[EntryPoint]]:
    """Every entry point of the group, by backend name; the one that counts first (built-in, then by
    distribution name), each registration once even where several copies of a distribution are visible."""
    found: dict[str, dict[tuple[str, str], EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, {}).setdefault((_distribution(ep), ep.value), ep)
    order = lambda ep: (_distribution(ep) != BUILTIN_DISTRIBUTION, _distribution(ep), ep.value)  # noqa: E731
    return {name: sorted(eps.values(), key=order) for name, eps in found.items()}


def available_backends() -> list[str]:
    """Names of every backend that can be loaded: built-ins plus installed plugins."""
    return sorted(_registrations())


def builtin_backends() -> list[str]:
    """The backends unified_ft itself ships (one folder each under `backends/`)."""
    return sorted(name for name, eps in _registrations().items() if _distribution(eps[0]) == BUILTIN_DISTRIBUTION)


def registration_warnings() -> list[str]:
    """Entry points that lose to another of the same name (a built-in always wins), said plainly."""
    warnings = []
    for name, (chosen, *others) in sorted(_registrations().items()):
        if _distribution(chosen) == BUILTIN_DISTRIBUTION:
            winner, fix = f"the built-in {name} backend wins", "register the plugin under another name"
        else:
            winner = f"{chosen.value} from {_distribution(chosen)} wins (the first by distribution name)"
            fix = "register one of them under another name"
        warnings += [f"entry point {name} = {ep.value} (from {_distribution(ep)}) is ignored: {winner}; {fix}"
                     for ep in others]
    return warnings


def load_backend(name: str) -> Backend:
    """Instantiate a backend by name, checked against the protocol; an unknown name lists what exists."""
    eps = _registrations().get(name)
    if not eps:
        raise BackendNotFound(_not_found(name))
    ep = eps[0]
    where = f"entry point {name} = {ep.value} from {_distribution(ep)}"
    try:
        plugin = ep.load()()
    except ImportError as exc:
        raise BackendNotFound(f"backend {name!r} ({where}) could not be imported: {exc}") from None
    except Exception as exc:  # a plugin's own bug must not break every command: named, cause kept for --debug
        raise BackendInvalid(f"backend {name!r} ({where}) could not be made: {exc!r}\n    fix: the entry point "
                             "must name a class that takes no arguments (module:Class)") from exc
    check_contract(plugin, name, where)
    return plugin


def _not_found(name: str) -> str:
    """Why a backend is unknown: planned, a built-in folder whose entry point is missing, or no such thing."""
    known = ", ".join(available_backends())
    if name in PLANNED_BACKENDS:
        return f"backend {name!r} is not available in this version of uft yet; available: {known}"
    if name.isidentifier() and module_available(f"unified_ft.backends.{name}"):
        return (f"backends/{name} is not registered: add `{name} = \"unified_ft.backends.{name}:<Class>\"` to "
                f"[project.entry-points.\"{ENTRY_POINT_GROUP}\"] in pyproject.toml and reinstall (pip install -e .)")
    return (f"unknown backend {name!r}; available: {known} "
            f"(third-party backends register the entry point group {ENTRY_POINT_GROUP!r})")


def importing_backends() -> list[str]:
    """Backends with an importer (`uft import <name> CONFIG`); a broken plugin is left out."""
    names = []
    for name in available_backends():
        try:
            if load_backend(name).import_native is not None:
                names.append(name)
        except UftError:
            continue
    return names


def module_available(name: str) -> bool:
    """True if a module can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
