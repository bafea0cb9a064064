"""Hub datasets: downloaded once with the `datasets` library into uft's cache as JSONL, then read like any
local file. Kept as references in specs (e.g. imported from LLaMA-Factory's registry), so a spec stays small
and a machine with a hub fetches them when a run starts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from unified_ft.errors import DataError


def cached_path(hub: str, subset: str | None, split: str) -> Path:
    from unified_ft.envs import user_cache

    key = hashlib.sha256(f"{hub}\0{subset or ''}\0{split}".encode()).hexdigest()[:16]
    safe = hub.replace("/", "--")
    return user_cache("datasets", f"{safe}-{key}.jsonl")


def fetch_hub_dataset(hub: str, subset: str | None = None, split: str | None = None) -> Path:
    """The local JSONL copy of a hub dataset split, downloaded on first use."""
    split = split or "train"
    target = cached_path(hub, subset, split)
    if target.exists():
        return target
    where = f"hub:{hub}" + (f" ({subset})" if subset else "") + f" split {split}"
    try:
        import datasets
    except ImportError:
        raise DataError(where, "hub datasets need the `datasets` package, which is not installed",
                        hint="pip install datasets, or download the data and give `path`") from None
    try:
        loaded = datasets.load_dataset(hub, subset, split=split)
    except Exception as exc:  # network, auth, unknown id: the library's own message says which
        raise DataError(where, f"could not load it from the hub: {type(exc).__name__}: {exc}",
                        hint="check the id, the network and HF_TOKEN; or download it and give a local `path`") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    loaded.to_json(str(partial), lines=True, force_ascii=False)
    os.replace(partial, target)
    return target
