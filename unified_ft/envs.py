"""Isolated backend environments: one `uv` venv per backend lock, cached and reused.

The frameworks pin versions of transformers, trl, peft, datasets and torch that cannot share one
environment, so each backend keeps a lock in the repo (compiled with `uv pip compile`) and runs in a venv
made from it. An environment lives under the user's cache, keyed by the lock's hash, the Python version
and the platform, so a changed lock makes a new environment and an unchanged one is reused. Creation holds
a file lock (two runs asking at once build it once) and writes a completion marker last, so a
half-created environment is detected and rebuilt.

A backend may keep one lock per torch build: `requirements.lock` (PyPI's torch: on Linux x86_64 a CUDA
build with its nvidia-* wheels, about 6 GB installed) for hosts with a CUDA GPU, and `requirements-cpu.lock`
(PyTorch's `+cpu` build, no nvidia wheels) for hosts without one. The host decides (`host_build`: an NVIDIA
GPU listed by nvidia-smi or the driver's /proc files), `UFT_TORCH_BUILD=cpu|cuda` overrides it, and the
environment's key is the chosen lock's hash, so each build gets its own environment. A `+cpu` wheel is not
on PyPI: it comes from a local folder named in `UV_FIND_LINKS` when one holds it, else from the PyTorch CPU
index (`UFT_TORCH_CPU_INDEX`, default https://download.pytorch.org/whl/cpu), given to uv as a find-links
page of that package alone, so every other package still comes from PyPI and an offline machine with the
wheel on disk never asks the unreachable index (uv fails outright on an unreachable index or page, even
when a local folder holds the wheel).

uv does not read pip's configuration: local wheel folders (such as a machine's torch builds) are given
through uv's own settings, e.g. `UV_FIND_LINKS` (comma-separated). Environments use the interpreter uft
runs on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UftError
from .plugin import BackendBase

if TYPE_CHECKING:
    from .plugin import EnvStatus

MARKER = ".uft-env.json"
Say = Callable[[str], None]
BUILD_VAR = "UFT_TORCH_BUILD"
BUILDS = ("cuda", "cpu")
CPU_INDEX_VAR = "UFT_TORCH_CPU_INDEX"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NVIDIA_PROC = Path("/proc/driver/nvidia")  # the Linux driver's files: gpus/<PCI id>/information, version
#: The oldest Linux NVIDIA driver for each CUDA major version (CUDA's minor-version compatibility).
MIN_DRIVER = {12: 525, 13: 580}


@dataclass(frozen=True)
class EnvRecipe:
    """What a backend's environment is made of and how to check it is healthy."""

    backend: str
    lock: Path  # the default lock: PyPI's torch (a CUDA build on Linux x86_64); CUDA hosts use it
    imports: tuple[str, ...] = ()  # modules that must import in a healthy environment
    versions_of: tuple[str, ...] = ()  # distributions whose versions `check` reports
    extra_args: tuple[str, ...] = field(default=())  # more `uv pip install` arguments (e.g. an index)
    cpu_lock: Path | None = None  # the lock for hosts without a CUDA GPU (PyTorch's +cpu build), if any


@dataclass(frozen=True)
class Host:
    """The torch build this host should get, and why."""

    build: str  # "cuda" or "cpu"
    reason: str


@dataclass(frozen=True)
class LockChoice:
    """The lock a backend's environment is made from on this host."""

    lock: Path
    build: str  # the torch build the lock holds: "cpu", "cuda", "pypi" (torch without CUDA wheels) or "none"
    reason: str

    def describe(self) -> str:
        kind = {"cpu": "CPU torch build", "cuda": "CUDA torch build", "pypi": "PyPI's torch"}.get(self.build, "")
        return f"{kind + ', ' if kind else ''}{self.lock.name}: {self.reason}"


def cuda_gpus() -> list[tuple[str, str]]:
    """The host's NVIDIA GPUs as (name, driver version), from nvidia-smi, else the driver's /proc files.

    Neither a CUDA toolkit (nvcc) nor CUDA libraries count: only a GPU that the driver lists.
    """
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            done = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            rows = [[part.strip() for part in line.split(",")] for line in done.stdout.splitlines() if line.strip()]
            if rows:
                return [(row[0], row[1] if len(row) > 1 else "") for row in rows]
    proc = NVIDIA_PROC
    gpus = sorted((proc / "gpus").iterdir()) if (proc / "gpus").is_dir() else []
    version = (proc / "version").read_text(errors="replace") if (proc / "version").is_file() else ""
    driver = next(iter(re.findall(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", version)), "")
    found = []
    for gpu in gpus:
        info = (gpu / "information").read_text(errors="replace") if (gpu / "information").is_file() else ""
        found.append((next(iter(re.findall(r"^Model:\s*(.+)$", info, flags=re.M)), f"NVIDIA GPU {gpu.name}"), driver))
    return found


@functools.cache
def detected_gpus() -> tuple[tuple[str, str], ...]:
    """`cuda_gpus`, asked once per process."""
    return tuple(cuda_gpus())


def host_build() -> Host:
    """CUDA wheels where a CUDA GPU is present, CPU wheels elsewhere; `UFT_TORCH_BUILD=cpu|cuda` decides instead."""
    forced = os.environ.get(BUILD_VAR, "").strip().lower()
    if forced:
        if forced not in BUILDS:
            raise UftError(f"{BUILD_VAR}={forced!r} is not a torch build\n    fix: set it to one of "
                           f"{', '.join(BUILDS)}, or unset it to choose by the host's GPU")
        return Host(forced, f"{BUILD_VAR}={forced}")
    gpus = detected_gpus()
    if not gpus:
        return Host("cpu", "no CUDA GPU found")
    name, driver = gpus[0]
    more = f" and {len(gpus) - 1} more" if len(gpus) > 1 else ""
    return Host("cuda", f"CUDA GPU found: {name}{f' (driver {driver})' if driver else ''}{more}")


def lock_build(lock: Path) -> str:
    """Which torch build a lock holds: "cpu", "cuda", "pypi" (a torch without CUDA wheels) or "none"."""
    text = lock.read_text(encoding="utf-8", errors="replace")
    torch = re.search(r"^torch==(\S+)", text, flags=re.M)
    if not torch:
        return "none"
    local = torch.group(1).partition("+")[2]
    if local == "cpu":
        return "cpu"
    return "cuda" if local.startswith("cu") or re.search(r"^nvidia-", text, flags=re.M) else "pypi"


def lock_cuda_major(lock: Path) -> int | None:
    """The CUDA major version a CUDA lock's torch is built for (from its nvidia-cuda-runtime pin)."""
    found = re.search(r"^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.", lock.read_text(encoding="utf-8"), flags=re.M)
    return int(found.group(1)) if found else None


def choose_lock(recipe: EnvRecipe) -> LockChoice:
    """The recipe's lock for this host: the CPU lock on a host without a CUDA GPU, else the default one."""
    if recipe.cpu_lock is None:
        return LockChoice(recipe.lock, _build_of(recipe.lock), f"{recipe.backend} has one lock for every host")
    host = host_build()
    if host.build == "cpu":
        if recipe.cpu_lock.is_file():
            return LockChoice(recipe.cpu_lock, _build_of(recipe.cpu_lock), host.reason)
        return LockChoice(recipe.lock, _build_of(recipe.lock),
                          f"{host.reason}, but {recipe.backend} has no {recipe.cpu_lock.name} yet (see "
                          f"{recipe.cpu_lock.with_suffix('.in').name}), so the default lock")
    return LockChoice(recipe.lock, _build_of(recipe.lock), host.reason + _driver_note(recipe.lock))


def _driver_note(lock: Path) -> str:
    """A warning when the GPU's driver is older than the CUDA lock's torch needs."""
    major = lock_cuda_major(lock) if lock.is_file() else None
    drivers = [int(found.group(1)) for _, driver in detected_gpus() if (found := re.match(r"(\d+)\.", driver))]
    if major not in MIN_DRIVER or not drivers or drivers[0] >= MIN_DRIVER[major]:
        return ""
    return (f"; this lock's torch is built for CUDA {major}, which needs driver {MIN_DRIVER[major]} or newer: torch "
            f"will not see the GPU until the driver is updated (or set {BUILD_VAR}=cpu)")


def _build_of(lock: Path) -> str:
    return lock_build(lock) if lock.is_file() else "none"


def user_cache(*parts: str) -> Path:
    """uft's cache folder: $UFT_CACHE_DIR, else <user cache>/unified_ft (environments, models, tools)."""
    if os.environ.get("UFT_CACHE_DIR"):
        return Path(os.environ["UFT_CACHE_DIR"]).joinpath(*parts)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).joinpath("unified_ft", *parts)


def cache_root() -> Path:
    """Where environments live."""
    return user_cache("envs")


def env_key(recipe: EnvRecipe) -> str:
    """The chosen lock's hash + Python version + platform: what makes two environments interchangeable.

    The CPU and CUDA locks differ (torch's build, the nvidia wheels), so each build has its own key.
    """
    lock = choose_lock(recipe).lock
    if not lock.is_file():
        raise UftError(f"backend {recipe.backend} has no environment lock at {lock}")
    digest = hashlib.sha256(lock.read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}|{platform.machine()}|{sys.platform}".encode())
    digest.update("\0".join(recipe.extra_args).encode())
    return digest.hexdigest()[:16]


def env_dir(recipe: EnvRecipe) -> Path:
    return cache_root() / f"{recipe.backend}-{env_key(recipe)}"


def env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file() and env_python(path).exists()


def create_env(recipe: EnvRecipe, say: Say = lambda m: None) -> Path:
    """The backend's environment, built from its lock if absent or half-built; safe to call concurrently."""
    from filelock import FileLock

    target = env_dir(recipe)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):
            return target
        if target.exists():
            say(f"removing a half-created environment at {target}")
            shutil.rmtree(target)
        choice = choose_lock(recipe)
        sources, where = cpu_wheel_sources(choice.lock, recipe.extra_args)
        say(f"creating the {recipe.backend} environment from {choice.lock.name} ({choice.reason}"
            f"{''.join('; ' + w for w in where)}; uv, {target})")
        hint = ""
        if sources:
            hint = (f"; the lock's +cpu wheels come from {cpu_index()} unless a folder named in UV_FIND_LINKS holds "
                    f"them (offline, put them there), or set {BUILD_VAR}=cuda for the default lock")
        try:
            _uv(["venv", "--python", sys.executable, "--no-project", str(target)])
            _uv(["pip", "install", "--python", str(env_python(target)), "--no-deps", "-r", str(choice.lock),
                 *recipe.extra_args, *sources], hint)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        marker = {"backend": recipe.backend, "lock": str(choice.lock), "torch_build": choice.build,
                  "chosen_because": choice.reason, "key": env_key(recipe),
                  "python": sys.version.split()[0], "created_at": datetime.now(timezone.utc).isoformat()}
        (target / MARKER).write_text(json.dumps(marker, indent=2))
    return target


def check_env(recipe: EnvRecipe) -> dict[str, str]:
    """Import the framework inside its environment and return the versions it reports."""
    target = env_dir(recipe)
    if not is_complete(target):
        raise UftError(f"the {recipe.backend} environment is not created yet\n"
                       f"    fix: uft env create {recipe.backend}")
    program = ("import importlib, importlib.metadata as m, json, sys\n"
               f"for name in {list(recipe.imports)!r}: importlib.import_module(name)\n"
               "def version(d):\n"
               "    try: return m.version(d)\n"
               "    except m.PackageNotFoundError: return 'not installed'\n"
               f"found = {{d: version(d) for d in {list(recipe.versions_of)!r}}}\n"
               "if 'torch' in found and found['torch'] != 'not installed':\n"
               "    import torch\n"
               "    found['torch.version.cuda'] = str(torch.version.cuda)\n"
               "print(json.dumps(found))")
    done = subprocess.run([str(env_python(target)), "-c", program], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        why = cuda_mismatch(done.stderr, recipe)
        raise UftError(f"the {recipe.backend} environment at {target} is broken: {last}{why}\n"
                       f"    fix: uft env remove {recipe.backend} && uft env create {recipe.backend}")
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    return described_versions(versions, recipe)


#: What an import failure says when torch and the CUDA libraries (or packages built against another torch) disagree.
CUDA_MISMATCH = re.compile(r"libcu\w*\.so|libnv\w*\.so|cudnn|nccl|CUDA driver|cuda runtime|undefined symbol|"
                           r"(?:compiled|built) (?:with|against|for) (?:a different )?(?:CUDA|PyTorch|torch)|"
                           r"torchvision.*torch|operator torchvision::nms does not exist", re.I)


def cuda_mismatch(stderr: str, recipe: EnvRecipe) -> str:
    """A sentence naming a CUDA/torch mismatch when an environment's import failure looks like one, else ""."""
    if not CUDA_MISMATCH.search(stderr or ""):
        return ""
    choice = choose_lock(recipe)
    major = lock_cuda_major(choice.lock) if choice.lock.is_file() else None
    torch = re.search(r"^torch==(\S+)", choice.lock.read_text(encoding="utf-8"), flags=re.M) \
        if choice.lock.is_file() else None
    built = f"torch {torch.group(1)}" if torch else "the environment's torch"
    built += f" is built for CUDA {major}" if major else f" is a {choice.build} build"
    gpus = detected_gpus()
    host = f"this host's NVIDIA driver is {gpus[0][1] or 'unknown'}" if gpus else "this host has no NVIDIA GPU"
    return (f" (a CUDA/torch mismatch: {built} ({choice.lock.name}), {host}; a package built against another "
            "torch or CUDA fails the same way)")


def described_versions(versions: dict[str, str], recipe: EnvRecipe) -> dict[str, str]:
    """Versions read inside an environment, with which torch build it has (from its torch.version.cuda) and
    where that torch comes from, said in words."""
    versions = dict(versions)
    if "torch.version.cuda" in versions:
        cuda = versions.pop("torch.version.cuda")
        actual = "cpu" if cuda == "None" else f"cuda {cuda}"
        choice = choose_lock(recipe)
        versions["torch_build"] = (f"{actual} (torch.version.cuda {cuda} in the environment), from "
                                   f"{choice.lock.name} ({choice.reason})")
    if "torch" in versions:
        versions["torch_source"] = torch_source(versions["torch"])
    return versions


def torch_source(env_torch: str) -> str:
    """Which torch build an environment has and why: always the lock's, said next to the core's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        core = version("torch")
    except PackageNotFoundError:
        core = "none"
    same = " (the same version)" if core == env_torch else ""
    return (f"the lock's torch {env_torch}, installed in the environment; the core's torch {core}{same} is not "
            "shared, since sharing needs --system-site-packages, which would leak the core's transformers")


def list_envs() -> list[dict[str, str]]:
    """Every environment in the cache, complete or not."""
    root = cache_root()
    found = []
    for path in sorted(root.glob("*")) if root.exists() else []:
        if path.is_dir():
            info = json.loads((path / MARKER).read_text()) if is_complete(path) else {"backend": path.name}
            found.append({**info, "path": str(path), "complete": str(is_complete(path)).lower()})
    return found


def remove_env(recipe: EnvRecipe) -> Path | None:
    """Delete the backend's environment (under the same file lock as creation)."""
    from filelock import FileLock

    target = env_dir(recipe)
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            return None
        shutil.rmtree(target)
    return target


def cpu_index() -> str:
    return os.environ.get(CPU_INDEX_VAR, "").strip().rstrip("/") or CPU_INDEX


def local_wheel_folders(extra_args: tuple[str, ...] = ()) -> list[Path]:
    """Local folders uv searches for wheels: UV_FIND_LINKS (comma-separated) and the recipe's --find-links."""
    entries = [e.strip() for e in os.environ.get("UV_FIND_LINKS", "").split(",") if e.strip()]
    pairs = zip(extra_args, extra_args[1:], strict=False)
    entries += [value for flag, value in pairs if flag in ("-f", "--find-links")]
    entries += [arg.split("=", 1)[1] for arg in extra_args if arg.startswith("--find-links=")]
    folders = [Path(e.removeprefix("file://")) for e in entries if "://" not in e or e.startswith("file://")]
    return [folder for folder in folders if folder.is_dir()]


def cpu_wheel_sources(lock: Path, extra_args: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """uv arguments for the lock's `+cpu` pins that no local folder holds, and where each pin comes from.

    Each such package gets the PyTorch CPU index's page of that package as a find-links page: uv takes the
    pinned `+cpu` wheel from it (checked against the lock's hash) while every other package still comes
    from PyPI, without relaxing uv's index strategy. A pin that a local folder holds gets nothing, so an
    offline machine never asks the index it cannot reach.
    """
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+\+cpu)\b", lock.read_text(encoding="utf-8"), flags=re.M)
    folders = local_wheel_folders(extra_args)
    args, where = [], []
    for name, version in pins:
        prefix = f"{re.sub(r'[-_.]+', '_', name)}-{version}-".lower()
        local = [d for d in folders if any(f.name.lower().startswith(prefix) and f.name.endswith(".whl")
                                           for f in d.iterdir())]
        if local:
            where.append(f"{name}=={version} from {local[0]}")
        else:
            page = f"{cpu_index()}/{name.lower()}/"
            args += ["--find-links", page]
            where.append(f"{name}=={version} from {page}")
    return args, where


def _uv(args: list[str], hint: str = "") -> None:
    """Run uv; on a terminal its own progress shows, elsewhere its output is kept for the error message."""
    from uv import find_uv_bin

    interactive = sys.stderr.isatty()
    done = subprocess.run([find_uv_bin(), *args], stdout=subprocess.DEVNULL,
                          stderr=None if interactive else subprocess.PIPE, text=True)
    if done.returncode != 0:
        tail = "" if interactive else "\n".join(done.stderr.strip().splitlines()[-12:])
        raise UftError(f"uv {args[0]} failed:\n{tail}\n    fix: check the network or the lock; local wheel folders "
                       f"go in UV_FIND_LINKS (uv does not read pip's configuration){hint}")


def env_status(recipe: EnvRecipe) -> EnvStatus:
    """A backend's environment status: ready once created; otherwise creatable by `uft run`."""
    from .plugin import EnvStatus

    path = env_dir(recipe)
    choice = choose_lock(recipe).describe()
    if is_complete(path):
        return EnvStatus(True, f"uv environment {path} ({choice})")
    return EnvStatus(False, f"environment not created yet ({path}; {choice}); `uft run` creates it",
                     install_hint=f"uft env create {recipe.backend}", creatable=True)


class OwnEnvironment(BackendBase):
    """For backends that run in a uv environment made from their lock: set `recipe`."""

    recipe: EnvRecipe

    def env_recipe(self) -> EnvRecipe:
        return self.recipe

    def environment(self) -> EnvStatus:
        return env_status(self.recipe)
