"""Run every fuzz case outside pytest and print the totals table (and, with --failures, each failing case).

    python -m tests.fuzz.report [--failures] [-k SUBSTRING]
    python tests/fuzz/report.py [--failures] [-k SUBSTRING]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_cases import CASES  # noqa: E402
from fuzz_engine import failures_report, run_all, totals_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", action="store_true", help="also print each failing case with its output")
    parser.add_argument("-k", dest="match", default="", help="only cases whose id contains this")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.match in c.id]
    with tempfile.TemporaryDirectory(prefix="uft-fuzz-") as tmp:
        outcomes = run_all(Path(tmp), cases)
    print(totals_table(outcomes))
    if args.failures:
        print(failures_report(outcomes))
    return 0 if all(o.verdict == "clean" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
