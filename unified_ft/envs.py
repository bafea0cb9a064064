"""Isolated backend environments: one `uv` venv per backend lock, cached and reused.

The frameworks pin versions of transformers, trl, peft, datasets and torch that cannot share one
environment, so each backend keeps a lock in the repo (compiled with `uv pip compile`) and runs in a venv
made from it. An environment lives under the user's cache, keyed by the lock's hash, the Python version
and the platform, so a changed lock makes a new environment and an unchanged one is reused. Creation holds
a file lock (two runs asking at once build it once) and writes a completion marker last, so a
half-created environment is detected and rebuilt.

uv does not read pip's configuration: local wheel folders (such as a machine's torch builds) are given
through uv's own settings, e.g. `UV_FIND_LINKS`. Environments use the interpreter uft runs on.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
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


@dataclass(frozen=True)
class EnvRecipe:
    """What a backend's environment is made of and how to check it is healthy."""

    backend: str
    lock: Path
    imports: tuple[str, ...] = ()  # modules that must import in a healthy environment
    versions_of: tuple[str, ...] = ()  # distributions whose versions `check` reports
    extra_args: tuple[str, ...] = field(default=())  # more `uv pip install` arguments (e.g. an index)


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
    """Lock hash + Python version + platform: what makes two environments interchangeable."""
    if not recipe.lock.is_file():
        raise UftError(f"backend {recipe.backend} has no environment lock at {recipe.lock}")
    digest = hashlib.sha256(recipe.lock.read_bytes())
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
        say(f"creating the {recipe.backend} environment from {recipe.lock.name} (uv, {target})")
        try:
            _uv(["venv", "--python", sys.executable, "--no-project", str(target)])
            _uv(["pip", "install", "--python", str(env_python(target)), "--no-deps", "-r", str(recipe.lock),
                 *recipe.extra_args])
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        marker = {"backend": recipe.backend, "lock": str(recipe.lock), "key": env_key(recipe),
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
               f"print(json.dumps({{d: m.version(d) for d in {list(recipe.versions_of)!r}}}))")
    done = subprocess.run([str(env_python(target)), "-c", program], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UftError(f"the {recipe.backend} environment at {target} is broken: {last}\n"
                       f"    fix: uft env remove {recipe.backend} && uft env create {recipe.backend}")
    versions = json.loads(done.stdout.strip().splitlines()[-1])
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


def _uv(args: list[str]) -> None:
    """Run uv; on a terminal its own progress shows, elsewhere its output is kept for the error message."""
    from uv import find_uv_bin

    interactive = sys.stderr.isatty()
    done = subprocess.run([find_uv_bin(), *args], stdout=subprocess.DEVNULL,
                          stderr=None if interactive else subprocess.PIPE, text=True)
    if done.returncode != 0:
        tail = "" if interactive else "\n".join(done.stderr.strip().splitlines()[-12:])
        raise UftError(f"uv {args[0]} failed:\n{tail}\n    fix: check the network or the lock; local wheel folders "
                       "go in UV_FIND_LINKS (uv does not read pip's configuration)")


def env_status(recipe: EnvRecipe) -> EnvStatus:
    """A backend's environment status: ready once created; otherwise creatable by `uft run`."""
    from .plugin import EnvStatus

    path = env_dir(recipe)
    if is_complete(path):
        return EnvStatus(True, f"uv environment {path}")
    return EnvStatus(False, f"environment not created yet ({path}); `uft run` creates it",
                     install_hint=f"uft env create {recipe.backend}", creatable=True)


class OwnEnvironment(BackendBase):
    """For backends that run in a uv environment made from their lock: set `recipe`."""

    recipe: EnvRecipe

    def env_recipe(self) -> EnvRecipe:
        return self.recipe

    def environment(self) -> EnvStatus:
        return env_status(self.recipe)
