"""Integration fixtures shared across modules: one real bake-off of trl, LLaMA-Factory and ms-swift (built once
per session; its runs also serve the three-backend agreement tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import same_spec

from unified_ft.cli import main


@pytest.fixture(scope="session")
def same_job_bakeoff(tmp_path_factory, tiny_model) -> Path:
    """`uft bakeoff --strict` of one spec on the three backends: the folder it wrote."""
    folder = tmp_path_factory.mktemp("bakeoff")
    out = folder / "out"
    assert main(["bakeoff", str(same_spec(folder, tiny_model)), "--backends", "trl,llamafactory,swift", "--strict",
                 "-o", str(out)]) == 0
    return out
