"""What the benchmarks share: timing a command, a tiny model and a spec built locally, printing a table.

Benchmarks are not tests: each prints figures measured side by side in one run (so the machine's speed
cancels out of the ratios) and the goal beside them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The interpreter whose uft is measured: the one running the benchmark, or UFT_BENCH_PYTHON (e.g. another
#: checkout's .venv/bin/python, to measure "before" and "after" on the same machine).
PYTHON = os.environ.get("UFT_BENCH_PYTHON") or sys.executable
#: That interpreter's `uft` console script (what a user types), else `uft` on PATH.
UFT = str(Path(PYTHON).with_name("uft")) if Path(PYTHON).with_name("uft").exists() else "uft"


def uft_command(*args: str) -> list[str]:
    """The argv of `uft ARGS` as a user types it (the console script, not `python -m`)."""
    return [UFT, *args]


def timed(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Wall seconds of one subprocess; a failure stops the benchmark with its output (a wrong figure is worse)."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")
    return took


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def tiny_model(folder: Path) -> Path:
    """The tests' tiny model (a BPE tokenizer trained on the fly, a random 2-layer Qwen2), built once per folder."""
    if (folder / "config.json").is_file():
        return folder
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import build_tiny_model

    return build_tiny_model(folder)


def tiny_rows(count: int = 24) -> list[dict[str, str]]:
    """Alpaca rows the tiny model can learn (the tests' sft_rows)."""
    return [{"instruction": f"say number {i % 10}", "input": "", "output": f"number {i % 10} yes"}
            for i in range(count)]


def write_spec(folder: Path, model: Path, name: str, data_file: Path, steps: int = 10, **overrides: object) -> Path:
    """A LoRA SFT spec of `steps` steps with evaluation off: what the overhead benchmark runs."""
    spec: dict[str, object] = {
        "name": name,
        "model": {"path": str(model)},
        "template": "chatml",
        "adapter": {"type": "lora", "r": 4, "alpha": 8},
        "data": {"train": [{"path": str(data_file), "format": "alpaca"}], "max_length": 64},
        "training": {"max_steps": steps, "learning_rate": 1.0e-3, "per_device_batch_size": 2,
                     "logging_steps": 1},
        "evaluation": {"enabled": False},
    }
    spec.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table (what a terminal and a pasted note both show well)."""
    cells = [[str(c) for c in header], *[[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment plus `extra` (what a user's shell would give both commands)."""
    env = dict(os.environ)
    env.update(extra)
    return env


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
