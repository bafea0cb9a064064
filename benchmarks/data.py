"""uft's data path at scale: alpaca rows converted into each backend's native data files.

What is timed is what `uft translate` does with the data: uft's data step (`launch.prepare_data`: read,
check, mix, seeded shuffle, a 1% eval split, canonical JSONL) and then the backend's translator, which
writes its native files (trl: JSONL; LLaMA-Factory and ms-swift: Parquet). Each size runs in a fresh
subprocess, which reports its wall time and its peak resident memory (`resource.getrusage` ru_maxrss);
the same subprocess with no data step gives the baseline memory of the imports alone. Memory is flat
when the peak barely grows from the small size to the large one.

Goal: at least 200,000 rows/s and flat memory (streaming).

    python benchmarks/data.py [--rows 1000000] [--small 100000] [--backends trl,llamafactory,swift]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, table  # noqa: E402

GOAL_ROWS_S = 200_000
#: Plan takes a hub id as it is (nothing is fetched to translate), so no model is needed.
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def write_alpaca(path: Path, rows: int) -> Path:
    """`rows` varied alpaca rows (instruction, input, output), as a JSONL file."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps({"instruction": f"Summarise item {i} of the list in one sentence.",
                                  "input": "" if i % 3 else f"item {i}: the quick brown fox jumps over the lazy dog",
                                  "output": f"Item {i} is about a fox that jumps over a dog."}) + "\n")
    return path


def convert(data: Path, backend: str, out: Path, dry: bool) -> dict[str, float]:
    """In this process: translate a spec over `data` into `out` (or only import, when `dry`); time and memory."""
    start = time.perf_counter()
    from unified_ft.launch import translate_to
    from unified_ft.spec import JobSpec

    spec = JobSpec.model_validate({
        "name": "data-bench", "model": {"path": MODEL}, "template": "qwen",
        "data": {"train": [{"path": str(data), "format": "alpaca"}], "eval_split": 0.01, "max_length": 512},
        "training": {"max_steps": 10}, "evaluation": {"enabled": False}})
    imported = time.perf_counter() - start
    start = time.perf_counter()
    if not dry:
        translate_to(spec, backend, out)
    took = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": took, "import_s": imported, "peak_mb": peak_kb / 1024}


def measure(data: Path, backend: str, work: Path, dry: bool = False) -> dict[str, float]:
    out = work / f"{backend}-{data.stem}-{'dry' if dry else 'run'}"
    done = subprocess.run([PYTHON, __file__, "--convert", str(data), backend, str(out), "1" if dry else "0"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"converting for {backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="the smaller size, to see memory stay flat")
    parser.add_argument("--backends", default="trl,llamafactory,swift")
    parser.add_argument("--convert", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.convert:
        data, backend, out, dry = args.convert
        print(json.dumps(convert(Path(data), backend, Path(out), dry == "1")))
        return 0
    with tempfile.TemporaryDirectory(prefix="uft-data-bench-") as tmp_name:
        work = Path(tmp_name)
        small, large = write_alpaca(work / "small.jsonl", args.small), write_alpaca(work / "large.jsonl", args.rows)
        rows = []
        for backend in [b for b in args.backends.split(",") if b]:
            base = measure(small, backend, work, dry=True)
            s, big = measure(small, backend, work), measure(large, backend, work)
            rate = args.rows / big["seconds"]
            growth = big["peak_mb"] - s["peak_mb"]
            flat = growth < 0.1 * max(s["peak_mb"] - base["peak_mb"], 1) + 32
            rows.append([backend, f"{args.small / s['seconds']:,.0f}", f"{rate:,.0f}", f"{rate / GOAL_ROWS_S:.2f}",
                         f"{base['peak_mb']:.0f}", f"{s['peak_mb']:.0f}", f"{big['peak_mb']:.0f}",
                         "ok" if rate >= GOAL_ROWS_S and flat else "MISSED"])
            print(f"  {backend}: {big['seconds']:.1f} s for {args.rows:,} rows", flush=True)
    print(f"\nalpaca rows -> native data (data step + translator); goal >= {GOAL_ROWS_S:,} rows/s, flat memory")
    print(table(["backend", f"rows/s @{args.small:,}", f"rows/s @{args.rows:,}", "ratio to goal",
                 "imports MB", f"peak MB @{args.small:,}", f"peak MB @{args.rows:,}", ""], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
