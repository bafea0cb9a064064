"""llama.cpp's own HF -> GGUF converter, taken from a package registry: no hand-written GGUF writer.

PyPI has no package that installs `convert_hf_to_gguf.py`, but the source distribution of
`llama-cpp-python` carries llama.cpp (vendor/llama.cpp) with the converter, its `conversion/` package
and the matching `gguf-py` (PyPI's `gguf` lags behind it and does not work with it). uft downloads that
one pinned sdist once, checks its hash, unpacks only those files into the user's cache and runs the
script with the current interpreter. `UFT_LLAMA_CPP_CONVERTER` may point at a convert_hf_to_gguf.py of
your own instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .envs import user_cache
from .errors import UftError

SDIST_PROJECT = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
INDEX_URL = "https://pypi.org/simple/{project}/"
_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def cache_dir() -> Path:
    return user_cache("llama.cpp", SDIST_VERSION)


def converter_script(say: Callable[[str], None] = lambda m: None) -> Path:
    """Path of convert_hf_to_gguf.py, fetched and unpacked on first use."""
    own = os.environ.get("UFT_LLAMA_CPP_CONVERTER")
    if own:
        if not Path(own).is_file():
            raise UftError(f"UFT_LLAMA_CPP_CONVERTER={own} is not a file\n    fix: point it at convert_hf_to_gguf.py")
        return Path(own)
    target = cache_dir()
    script = target / "convert_hf_to_gguf.py"
    if script.exists() and (target / ".complete").exists():
        return script
    say(f"fetching llama.cpp's converter ({SDIST_PROJECT} {SDIST_VERSION} source, about 77 MB, once)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        archive = Path(tmp) / "sdist.tar.gz"
        _download(_sdist_url(), archive)
        unpacked = Path(tmp) / "llama.cpp"
        _extract(archive, unpacked)
        (unpacked / ".complete").write_text(SDIST_VERSION)
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return script


def convert(model_dir: Path, out_file: Path, outtype: str = "f16", model_name: str | None = None,
            say: Callable[[str], None] = lambda m: None) -> Path:
    """Run llama.cpp's converter on a Hugging Face model folder; returns the .gguf file."""
    if outtype not in OUTTYPES:
        raise UftError(f"unknown GGUF type {outtype!r}; use one of {', '.join(OUTTYPES)}")
    script = converter_script(say)
    argv = [sys.executable, str(script), str(model_dir), "--outtype", outtype, "--outfile", str(out_file)]
    if model_name:
        argv += ["--model-name", model_name]
    say("converting to GGUF with llama.cpp's convert_hf_to_gguf.py")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0 or not out_file.exists():
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise UftError(f"llama.cpp's converter failed (exit {done.returncode}):\n{tail}\n"
                       "    fix: the model's architecture or tokenizer may be unknown to this llama.cpp version; "
                       "export `merged` and convert it with a newer llama.cpp")
    return out_file


def _sdist_url() -> str:
    request = urllib.request.Request(INDEX_URL.format(project=SDIST_PROJECT),
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    wanted = f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise UftError(f"could not reach the package index to fetch llama.cpp's converter: {exc}\n"
                       "    fix: set UFT_LLAMA_CPP_CONVERTER to a local convert_hf_to_gguf.py") from None
    for entry in files:
        if entry["filename"] == wanted:
            return entry["url"]
    raise UftError(f"{wanted} is not on the package index\n    fix: set UFT_LLAMA_CPP_CONVERTER")


def _download(url: str, target: Path) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=300) as response, target.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SDIST_SHA256:
        raise UftError(f"the downloaded {SDIST_PROJECT} {SDIST_VERSION} does not match its pinned hash; not used")


def _extract(archive: Path, target: Path) -> None:
    """Only the converter's files, with tarfile's safe `data` filter (no links out, no absolute paths)."""
    prefix = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp/"
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()) or ".." in member.name.split("/"):
                continue
            if member.name.startswith(prefix) and member.name[len(prefix):].startswith(_MEMBERS):
                member.name = member.name[len(prefix):]
                members.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise UftError(f"{archive.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12 / 3.11.4
        tar.extractall(target, members=members, **safe)
