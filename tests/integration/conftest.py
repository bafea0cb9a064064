"""Integration fixtures shared across modules: one real bake-off of all five backends (built once per session;
its runs also serve the agreement tests of test_backends_agree.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import BAKEOFF_BACKENDS, same_spec

from unified_ft.cli import main


@pytest.fixture(scope="session")
def same_job_bakeoff(tmp_path_factory, tiny_model) -> Path:
    """`uft bakeoff --strict` of one spec on every backend: the folder it wrote."""
    folder = tmp_path_factory.mktemp("bakeoff")
    out = folder / "out"
    assert main(["bakeoff", str(same_spec(folder, tiny_model)), "--backends", ",".join(BAKEOFF_BACKENDS), "--strict",
                 "-o", str(out)]) == 0
    return out
