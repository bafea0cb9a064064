"""What one finished run measured, for the bake-off: read from the run directory, never from the spec.

Timings come from the trainer probe (the wall-clock end of every optimizer step, the tokens fed by then, the
moment the framework's Python started) and from the manifest (how long the framework's process ran); quality
from eval.json. Nothing here imports torch: the files are all it needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .comparison import Generation, LossPoint, Measurements, Stat
from .effective import read_observed
from .runs import read_json, read_jsonl

#: Peak dense bf16/fp16 tensor FLOP/s per GPU (vendor datasheets, without sparsity), matched by name.
PEAK_FLOPS = (
    ("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12),
    ("A10", 125e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("V100", 125e12), ("T4", 65e12),
)
#: The preference judges' numbers that are measures (eval.json's preference block also holds counts and beta).
PREFERENCE_JUDGES = ("reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward", "tuned_logp_accuracy",
                     "pairwise_accuracy", "score_margin")
#: Eval measures where lower is better (everything else in eval: higher is better).
LOWER_IS_BETTER = ("loss", "perplexity", "forgetting_delta")


def warmup_steps(steps: int, asked: int | None = None) -> int:
    """Steps left out of the throughput: at least the first (its start is the framework's own setup)."""
    if asked is not None:
        return max(1, asked)
    return max(1, min(5, steps // 10))


def run_figures(run_dir: Path, warmup: int) -> dict[str, float | None]:
    """One run's speed and memory figures (None where the run did not record what they need)."""
    observed = read_observed(run_dir) or {}
    manifest = read_json(run_dir / "manifest.json")
    steps = observed.get("steps") or []
    done = observed.get("done") or {}
    started = observed.get("process_started")
    figures: dict[str, float | None] = {
        "wall_s": manifest.get("framework_s"),
        "first_step_s": steps[0]["t"] - started if steps and started else None,
        "train_s": None, "tokens_per_s": None, "supervised_tokens_per_s": None,
        "peak_memory_mb": done.get("peak_memory_mb"), "peak_reserved_mb": done.get("peak_reserved_mb"),
        "mfu": None,
    }
    if len(steps) > warmup:
        first, last = steps[warmup - 1], steps[-1]
        seconds = last["t"] - first["t"]
        if seconds > 0:
            figures["train_s"] = seconds
            figures["tokens_per_s"] = (last["tokens"] - first["tokens"]) / seconds
            supervised = last.get("supervised_tokens", 0) - first.get("supervised_tokens", 0)
            figures["supervised_tokens_per_s"] = supervised / seconds if supervised > 0 else None
    parameters = (observed.get("model") or {}).get("total_parameters")
    figures["mfu"] = mfu(figures["tokens_per_s"], parameters, done.get("device"), done.get("device_count"))
    return figures


def mfu(tokens_per_s: float | None, parameters: int | None, device: str | None, devices: int | None) -> float | None:
    """Model FLOPs utilisation: 6 x parameters x tokens/s (forward and backward) over the devices' peak."""
    peak = peak_flops(device)
    if not tokens_per_s or not parameters or peak is None:
        return None
    return 6 * parameters * tokens_per_s / (peak * max(1, devices or 1))


def peak_flops(device: str | None) -> float | None:
    """The GPU's peak dense bf16 FLOP/s from its name (None for a CPU or an unknown GPU)."""
    if not device or device.startswith("cpu"):
        return None
    return next((flops for name, flops in PEAK_FLOPS if name.lower() in device.lower()), None)


def eval_figures(run_dir: Path) -> dict[str, float]:
    """The shared evaluation's numbers for the tuned model, flat: loss, perplexity, metrics, checks, judges."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    tuned = report.get("tuned") or {}
    found: dict[str, float] = {k: tuned[k] for k in ("loss", "perplexity") if isinstance(tuned.get(k), (int, float))}
    found.update({k: v for k, v in (tuned.get("metrics") or {}).items() if isinstance(v, (int, float))})
    found.update({f"check {k}": v for k, v in (tuned.get("checks") or {}).items() if isinstance(v, (int, float))})
    preference = report.get("preference") or {}
    found.update({k: preference[k] for k in PREFERENCE_JUDGES if isinstance(preference.get(k), (int, float))})
    forgetting = report.get("forgetting") or {}
    if isinstance(forgetting.get("delta"), (int, float)):
        found["forgetting_delta"] = forgetting["delta"]
    return found


def loss_curve(run_dir: Path, key: str = "loss") -> list[LossPoint]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [LossPoint(step=row["step"], loss=row[key]) for row in read_jsonl(path)
            if isinstance(row.get(key), (int, float)) and isinstance(row.get("step"), int)]


def generations(run_dir: Path, count: int = 5) -> list[Generation]:
    """The tuned model's first answers to the eval prompts (eval/samples.jsonl)."""
    path = run_dir / "eval" / "samples.jsonl"
    if not path.is_file():
        return []
    found = []
    for row in read_jsonl(path):
        if len(found) >= count:
            break
        found.append(Generation(prompt=_prompt_text(row.get("prompt")), reference=row.get("reference"),
                                answer=str(row.get("tuned", ""))))
    return found


def measurements(run_dirs: list[Path], warmup: int | None = None) -> Measurements | None:
    """Every run's figures over the repeats of one backend (None: no run finished)."""
    if not run_dirs:
        return None
    observed = read_observed(run_dirs[0]) or {}
    count = warmup_steps(len(observed.get("steps") or []), warmup)
    runs = [run_figures(d, count) for d in run_dirs]
    evals = [eval_figures(d) for d in run_dirs]
    finals = [_final_loss(d) for d in run_dirs]

    def stat(key: str) -> Stat:
        return Stat.of([r[key] for r in runs])

    gpu_only = {k: stat(k) if any(r[k] is not None for r in runs) else None for k in ("peak_reserved_mb", "mfu")}
    names = sorted({k for e in evals for k in e})
    return Measurements(
        wall_s=stat("wall_s"), first_step_s=stat("first_step_s"), warmup_steps=count, train_s=stat("train_s"),
        tokens_per_s=stat("tokens_per_s"), supervised_tokens_per_s=stat("supervised_tokens_per_s"),
        peak_memory_mb=stat("peak_memory_mb"), final_loss=Stat.of(finals),
        eval={name: Stat.of([e.get(name) for e in evals]) for name in names}, **gpu_only)


def _final_loss(run_dir: Path) -> float | None:
    curve = loss_curve(run_dir)
    return curve[-1].loss if curve else None


def _prompt_text(prompt: Any) -> str:
    """A chat prompt (a list of messages) as plain text for the side-by-side table."""
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt if isinstance(m, dict))
    return str(prompt or "")
