"""uft's fixed cost per run: the same tiny job through `uft run` and through the framework's own command.

For each backend, each round ejects the job (`uft translate`, not timed) and then times, alternated so
that drift in the machine's speed hits both alike:
  uft     `uft run SPEC --backend B` (plan, data, translate, probe, train, collect, read-back; evaluation off)
  native  the ejected NativeJob's argv with its env, in its folder: what the README says runs without uft
The median difference is uft's fixed cost; it is then broken down by timing each of uft's own stages in a
fresh process (`--stages`), on the spec and on a copy of the last finished run. What is left over is
process start, the supervisor (the parent-death wrapper, polling), the manifest and the log scrubbing,
plus the probe's own work inside the framework.

Goal: under 0.5 s per run with the environment already created and evaluation off.

    python benchmarks/overhead.py [--backends trl,llamafactory,swift] [--rounds 3] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, clean_env, median, table, timed, tiny_model, tiny_rows, uft_command, write_spec  # noqa: E402

GOAL_S = 0.5
STAGES = ("import", "plan", "data", "translate", "probe", "collect", "read-back")


def available(backend: str) -> bool:
    """trl is always tried; an isolated backend only when its environment exists (`uft env path X`)."""
    if backend == "trl":
        return True
    done = subprocess.run(uft_command("env", "path", backend), capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip().splitlines()[-1]).is_dir()


def eject(spec: Path, backend: str, out: Path) -> dict:
    """Translate in-process (untimed) and return the native command as the NativeJob states it."""
    from unified_ft.launch import translate_to
    from unified_ft.specfile import load_spec

    _, job = translate_to(load_spec(spec), backend, out)
    return {"argv": job.argv, "env": job.env, "cwd": str(job.cwd or job.native_dir)}


def stages(spec_path: Path, backend: str, finished: Path) -> dict[str, float]:
    """Seconds of each of uft's stages of one run, measured in this (fresh) process."""
    took: dict[str, float] = {}
    start = time.perf_counter()
    from unified_ft import launch
    from unified_ft.effective import attach_probe, compare, standard_metrics, write_effective
    from unified_ft.envs import described_versions
    from unified_ft.plugin import NativeJob
    from unified_ft.specfile import load_spec

    took["import"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="uft-stages-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        plan = launch._for_backend(launch.make_plan(load_spec(spec_path), backend))
        took["plan"] = time.perf_counter() - start
        start = time.perf_counter()
        data = launch.prepare_data(plan.spec, tmp / "data")
        took["data"] = time.perf_counter() - start
        start = time.perf_counter()
        job = plan.backend.translate(plan.spec, data, tmp / "native")
        took["translate"] = time.perf_counter() - start
        start = time.perf_counter()
        attach_probe(job, tmp / "probe")
        took["probe"] = time.perf_counter() - start

        run = tmp / "run"
        shutil.copytree(finished, run, symlinks=True)
        for made in ("adapter", "model", "metrics.jsonl", "effective.json"):
            target = run / made
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        job = NativeJob(native_dir=run / "native", files=[], argv=[], cwd=run / "native")
        start = time.perf_counter()
        plan.backend.collect(run, job)
        took["collect"] = time.perf_counter() - start
        start = time.perf_counter()
        effective = plan.backend.effective(run, plan.spec, data.train_rows)
        write_effective(run, effective)
        standard_metrics(run)
        recipe = plan.backend.env_recipe()
        if effective.versions and recipe is not None:
            described_versions(effective.versions, recipe)
        compare(plan.spec, effective, plan.backend.name)
        took["read-back"] = time.perf_counter() - start
    return took


def measure(backend: str, spec: Path, work: Path, rounds: int) -> dict:
    """Alternated uft / native wall times for one backend, and uft's stages."""
    uft_s, native_s, stage_rows = [], [], []
    last_run: Path | None = None
    for index in range(rounds):
        native = eject(spec, backend, work / f"{backend}-native-{index}")
        runs = work / f"{backend}-runs-{index}"
        order = ("uft", "native") if index % 2 == 0 else ("native", "uft")
        for which in order:
            if which == "uft":
                uft_s.append(timed(uft_command("run", str(spec), "--backend", backend, "--runs-dir", str(runs))))
                last_run = next(runs.glob(f"*/{backend}"))
            else:
                native_s.append(timed(native["argv"], env=clean_env(**native["env"]), cwd=Path(native["cwd"])))
        print(f"  {backend} round {index + 1}: uft {uft_s[-1]:.2f} s, native {native_s[-1]:.2f} s", flush=True)
    assert last_run is not None
    for _ in range(rounds):
        done = subprocess.run([PYTHON, __file__, "--stages", str(spec), backend, str(last_run)],
                              capture_output=True, text=True, check=True)
        stage_rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"uft": median(uft_s), "native": median(native_s),
            "paired": median([u - n for u, n in zip(uft_s, native_s, strict=True)]),
            "min": min(uft_s) - min(native_s),
            "stages": {name: median([row[name] for row in stage_rows]) for name in STAGES}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="trl,llamafactory,swift",
                        help="comma-separated; isolated backends without an environment are skipped")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--stages", nargs=3, metavar=("SPEC", "BACKEND", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stages:
        spec, backend, finished = args.stages
        print(json.dumps(stages(Path(spec), backend, Path(finished))))
        return 0
    backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory(prefix="uft-overhead-") as tmp_name:
        work = Path(tmp_name)
        model = tiny_model(work / "model")
        data = work / "sft.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in tiny_rows()), encoding="utf-8")
        spec = write_spec(work, model, "overhead", data, steps=args.steps)
        results = {}
        for backend in backends:
            if not available(backend):
                print(f"  {backend}: skipped (no environment; `uft env create {backend}`)")
                continue
            timed(uft_command("run", str(spec), "--backend", backend, "--runs-dir", str(work / "warm")))  # warm-up
            results[backend] = measure(backend, spec, work, args.rounds)
    print(f"\n{args.steps} steps of the tiny model, evaluation off, median of {args.rounds} alternated rounds")
    print("uft cost = median over rounds of (uft - native) in the same round; min cost = fastest uft - fastest "
          "native (the least disturbed by a busy machine)")
    rows = []
    for backend, r in results.items():
        cost = r["paired"]
        verdict = "ok" if cost < GOAL_S else "MISSED"
        rows.append([backend, r["uft"], r["native"], f"{r['uft'] / r['native']:.3f}", f"{cost:+.2f}",
                     f"{r['min']:+.2f}", f"< {GOAL_S}", verdict])
    print(table(["backend", "uft run s", "native s", "ratio", "uft cost s", "min cost s", "goal s", ""], rows))
    print("\nuft's own stages (s, median, each in a fresh process; the rest of the cost is process start, "
          "supervision, manifest, scrubbing and the probe inside the framework)")
    print(table(["backend", *STAGES, "sum", "rest"],
                [[b, *(r["stages"][s] for s in STAGES), sum(r["stages"].values()),
                  r["paired"] - sum(r["stages"].values())] for b, r in results.items()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
