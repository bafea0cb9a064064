"""Print the fuzz totals (cases, clean, tracebacks, accepted, ...) at the end of a session that ran them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_engine import RESULTS, totals_table  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if RESULTS:
        terminalreporter.write_sep("=", "uft fuzz totals")
        terminalreporter.write_line(totals_table(RESULTS))
