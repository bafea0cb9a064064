"""Base models prepared once for backends that cannot read them as given.

A model given as a GGUF file (the quickstart's SmolLM2) is dequantized and saved once as a safetensors
folder in the user's cache, for backends whose frameworks cannot load GGUF; every spec that runs on trl
then also runs on them. The folder is keyed by the GGUF file's path, size and modification time, written
to a temporary folder and renamed, under a file lock.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .envs import user_cache
from .spec import JobSpec

if TYPE_CHECKING:
    from .plugin import Backend


def models_cache() -> Path:
    return user_cache("models")


def gguf_as_safetensors(spec: JobSpec, say: Callable[[str], None] = lambda m: None) -> Path:
    """The cached safetensors folder for the spec's GGUF model (made on first use)."""
    from filelock import FileLock

    source = Path(spec.model.path) / spec.model.gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = models_cache() / f"{source.stem}-{key}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            return target
        say(f"converting {source.name} to a safetensors folder once ({target})")
        from .evaluate import require_stack
        from .modeling import load_model, model_config

        require_stack()
        tokenizer, model = load_model(model_config(spec))
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
            staging = Path(tmp) / "model"
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            shutil.move(str(staging), str(target))
    return target


def for_backend(spec: JobSpec, backend: Backend, say: Callable[[str], None] = lambda m: None
                ) -> tuple[JobSpec, str | None]:
    """The spec as the backend can load it, and what was derived (None when nothing changed). The backend's
    capability table says whether it reads GGUF itself (model.gguf native) or uft converts it (emulated)."""
    gguf = backend.capabilities.get("model.gguf")
    if not spec.model.gguf_file or (gguf is not None and gguf.level == "native"):
        return spec, None
    folder = gguf_as_safetensors(spec, say)
    converted = spec.model_copy(deep=True)
    converted.model.path, converted.model.gguf_file = str(folder), None
    return converted, f"{spec.model.path}/{spec.model.gguf_file} -> {folder} (dequantized once, cached)"
