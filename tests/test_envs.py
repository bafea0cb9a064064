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


def test_a_cuda_torch_mismatch_is_named_when_an_import_fails(tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.5.1\nnvidia-cuda-runtime-cu12==12.4.127\n")
    recipe = envs.EnvRecipe(backend="demo", lock=lock)
    monkeypatch.setattr(envs, "detected_gpus", lambda: (("NVIDIA H100", "470.1"),))
    said = envs.cuda_mismatch("ImportError: libcudnn.so.9: cannot open shared object file", recipe)
    assert "CUDA/torch mismatch" in said and "torch 2.5.1 is built for CUDA 12" in said and "470.1" in said
    assert envs.cuda_mismatch("OSError: torchvision/_C.so: undefined symbol: _ZN3c10", recipe)
    assert envs.cuda_mismatch("ModuleNotFoundError: No module named 'six'", recipe) == ""


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


def test_a_missing_distribution_is_reported_not_fatal(recipe):
    recipe = envs.EnvRecipe(backend="demo", lock=recipe.lock, imports=("six",), versions_of=("six", "torchvision"))
    envs.create_env(recipe)
    assert envs.check_env(recipe) == {"six": "1.16.0", "torchvision": "not installed"}


# --- which torch build a host gets ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv(envs.BUILD_VAR, raising=False)
    monkeypatch.setattr(envs, "detected_gpus", lambda: ())


@pytest.fixture
def h200(monkeypatch):
    monkeypatch.delenv(envs.BUILD_VAR, raising=False)
    monkeypatch.setattr(envs, "detected_gpus", lambda: (("NVIDIA H200", "580.95.05"),))


@pytest.fixture
def two_locks(tmp_path, monkeypatch) -> envs.EnvRecipe:
    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "requirements.lock").write_text("torch==2.14.1\nnvidia-cuda-runtime==13.0.96\n")
    (tmp_path / "requirements-cpu.lock").write_text("torch==2.13.0+cpu\n")
    return envs.EnvRecipe(backend="demo", lock=tmp_path / "requirements.lock",
                          cpu_lock=tmp_path / "requirements-cpu.lock")


def test_a_host_without_a_cuda_gpu_gets_the_cpu_lock(no_gpu, two_locks):
    choice = envs.choose_lock(two_locks)
    assert (choice.lock.name, choice.build, choice.reason) == ("requirements-cpu.lock", "cpu", "no CUDA GPU found")
    assert "CPU torch build" in envs.env_status(two_locks).detail


def test_a_host_with_a_cuda_gpu_gets_the_cuda_lock(h200, two_locks):
    choice = envs.choose_lock(two_locks)
    assert (choice.lock.name, choice.build) == ("requirements.lock", "cuda")
    assert choice.reason == "CUDA GPU found: NVIDIA H200 (driver 580.95.05)"


def test_each_build_has_its_own_environment(two_locks, monkeypatch):
    monkeypatch.setenv(envs.BUILD_VAR, "cpu")
    cpu = envs.env_dir(two_locks)
    monkeypatch.setenv(envs.BUILD_VAR, "cuda")
    assert envs.env_dir(two_locks) != cpu and envs.choose_lock(two_locks).reason == "UFT_TORCH_BUILD=cuda"


def test_the_override_wins_over_the_host_and_a_wrong_value_is_refused(h200, two_locks, monkeypatch):
    monkeypatch.setenv(envs.BUILD_VAR, " CPU ")
    assert envs.choose_lock(two_locks).build == "cpu"
    monkeypatch.setenv(envs.BUILD_VAR, "gpu")
    with pytest.raises(UftError, match="(?s)UFT_TORCH_BUILD='gpu' is not a torch build.*cuda, cpu"):
        envs.choose_lock(two_locks)


def test_a_backend_without_its_cpu_lock_gets_the_default_one_and_says_why(no_gpu, two_locks):
    two_locks.cpu_lock.unlink()
    choice = envs.choose_lock(two_locks)
    assert choice.lock.name == "requirements.lock"
    assert "no CUDA GPU found, but demo has no requirements-cpu.lock yet (see requirements-cpu.in)" in choice.reason


def test_a_driver_too_old_for_the_cuda_lock_is_said(two_locks, monkeypatch):
    monkeypatch.delenv(envs.BUILD_VAR, raising=False)
    monkeypatch.setattr(envs, "detected_gpus", lambda: (("Tesla T4", "535.104.05"),))
    assert "built for CUDA 13, which needs driver 580 or newer" in envs.choose_lock(two_locks).reason


def _fake_program(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{script}\n")
    (folder / name).chmod(0o755)


def test_gpus_are_read_from_nvidia_smi_then_the_drivers_files(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_program(bin_dir, "nvidia-smi", "echo 'NVIDIA H200, 580.95.05'; echo 'NVIDIA H200, 580.95.05'")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(envs, "NVIDIA_PROC", tmp_path / "no-driver")
    assert envs.cuda_gpus() == [("NVIDIA H200", "580.95.05")] * 2
    _fake_program(bin_dir, "nvidia-smi", "echo 'No devices were found'; exit 6")
    assert envs.cuda_gpus() == []
    proc = tmp_path / "proc"
    (proc / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (proc / "gpus" / "0000:01:00.0" / "information").write_text("Model: \t\t NVIDIA A100-SXM4-40GB\nIRQ: 42\n")
    (proc / "version").write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release\n")
    monkeypatch.setattr(envs, "NVIDIA_PROC", proc)
    assert envs.cuda_gpus() == [("NVIDIA A100-SXM4-40GB", "570.86.15")]


def test_a_cuda_toolkit_without_a_gpu_is_no_gpu(tmp_path, monkeypatch):
    _fake_program(tmp_path / "bin", "nvcc", "echo 'Cuda compilation tools, release 13.0'")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(envs, "NVIDIA_PROC", tmp_path / "no-driver")
    assert envs.cuda_gpus() == []


# --- the repo's locks ----------------------------------------------------------------------------------

def _pins(lock: Path) -> dict[str, str]:
    import re

    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), flags=re.M))


def test_llamafactory_without_a_cpu_lock_takes_the_cuda_lock_and_says_why(monkeypatch):
    """Its data pipeline imports torchaudio, whose CPU build only the PyTorch index serves (unreachable here):
    until a CPU lock is compiled where it is, a CPU host gets the CUDA lock, said so, never silently."""
    from unified_ft.backends.llamafactory import RECIPE

    assert RECIPE.cpu_lock is not None and not RECIPE.cpu_lock.exists()
    assert RECIPE.cpu_lock.with_suffix(".in").is_file()
    monkeypatch.setenv("UFT_TORCH_BUILD", "cpu")
    choice = envs.choose_lock(RECIPE)
    assert choice.lock == RECIPE.lock and "has no requirements-cpu.lock yet" in choice.reason


@pytest.mark.parametrize("backend", ["swift"])
def test_a_cpu_lock_differs_from_the_cuda_lock_only_in_the_torch_build(backend):
    folder = ROOT / "backends" / backend
    cuda = _pins(folder / "requirements.lock")
    assert envs.lock_build(folder / "requirements.lock") == "cuda" and any(p.startswith("nvidia-") for p in cuda)
    lock = folder / "requirements-cpu.lock"
    cpu = _pins(lock)
    assert envs.lock_build(lock) == "cpu"
    assert not [p for p in cpu if p.startswith(("nvidia-", "cuda-")) or p in ("triton", "torchvision")]
    cpu_builds = {p for p, v in cpu.items() if v.endswith("+cpu")}
    assert "torch" in cpu_builds
    same = {p: v for p, v in cpu.items() if p not in cpu_builds}
    assert same == {p: cuda[p] for p in same}, "refresh both locks with scripts/lock.sh"
    assert "--hash=sha256:" in lock.read_text().split("\ntorch==", 1)[1].split("\n")[1]


def test_the_swift_cpu_lock_pins_the_official_cpu_wheel():
    lock = (ROOT / "backends" / "swift" / "requirements-cpu.lock").read_text()
    assert ("torch==2.13.0+cpu \\\n    --hash=sha256:6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b"
            in lock)


def test_the_backends_recipes_have_a_cpu_lock_slot():
    from unified_ft.backends.llamafactory import RECIPE as LF
    from unified_ft.backends.swift import RECIPE as SWIFT

    for recipe in (LF, SWIFT):
        assert recipe.cpu_lock == recipe.lock.with_name("requirements-cpu.lock")
        assert recipe.cpu_lock.with_suffix(".in").is_file()


# --- where a +cpu wheel comes from ---------------------------------------------------------------------

def _wheel(folder: Path, name: str, version: str) -> Path:
    """A real, minimal pure-Python wheel (uv installs it) named like PyTorch's `+cpu` builds."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f"BUILD = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: uft-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    def digest(text: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},sha256={digest(text)},{len(text.encode())}\n" for path, text in files.items())
    record += f"{info}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(member, text)
    return path


@pytest.fixture
def cpu_recipe(tmp_path, monkeypatch, no_gpu) -> tuple[envs.EnvRecipe, Path]:
    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    wheel = _wheel(tmp_path / "built", "uftdemo", "1.0+cpu")
    digest = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    (tmp_path / "requirements.lock").write_text("six==1.16.0\n")
    (tmp_path / "requirements-cpu.lock").write_text(f"uftdemo==1.0+cpu \\\n    --hash=sha256:{digest}\n")
    recipe = envs.EnvRecipe(backend="demo", lock=tmp_path / "requirements.lock", imports=("uftdemo",),
                            versions_of=("uftdemo",), cpu_lock=tmp_path / "requirements-cpu.lock")
    return recipe, wheel


def test_a_local_cpu_wheel_is_used_without_asking_the_index(cpu_recipe, tmp_path, monkeypatch):
    recipe, wheel = cpu_recipe
    monkeypatch.setenv(envs.CPU_INDEX_VAR, "http://127.0.0.1:9/whl/cpu")  # nothing listens: asking it fails
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("UV_FIND_LINKS", f"{tmp_path / 'elsewhere'},{wheel.parent}")
    assert envs.cpu_wheel_sources(recipe.cpu_lock) == ([], [f"uftdemo==1.0+cpu from {wheel.parent}"])
    envs.create_env(recipe)
    assert envs.check_env(recipe) == {"uftdemo": "1.0+cpu"}
    assert json.loads((envs.env_dir(recipe) / envs.MARKER).read_text())["torch_build"] == "none"


def test_without_a_local_wheel_the_cpu_index_page_of_that_package_is_given(cpu_recipe, tmp_path, monkeypatch):
    """Served like download.pytorch.org/whl/cpu/<package>/ (root-relative links), every other package from
    PyPI as usual."""
    import functools
    import http.server
    import threading

    recipe, wheel = cpu_recipe
    root = tmp_path / "server"
    (root / "whl" / "cpu" / "uftdemo").mkdir(parents=True)
    wheel.rename(root / "whl" / "cpu" / wheel.name)
    (root / "whl" / "cpu" / "uftdemo" / "index.html").write_text(
        f'<html><body><a href="/whl/cpu/{wheel.name.replace("+", "%2B")}">{wheel.name}</a></body></html>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        index = f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
        monkeypatch.setenv(envs.CPU_INDEX_VAR, index + "/")
        assert envs.cpu_wheel_sources(recipe.cpu_lock)[0] == ["--find-links", f"{index}/uftdemo/"]
        envs.create_env(recipe)
        assert envs.check_env(recipe) == {"uftdemo": "1.0+cpu"}
    finally:
        server.shutdown()


def test_an_unreachable_cpu_index_fails_with_the_way_out(cpu_recipe, monkeypatch):
    recipe, _ = cpu_recipe
    monkeypatch.setenv(envs.CPU_INDEX_VAR, "http://127.0.0.1:9/whl/cpu")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(UftError, match="(?s)127.0.0.1:9/whl/cpu/uftdemo/.*UV_FIND_LINKS.*UFT_TORCH_BUILD=cuda"):
        envs.create_env(recipe)
    assert not envs.env_dir(recipe).exists()
