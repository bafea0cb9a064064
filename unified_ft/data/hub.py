"""Hub datasets: downloaded once with the `datasets` library into uft's cache as JSONL, then read like any
local file. Kept as references in specs (e.g. imported from LLaMA-Factory's registry), so a spec stays small
and a machine with a hub fetches them when a run starts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from unified_ft.data.files import check_file
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
    where = f"hub:{hub}" + (f" ({subset})" if subset else "") + f" split {split}" + \
        (" on ModelScope" if site == "modelscope" else "")
    if os.path.lexists(target):
        _check_cached(target, where)
        return target
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
    partial = target.with_suffix(f".{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        loaded.to_json(str(partial), lines=True, force_ascii=False)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(where, f"could not write uft's cached copy {target}: {exc.strerror or exc}",
                        hint="free some disk space, or set UFT_CACHE_DIR to a writable folder") from None
    return target


def _check_cached(target: Path, where: str) -> None:
    """The cached copy must be a regular file: a folder or a FIFO left there would be read as the dataset."""
    try:
        check_file(target)
    except DataError as exc:
        raise DataError(where, f"uft's cached copy {target} cannot be used: {exc}",
                        hint=f"delete {target}; it is downloaded again on the next run") from None
