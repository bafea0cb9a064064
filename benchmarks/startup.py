"""How long uft takes to answer: `uft --help`, `uft validate SPEC`, `uft plan SPEC`, as a user types them.

Each command runs as a subprocess (the console script, so Python's start and every import count), the
three alternated over several rounds; the median is printed beside its goal. The spec is the reference
`specs/sft-lora.yaml` (its model is a hub id: plan does not fetch it).

    python benchmarks/startup.py [--rounds 7] [--backend trl]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, median, table, timed, uft_command  # noqa: E402

SPEC = ROOT / "specs" / "sft-lora.yaml"
#: Goals in seconds (issue 12).
GOALS = {"uft --help": 0.3, "uft validate": 0.5, "uft plan": 1.0}


def commands(backend: str) -> dict[str, list[str]]:
    return {"uft --help": uft_command("--help"), "uft validate": uft_command("validate", str(SPEC)),
            "uft plan": uft_command("plan", str(SPEC), "--backend", backend)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backend", default="trl", help="the backend `uft plan` plans for")
    args = parser.parse_args(argv)
    argvs = commands(args.backend)
    for command in argvs.values():  # warm the file cache and .pyc files: a user's second call, not a cold boot
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(args.rounds):
        for name, command in argvs.items():
            times[name].append(timed(command))
    rows = []
    for name, values in times.items():
        took, goal = median(values), GOALS[name]
        rows.append([name, took, min(values), max(values), f"< {goal}", f"{took / goal:.2f}",
                     "ok" if took < goal else "MISSED"])
    print(f"median of {args.rounds} rounds (seconds); ratio = measured / goal")
    print(table(["command", "median s", "min s", "max s", "goal s", "ratio", ""], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
