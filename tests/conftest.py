"""Shared fixtures: a tiny local model (built once per session) and small datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Qwen2 with a freshly trained BPE tokenizer (built with torch/transformers)."""
    pytest.importorskip("transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2-tiny")
