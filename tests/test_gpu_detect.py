"""detect_gpu answers without importing torch (a second of every `uft plan`) when torch cannot see a GPU."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import subprocess
import sys

import pytest

plan = importlib.import_module("unified_ft.plan")  # the module (`unified_ft.plan` is also a function)


def _torch_spec(tmp_path, version_py: str | None) -> importlib.machinery.ModuleSpec:
    folder = tmp_path / "torch"
    folder.mkdir()
    if version_py is not None:
        (folder / "version.py").write_text(version_py)
    spec = importlib.machinery.ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    return spec


CPU_BUILD = ("from typing import Optional\n__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n"
             "hip: Optional[str] = None\n")


@pytest.mark.parametrize(("version_py", "may_see"), [
    (CPU_BUILD, False),
    (CPU_BUILD.replace("cuda: Optional[str] = None", "cuda: Optional[str] = '12.8'"), True),
    (CPU_BUILD.replace("hip: Optional[str] = None", "hip: Optional[str] = '6.4.1'"), True),
    ("cuda = None\nhip = None\n", False),  # older builds wrote no annotation
    ("__version__ = '9.9'\n", True),  # a layout uft does not know: torch itself answers
    (None, True),
])
def test_the_torch_build_decides_whether_torch_is_asked(tmp_path, monkeypatch, version_py, may_see):
    node = tmp_path / "nvidiactl"
    node.write_text("")
    monkeypatch.setattr(plan, "GPU_DEVICE_NODES", (str(node),))
    assert plan._torch_may_see_gpu(_torch_spec(tmp_path, version_py)) is may_see


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device nodes are a Linux matter")
def test_no_gpu_device_node_means_no_gpu_even_for_a_cuda_build(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "GPU_DEVICE_NODES", (str(tmp_path / "absent"),))
    cuda = CPU_BUILD.replace("cuda: Optional[str] = None", "cuda: Optional[str] = '12.8'")
    assert plan._torch_may_see_gpu(_torch_spec(tmp_path, cuda)) is False


def test_detect_gpu_agrees_with_torch_and_imports_it_only_when_it_could_say_yes():
    program = ("import importlib.util, sys\nfrom unified_ft.plan import detect_gpu, _torch_may_see_gpu\n"
               "found = detect_gpu()\nimported = 'torch' in sys.modules\n"
               "asked = _torch_may_see_gpu(importlib.util.find_spec('torch'))\nimport torch\n"
               "print(found == torch.cuda.is_available(), imported == asked)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
