"""A realistic bakeoff.json built by hand: trl and LLaMA-Factory ran twice each, ms-swift failed, check 4 broke.

The report's tests render it; it has every part a real bake-off fills (spreads, eval curves, generations,
pre-flight samples, versions) and one hostile string per free-text field a framework or user controls.
"""

from __future__ import annotations

import math

from unified_ft.comparison import (
    BackendResult,
    BakeoffResult,
    Comparison,
    Generation,
    LossPoint,
    Measurements,
    ParityRow,
    Preflight,
    Stat,
    Verdict,
)

HOSTILE = "<script>alert('pwned')</script>"
LOG_TAIL = ("Traceback (most recent call last):\n  File \"swift/cli/sft.py\", line 5, in <module>\n"
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB " + HOSTILE)
PROMPTS = [
    ("Anna is 31 and lives in Lyon.", '{"name": "Anna", "age": 31, "city": "Lyon"}'),
    ("Meet Bo, 44, from Oslo.", '{"name": "Bo", "age": 44, "city": "Oslo"}'),
    ("Carla (27) moved to Porto.", '{"name": "Carla", "age": 27, "city": "Porto"}'),
]


def _curve(start: float, rate: float, jitter: float, steps: int = 30) -> list[LossPoint]:
    """A loss curve that falls like a real one, with a deterministic wiggle."""
    return [LossPoint(step=s, loss=round(0.05 + start * math.exp(-rate * s) + jitter * math.sin(3 * s), 4))
            for s in range(1, steps + 1)]


def _measurements(wall: list[float], tps: list[float], memory: list[float], loss: list[float],
                  rouge: list[float], eval_loss: list[float]) -> Measurements:
    supervised = [t * 0.38 for t in tps]
    return Measurements(
        wall_s=Stat.of(wall), first_step_s=Stat.of([w * 0.22 for w in wall]), warmup_steps=2,
        train_s=Stat.of([w * 0.7 for w in wall]), tokens_per_s=Stat.of(tps),
        supervised_tokens_per_s=Stat.of(supervised), peak_memory_mb=Stat.of(memory), final_loss=Stat.of(loss),
        eval={"rouge_l": Stat.of(rouge), "loss": Stat.of(eval_loss), "exact_match": Stat.of([0.9, 0.9]),
              "json": Stat.of([1.0, 1.0])})


def _trl() -> BackendResult:
    return BackendResult(
        backend="trl", status="succeeded", run_dirs=["bake/runs/trl-1", "bake/runs/trl-2"],
        command=["python", "native/train.py", "--config", "native/config.yaml"], native_dir="bake/runs/trl-1/native",
        versions={"torch": "2.13.0+cpu", "transformers": "4.57.1", "trl": "1.16.0", "peft": "0.17.1"},
        loss_curves=[_curve(2.4, 0.16, 0.03), _curve(2.4, 0.155, 0.035)],
        eval_loss_curves=[[LossPoint(step=s, loss=v) for s, v in ((10, 0.61), (20, 0.24), (30, 0.15))]],
        measurements=_measurements([61.2, 63.0], [2150.0, 2090.0], [1480.0, 1502.0], [0.081, 0.084],
                                   [0.962, 0.958], [0.152, 0.149]),
        generations=[Generation(prompt=p, reference=ref, answer=ref) for p, ref in PROMPTS],
        notes=["precision auto resolved to fp32 (no CUDA GPU)"])


def _llamafactory() -> BackendResult:
    answers = [ref for _, ref in PROMPTS[:2]] + ['{"name": "Carla", "age": 27, "city": "Porto", "extra": 1}']
    return BackendResult(
        backend="llamafactory", status="succeeded", run_dirs=["bake/runs/llamafactory-1", "bake/runs/llamafactory-2"],
        command=["llamafactory-cli", "train", "native/config.yaml"], native_dir="bake/runs/llamafactory-1/native",
        versions={"torch": "2.13.0+cpu", "transformers": "4.56.2", "llamafactory": "0.9.4", "peft": "0.17.1"},
        loss_curves=[_curve(2.5, 0.13, 0.04), _curve(2.5, 0.128, 0.045)],
        measurements=_measurements([74.5, 71.9], [1780.0, 1840.0], [1712.0, 1695.0], [0.112, 0.107],
                                   [0.951, 0.957], [0.171, 0.176]),
        generations=[Generation(prompt=p, reference=ref, answer=a)
                     for (p, ref), a in zip(PROMPTS, answers, strict=True)],
        notes=[f"backend_options.llamafactory.max_samples applies to this backend only {HOSTILE}"])


def _swift() -> BackendResult:
    return BackendResult(
        backend="swift", status="failed", run_dirs=["bake/runs/swift-1"], error=f"swift exited with 1 {HOSTILE}",
        log_tail=LOG_TAIL, command=["swift", "sft", "--model", "tiny", "--train_type", "lora", "--lora_rank", "8",
                                    "--system", "You're a helpful bot; say \"hi\" & <b>bye</b>"],
        native_dir="bake/runs/swift-1/native", versions={"torch": "2.13.0+cpu", "ms-swift": "3.9.0"})


def _parity() -> list[ParityRow]:
    both = ("trl", "llamafactory")
    same = {b: "ok" for b in both}

    def row(number: int, check: str, values: dict, passed: bool | None = True, detail: str = "the same on every "
            "backend that ran", severity: str = "breaks") -> ParityRow:
        return ParityRow(number=number, check=check, passed=passed, values=values, detail=detail, severity=severity)

    return [
        row(1, "token ids of the first samples", {b: "sha 3f9a1c (4 samples)" for b in both}),
        row(2, "supervised tokens per sample and in total", {b: 10912 for b in both}),
        row(3, "samples after preprocessing", {b: 320 for b in both}),
        row(4, "effective batch and optimizer steps", {"trl": {"batch": 16, "steps": 60},
                                                         "llamafactory": {"batch": 32, "steps": 30}}, False,
            "llamafactory: batch 32 (2 x 16 accumulation) vs trl: batch 16 (4 x 4)"),
        row(5, "learning rate at every step", {b: "60 steps, max diff 0" for b in both}),
        row(6, "adapter: targets, rank, alpha, dropout, trainable parameters",
            {b: {"r": 8, "alpha": 16, "dropout": 0.05, "trainable": 921600} for b in both}),
        row(7, "precision, seed, optimizer, clipping, checkpointing, sample order", same),
        row(8, "versions", {"trl": "transformers 4.57.1", "llamafactory": "transformers 4.56.2"}, False,
            "transformers differs: trl 4.57.1, llamafactory 4.56.2", "info"),
        row(9, "backend_options that apply to some backends only", {"trl": None, "llamafactory": "max_samples"},
            False, "llamafactory has max_samples=1000; the others have nothing like it", "asymmetry"),
    ]


def sample_result() -> BakeoffResult:
    """The hand-built bake-off: 3 backends, 2 repeats, swift failed, check 4 (effective batch) broke."""
    return BakeoffResult(
        name="extract-json", spec_sha256="9f2c" * 16, method="sft", backends=["trl", "llamafactory", "swift"],
        repeats=2, strict=False, created="2026-12-02T03:20:00Z", finished="2026-12-02T03:31:12Z",
        host={"cpu": "x86_64", "cores": 2, "memory_gb": 8, "gpu": None},
        verdict=Verdict(like_for_like=False, reasons=["4. effective batch and optimizer steps: llamafactory "
                                                      "batch 32 vs trl batch 16"], judged_by=["rouge_l"]),
        preflight=Preflight(
            first_samples={"trl": ["<|im_start|>user\nAnna is 31 and lives in Lyon.<|im_end|>\n<|im_start|>assistant"],
                           "llamafactory": ["<|im_start|>user\nAnna is 31 and lives in Lyon.<|im_end|>\n"
                                            "<|im_start|>assistant"],
                           "swift": [HOSTILE]},
            checks=[ParityRow(number=1, check="token ids of the first samples", passed=True,
                              values={"trl": "sha 3f9a1c", "llamafactory": "sha 3f9a1c", "swift": "sha 3f9a1c"},
                              detail="the same on every backend")]),
        parity=_parity(), results=[_trl(), _llamafactory(), _swift()],
        comparisons=[
            Comparison(measure="eval.rouge_l", better="higher", best="trl", noise=True,
                       values={"trl": 0.96, "llamafactory": 0.954}),
            Comparison(measure="eval.loss", better="lower", best="trl", noise=False,
                       values={"trl": 0.1505, "llamafactory": 0.1735}),
            Comparison(measure="tokens_per_s", better="higher", best="trl", noise=False,
                       values={"trl": 2120.0, "llamafactory": 1810.0}),
            Comparison(measure="peak_memory_mb", better="lower", best="trl", noise=False,
                       values={"trl": 1491.0, "llamafactory": 1703.5}),
        ])
