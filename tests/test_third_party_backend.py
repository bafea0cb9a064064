"""A backend from another distribution, found through its entry point: installed with pip and used by
`uft backends`, `uft plan`, `uft translate` and `uft import`; one that lacks a member of the protocol, or
shadows a built-in name, is said plainly."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unified_ft.cli import main
from unified_ft.errors import BackendInvalid
from unified_ft.plugin import Backend, available_backends, load_backend, registration_warnings

#: A complete third-party backend: it inherits the defaults, declares every feature, writes one JSON file.
TOY = '''
"""A tiny third-party uft backend: the spec's settings in one JSON file, run by a one-line Python."""
import json
import sys
from pathlib import Path

from unified_ft.plugin import (NATIVE, BackendBase, Capability, EnvStatus, ImportResult, NativeJob, RunOutputs,
                               all_features)


class ToyBackend(BackendBase):
    name = "toy"
    capabilities = {**{f: NATIVE for f in all_features()},
                    "method.ppo": Capability("unsupported", "toy has no PPO")}

    def environment(self):
        return EnvStatus(True, "toy needs nothing")

    def translate(self, spec, data, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        config = out_dir / "toy.json"
        config.write_text(json.dumps({"toy_model": spec.model.path, "toy_lr": spec.training.learning_rate,
                                      "toy_rows": data.train_rows}))
        return NativeJob(out_dir, [config], [sys.executable, "-m", "toy_runner", "toy.json"], cwd=out_dir)

    def check(self, job):
        return None

    def progress(self, row):
        return None

    def collect(self, run_dir, job):
        return RunOutputs(None, run_dir / "metrics.jsonl")

    def import_native(self, path, **options):
        native = json.loads(Path(path).read_text())
        spec = {"name": "from-toy", "model": {"path": native["toy_model"]},
                "data": {"train": [{"path": native["toy_data"], "format": "alpaca"}]}}
        return ImportResult(spec, [("toy_model", "model.path"), ("toy_data", "data.train")], {}, ["toy note"])
'''


def _alpaca(path: Path) -> Path:
    path.write_text(json.dumps({"instruction": "say hi", "input": "", "output": "hi"}) + "\n", encoding="utf-8")
    return path


def _spec(folder: Path) -> Path:
    data = _alpaca(folder / "train.jsonl")
    path = folder / "job.yaml"
    path.write_text(f"name: toyjob\nmodel:\n  path: org/model\ndata:\n  train:\n    - path: {data}\n"
                    "      format: alpaca\ntraining:\n  max_steps: 2\n  learning_rate: 0.00042\n", encoding="utf-8")
    return path


def _distribution(root: Path, dist: str, modules: dict[str, str], entries: dict[str, str]) -> Path:
    """A project folder that pip can install: its modules, a pyproject and the backend entry points."""
    root.mkdir(parents=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    points = "".join(f'{name} = "{target}"\n' for name, target in entries.items())
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.1"

        [tool.setuptools]
        py-modules = {json.dumps(sorted(modules))}

        [project.entry-points."unified_ft.backends"]
        """) + points, encoding="utf-8")
    return root


def _registered(folder: Path, monkeypatch, dist: str, modules: dict[str, str], entries: dict[str, str]) -> None:
    """Modules and a dist-info with their entry points, on sys.path: what an installed package looks like to
    importlib.metadata, without the time of a pip install (the pip test below does the real thing)."""
    folder.mkdir(parents=True)
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)
    info = folder / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[unified_ft.backends]\n" + "".join(
        f"{name} = {target}\n" for name, target in entries.items()), encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))


# --- a real install -------------------------------------------------------------------------------


def _uft(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The `uft` command, with the folder pip installed into on the path (as a site directory would be)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    script = Path(sys.executable).parent / "uft"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "unified_ft.cli"]
    return subprocess.run([*argv, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _builds_wheels_here() -> bool:
    """setuptools that can make a wheel without fetching anything: 70.1+ has bdist_wheel, older needs `wheel`."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    return bool(importlib.util.find_spec("wheel") or importlib.util.find_spec("setuptools.command.bdist_wheel"))


def test_a_pip_installed_third_party_backend_is_listed_planned_and_translated(tmp_path):
    project = _distribution(tmp_path / "uft-toy", "uft-toy", {"uft_toy": TOY}, {"toy": "uft_toy:ToyBackend"})
    target = tmp_path / "site"
    isolation = ["--no-build-isolation"] if _builds_wheels_here() else []  # else pip fetches setuptools
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                           *isolation, "--target", str(target), str(project)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("uft_toy-0.1.dist-info/entry_points.txt"))
    work = tmp_path / "work"
    work.mkdir()
    spec = _spec(work)

    listed = _uft(target, work, "backends")
    assert listed.returncode == 0, listed.stderr
    assert "toy: ready - toy needs nothing" in listed.stdout and "uft import toy CONFIG" in listed.stdout
    assert "trl" in listed.stdout and "warning" not in listed.stdout

    planned = _uft(target, work, "plan", str(spec), "--backend", "toy")
    assert planned.returncode == 0, planned.stderr
    assert "backend toy" in planned.stdout and "native/toy.json" in planned.stdout
    assert '"toy_lr": 0.00042' in planned.stdout and "toy_runner toy.json" in planned.stdout

    translated = _uft(target, work, "translate", str(spec), "--backend", "toy", "-o", "out")
    assert translated.returncode == 0, translated.stderr
    assert json.loads((work / "out" / "toy.json").read_text()) == {"toy_model": "org/model", "toy_lr": 0.00042,
                                                                    "toy_rows": 1}
    assert "run it without uft" in translated.stdout and "toy_runner toy.json" in translated.stdout

    ppo = work / "ppo.yaml"
    ppo.write_text(spec.read_text() + "method:\n  name: ppo\n  reward_model: org/rm\n", encoding="utf-8")
    no_ppo = _uft(target, work, "plan", str(ppo), "--backend", "toy")
    assert no_ppo.returncode == 2 and "toy has no PPO" in no_ppo.stderr and "Traceback" not in no_ppo.stderr


# --- the same, registered in-process --------------------------------------------------------------


@pytest.fixture
def toy(tmp_path, monkeypatch) -> None:
    _registered(tmp_path / "toy-site", monkeypatch, "uft-toy", {"uft_toy": TOY}, {"toy": "uft_toy:ToyBackend"})


def test_a_registered_backend_loads_with_the_base_class_defaults(toy):
    plugin = load_backend("toy")
    assert isinstance(plugin, Backend) and "toy" in available_backends()
    assert plugin.notes(None) == [] and plugin.env_recipe() is None
    assert callable(plugin.effective)  # the shared read-back of uft's trainer probe (tests/test_effective.py)


def test_uft_import_dispatches_through_the_backends_importer(toy, tmp_path, capsys):
    native = tmp_path / "toy-config.json"
    native.write_text(json.dumps({"toy_model": "org/model", "toy_data": str(_alpaca(tmp_path / "t.jsonl"))}))
    out = tmp_path / "spec.yaml"
    assert main(["import", "toy", str(native), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toy_model" in printed and "model.path" in printed and "toy note" in printed
    assert "org/model" in out.read_text()


HALF = '''
from unified_ft.plugin import NATIVE, EnvStatus


class Half:
    """Written against an older protocol: no check, notes, effective, env_recipe or import_native."""

    name = "halfway"
    capabilities = {"method.sft": NATIVE}

    def environment(self):
        return EnvStatus(True, "ready")

    def translate(self, spec, data, out_dir):
        raise AssertionError("never called")

    def progress(self, row):
        return None

    def collect(self, run_dir, job):
        raise AssertionError("never called")
'''


@pytest.fixture
def halfway(tmp_path, monkeypatch) -> None:
    _registered(tmp_path / "half-site", monkeypatch, "uft-half", {"uft_half": HALF}, {"halfway": "uft_half:Half"})


def test_a_plugin_missing_members_is_a_clear_error_naming_them(halfway):
    with pytest.raises(BackendInvalid) as info:
        load_backend("halfway")
    text = str(info.value)
    assert "backend 'halfway'" in text and "entry point halfway = uft_half:Half from uft-half" in text
    assert "lacks import_native, env_recipe, check, effective, notes" in text
    assert "BackendBase" in text


def test_the_cli_says_so_with_exit_2_and_no_traceback(halfway, tmp_path, capsys):
    assert main(["plan", str(_spec(tmp_path)), "--backend", "halfway"]) == 2
    err = capsys.readouterr().err
    assert "does not implement the Backend protocol" in " ".join(err.split()) and "Traceback" not in err


def test_uft_backends_lists_the_others_and_the_broken_one(halfway, capsys):
    assert main(["backends"]) == 2
    out, err = capsys.readouterr()
    assert "trl" in out and "method.sft" in out
    assert "halfway: broken" in out and "lacks" in out and "halfway" in err


@pytest.mark.parametrize(("source", "needle"), [
    (HALF.replace('name = "halfway"', 'name = "other"'), "its name is 'other', but it is registered as 'halfway'"),
    (HALF.replace('{"method.sft": NATIVE}', '{"method.sft": "native"}'), "capabilities is not a dict of"),
    (HALF.replace("class Half:", "class Half:\n    def __init__(self, needed):\n        pass\n"), "could not be made"),
])
def test_a_plugin_of_the_wrong_shape_is_named(tmp_path, monkeypatch, source, needle):
    base = "\nfrom unified_ft.plugin import BackendBase\n"
    source = base + source.replace("class Half:", "class Half(BackendBase):\n    def check(self, job):\n"
                                   "        return None\n")
    _registered(tmp_path / "odd", monkeypatch, "uft-odd", {"uft_odd": source}, {"halfway": "uft_odd:Half"})
    with pytest.raises(BackendInvalid, match="halfway") as info:
        load_backend("halfway")
    assert needle in str(info.value)


def test_an_entry_point_shadowing_a_builtin_is_ignored_and_said(tmp_path, monkeypatch, capsys):
    shadow = TOY.replace('name = "toy"', 'name = "trl"')
    _registered(tmp_path / "shadow", monkeypatch, "uft-shadow", {"uft_shadow": shadow},
                {"trl": "uft_shadow:ToyBackend"})
    assert type(load_backend("trl")).__name__ == "TrlBackend"  # the built-in wins
    warnings = registration_warnings()
    assert warnings == ["entry point trl = uft_shadow:ToyBackend (from uft-shadow) is ignored: the built-in trl "
                        "backend wins; register the plugin under another name"]
    assert main(["backends"]) == 0
    assert "warning: entry point trl = uft_shadow:ToyBackend" in " ".join(capsys.readouterr().out.split())


def test_two_third_party_plugins_of_one_name_resolve_by_distribution_name(tmp_path, monkeypatch):
    _registered(tmp_path / "b", monkeypatch, "uft-b", {"uft_b": TOY}, {"toy": "uft_b:ToyBackend"})
    _registered(tmp_path / "a", monkeypatch, "uft-a", {"uft_a": TOY}, {"toy": "uft_a:ToyBackend"})
    assert type(load_backend("toy")).__module__ == "uft_a"
    assert registration_warnings() == ["entry point toy = uft_b:ToyBackend (from uft-b) is ignored: uft_a:ToyBackend "
                                       "from uft-a wins (the first by distribution name); register one of them "
                                       "under another name"]
