"""Hub datasets: downloaded once with the `datasets` library into uft's cache as JSONL, then read like any
local file. Kept as references in specs (e.g. imported from LLaMA-Factory's registry), so a spec stays small
and a machine with a hub fetches them when a run starts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from unified_ft.errors import DataError


def cached_path(hub: str, subset: str | None, split: str, site: str = "huggingface") -> Path:
    from unified_ft.envs import user_cache

    key = hashlib.sha256(f"{site}\0{hub}\0{subset or ''}\0{split}".encode()).hexdigest()[:16]
    safe = hub.replace("/", "--")
    return user_cache("datasets", f"{safe}-{key}.jsonl")


def fetch_hub_dataset(hub: str, subset: str | None = None, split: str | None = None,
                      site: str | None = None) -> Path:
    """The local JSONL copy of a hub dataset split, downloaded on first use."""
    split, site = split or "train", site or "huggingface"
    target = cached_path(hub, subset, split, site)
    if target.exists():
        return target
    where = f"hub:{hub}" + (f" ({subset})" if subset else "") + f" split {split}" + \
        (" on ModelScope" if site == "modelscope" else "")
    package = "modelscope" if site == "modelscope" else "datasets"
    try:
        module = __import__(package)
    except ImportError:
        raise DataError(where, f"this hub dataset needs the `{package}` package, which is not installed",
                        hint=f"pip install {package}, or download the data and give `path`") from None
    try:
        if site == "modelscope":
            loaded = module.MsDataset.load(hub, subset_name=subset, split=split).to_hf_dataset()
        else:
            loaded = module.load_dataset(hub, subset, split=split)
    except Exception as exc:  # network, auth, unknown id: the library's own message says which
        raise DataError(where, f"could not load it from the hub: {type(exc).__name__}: {exc}",
                        hint="check the id, the network and HF_TOKEN; or download it and give a local `path`") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    loaded.to_json(str(partial), lines=True, force_ascii=False)
    os.replace(partial, target)
    return target
