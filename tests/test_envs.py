"""Backend environments built for real with uv from a lock (a tiny one: `six`), cached, locked, checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unified_ft import envs
from unified_ft.errors import UftError


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> envs.EnvRecipe:
    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.16.0\n")
    return envs.EnvRecipe(backend="demo", lock=lock, imports=("six",), versions_of=("six",))


def test_create_check_reuse_and_remove(recipe):
    path = envs.create_env(recipe)
    assert path.parent == envs.cache_root() and path.name.startswith("demo-")
    assert envs.check_env(recipe) == {"six": "1.16.0"}
    created = json.loads((path / envs.MARKER).read_text())["created_at"]
    assert envs.create_env(recipe) == path  # reused, not rebuilt
    assert json.loads((path / envs.MARKER).read_text())["created_at"] == created
    assert [e["backend"] for e in envs.list_envs()] == ["demo"]
    assert envs.remove_env(recipe) == path and not path.exists()
    with pytest.raises(UftError, match="uft env create demo"):
        envs.check_env(recipe)


def test_a_changed_lock_makes_a_new_environment(recipe):
    first = envs.env_dir(recipe)
    recipe.lock.write_text("six==1.17.0\n")
    assert envs.env_dir(recipe) != first


def test_half_created_environment_is_rebuilt(recipe):
    target = envs.env_dir(recipe)
    target.mkdir(parents=True)
    (target / "leftover").write_text("from a build that was killed")
    envs.create_env(recipe)
    assert not (target / "leftover").exists() and envs.is_complete(target)


def test_two_runs_asking_at_once_build_it_once(recipe, tmp_path):
    program = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r}); "
               "from pathlib import Path; from unified_ft import envs; "
               f"r = envs.EnvRecipe('demo', Path({str(recipe.lock)!r}), ('six',), ('six',)); "
               "print(envs.create_env(r))")
    procs = [subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs[0] == outs[1]
    assert envs.check_env(recipe) == {"six": "1.16.0"}


def test_broken_environment_is_reported_with_the_fix(recipe):
    path = envs.create_env(recipe)
    for found in path.rglob("six.py"):
        found.unlink()
    with pytest.raises(UftError, match="(?s)is broken: ModuleNotFoundError: No module named 'six'.*uft env "
                                       "remove demo"):
        envs.check_env(recipe)


def test_a_lock_uv_cannot_satisfy_leaves_nothing_behind(recipe):
    recipe.lock.write_text("this-package-does-not-exist-uft==0.0.1\n")
    with pytest.raises(UftError, match="uv pip failed"):
        envs.create_env(recipe)
    assert not envs.env_dir(recipe).exists()
