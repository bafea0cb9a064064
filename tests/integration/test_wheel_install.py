"""The wheel as a user installs it: built, installed without extras into a fresh venv, then every command
that needs no framework is run there (help, validate, backends, plan and translate on every built-in backend,
both imports).

This catches what an editable checkout hides: a module the core imports but does not declare, a data
file left out of the wheel (swift's argument table, the backends' locks), an import of torch on the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unified_ft.plugin import builtin_backends

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


def _run(argv: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A fresh venv with only the built wheel (and its declared dependencies) installed."""
    if UV is None:
        pytest.fail("uv is not installed (it is a dependency of unified_ft)")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    # build from a copy of the tracked files, as a release would (no .venv, no caches, no runs/)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    built = _run([UV, "build", "--wheel", "--out-dir", str(work / "dist"), str(source)], work)
    noisy = [line for line in built.stderr.splitlines() if "Warning" in line or "deprecat" in line.lower()]
    assert not noisy, "\n".join(noisy[:20])  # the metadata is clean: a new user's install is quiet
    wheel = next((work / "dist").glob("unified_ft-*.whl"))
    venv = work / "venv"
    _run([UV, "venv", "--python", sys.executable, str(venv)], work)
    _run([UV, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)], work)
    return venv


def test_the_wheel_holds_every_backend_folder_with_its_data_files(bare_venv, tmp_path):
    """No package list or per-backend data line in pyproject: what discovery finds must be everything."""
    where = _run([str(bare_venv / "bin" / "python"), "-c", "import unified_ft.backends as b; print(b.__path__[0])"],
                 tmp_path).stdout.strip()
    tracked = subprocess.run(["git", "ls-files", "backends"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    missing = [name for name in tracked if not (Path(where) / Path(name).relative_to("backends")).is_file()]
    assert not missing, missing


def _uft(venv: Path, cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return _run([str(venv / "bin" / "uft"), *args], cwd, env=env).stdout


def test_the_bare_wheel_has_no_framework_and_runs_every_framework_free_command(bare_venv, tmp_path):
    python = str(bare_venv / "bin" / "python")
    probe = "import sys, unified_ft.cli; print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') " \
            "if m in sys.modules))"
    assert _run([python, "-c", probe], tmp_path).stdout.strip() == "[]"
    installed = _run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'trl') if "
                      "u.find_spec(m)])"], tmp_path).stdout.strip()
    assert installed == "[]"  # nothing of the [trl] extra: a user's bare install

    assert "Usage" in _uft(bare_venv, tmp_path, "--help")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 2}))
    (model / "tokenizer_config.json").write_text("{}")
    (tmp_path / "train.jsonl").write_text(json.dumps({"instruction": "2024-01-01", "output": "007"}) + "\n")
    spec = {"name": "bare", "model": {"path": "./model"}, "template": "chatml",
            "data": {"train": [{"path": "train.jsonl", "format": "alpaca"}]}, "training": {"max_steps": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert "ok" in _uft(bare_venv, tmp_path, "validate", "spec.yaml")
    listed = _uft(bare_venv, tmp_path, "backends")
    for backend in builtin_backends():  # every backend folder, with its entry point, is in the wheel
        assert f"{backend}: " in listed
    for backend in builtin_backends():
        assert "resolved spec" in _uft(bare_venv, tmp_path, "plan", "spec.yaml", "--backend", backend)
        _uft(bare_venv, tmp_path, "translate", "spec.yaml", "--backend", backend, "-o", f"out-{backend}")
    assert (tmp_path / "out-swift" / "data" / "train.parquet").is_file()
    assert (tmp_path / "out-llamafactory" / "data" / "train.parquet").is_file()

    # both importers, which read data files that only a complete wheel carries (swift's argument table)
    shutil.copy(ROOT / "tests" / "backends" / "swift_examples" / "lora_sft.sh", tmp_path / "lora_sft.sh")
    _uft(bare_venv, tmp_path, "import", "swift", "lora_sft.sh", "-o", "from-swift.yaml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "demo.json"}}))
    (tmp_path / "data" / "demo.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "yo"}]))
    (tmp_path / "their.yaml").write_text(yaml.safe_dump({
        "model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "stage": "sft", "do_train": True,
        "finetuning_type": "lora", "lora_target": "all", "dataset": "demo", "template": "qwen",
        "output_dir": "saves/x"}))
    _uft(bare_venv, tmp_path, "import", "llamafactory", "their.yaml", "-o", "from-lf.yaml")
    for imported in ("from-swift.yaml", "from-lf.yaml"):
        assert "ok" in _uft(bare_venv, tmp_path, "validate", imported)
