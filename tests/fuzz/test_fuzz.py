"""The fuzz suite: every generated bad input must exit 2, print no traceback, name the file/key/row
the case declares, and leave nothing behind (see fuzz_cases.py; totals are printed at the end)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_cases import CASES  # noqa: E402
from fuzz_engine import RESULTS, make_model_folder, run_case  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def model_folder(fuzz_root) -> Path:
    return make_model_folder(fuzz_root / "_model")


def test_there_are_enough_cases():
    assert len(CASES) >= 300
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fuzz_case(case, fuzz_root, model_folder):
    outcome = run_case(case, fuzz_root, model_folder)
    RESULTS.append(outcome)
    assert outcome.verdict == "clean", outcome.explain()
