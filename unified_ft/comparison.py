"""bakeoff.json: what a bake-off found, as one pydantic model (its schema is `specs/bakeoff.schema.json`).

The bake-off (bakeoff.py) fills it; the report (report.py) only reads it, so the HTML page, the markdown
summary and a pipeline reading bakeoff.json all show the same numbers.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Literal

from pydantic import BaseModel, Field

BAKEOFF_VERSION = 1

Status = Literal["succeeded", "failed", "interrupted", "not run"]


class Stat(BaseModel):
    """One measurement over the repeats: every value, their mean and their spread."""

    values: list[float] = Field(description="One value per repeat that measured it, in run order.")
    mean: float | None = Field(description="Mean of the values (null: nothing measured).")
    spread: float | None = Field(description="Sample standard deviation of the values (null: fewer than 2).")

    @classmethod
    def of(cls, values: list[float | None]) -> Stat:
        found = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        mean = statistics.fmean(found) if found else None
        spread = statistics.stdev(found) if len(found) >= 2 else None
        return cls(values=found, mean=mean, spread=spread)


class Measurements(BaseModel):
    """How one backend ran the job: speed, memory and quality, each over the repeats."""

    wall_s: Stat = Field(description="Seconds from starting the framework's process to its exit.")
    first_step_s: Stat = Field(description="Seconds from starting the framework's process to the end of the "
                               "first optimizer step (model loading, data preprocessing, compilation).")
    warmup_steps: int = Field(description="Optimizer steps left out of train_s and the throughputs (warm-up).")
    train_s: Stat = Field(description="Seconds of the optimizer steps after the warm-up ones.")
    tokens_per_s: Stat = Field(description="Non-padding tokens fed per second, after warm-up.")
    supervised_tokens_per_s: Stat = Field(description="Tokens carrying loss per second, after warm-up.")
    peak_memory_mb: Stat = Field(description="Peak memory: the process's RSS on CPU, max allocated on GPU (MiB).")
    peak_reserved_mb: Stat | None = Field(None, description="GPU only: max memory reserved by the allocator (MiB).")
    mfu: Stat | None = Field(None, description="GPU only: model FLOPs utilisation, 6 x parameters x tokens/s over "
                             "the device's peak dense bf16/fp16 FLOPs (0..1).")
    final_loss: Stat = Field(description="Training loss of the last logged step.")
    eval: dict[str, Stat] = Field(default_factory=dict, description="The shared evaluation of the tuned model: "
                                  "loss, perplexity, generation metrics, checks, and the preference judges "
                                  "(reward_accuracy, reward_margin, pairwise_accuracy).")


class LossPoint(BaseModel):
    step: int
    loss: float


class Generation(BaseModel):
    """One answer of the tuned model to an eval prompt (first repeat)."""

    prompt: str
    reference: str | None = None
    answer: str


class BackendResult(BaseModel):
    """One backend in the bake-off: how its runs ended, what they measured, where they are."""

    backend: str
    status: Status = Field(description="succeeded: every repeat succeeded; failed/interrupted: the first one "
                           "that did not; not run: the bake-off stopped before it.")
    run_dirs: list[str] = Field(default_factory=list, description="The run directory of each repeat.")
    error: str | None = Field(None, description="Why it failed, as uft reported it.")
    log_tail: str | None = Field(None, description="The last lines of the framework's stderr when it failed.")
    command: list[str] = Field(default_factory=list, description="The exact native command the framework ran.")
    native_dir: str | None = Field(None, description="The native files the framework was given (first repeat).")
    versions: dict[str, str] = Field(default_factory=dict, description="Versions the run itself recorded.")
    loss_curves: list[list[LossPoint]] = Field(default_factory=list, description="Training loss per step, "
                                               "one curve per repeat.")
    eval_loss_curves: list[list[LossPoint]] = Field(default_factory=list, description="Eval loss during "
                                                    "training, one curve per repeat (when the spec evaluates).")
    measurements: Measurements | None = None
    generations: list[Generation] = Field(default_factory=list, description="A few answers, side by side.")
    notes: list[str] = Field(default_factory=list, description="What the plan said about this backend.")


class ParityRow(BaseModel):
    """One like-for-like check across the backends, with the numbers behind it."""

    number: int = Field(description="The check's number (1-9), as the issue and docs list them.")
    check: str = Field(description="What must be the same.")
    passed: bool | None = Field(description="true: the same on every backend; false: not; null: could not be "
                                "judged (fewer than two backends have the value).")
    values: dict[str, Any] = Field(description="Backend -> what it did (a short value or a summary).")
    detail: str = Field(description="The reason, naming the backends and values that differ.")
    severity: Literal["breaks", "asymmetry", "info"] = Field(
        "breaks", description="breaks: a failure makes the comparison not like-for-like; asymmetry: listed; "
        "info: shown only (versions).")


class Verdict(BaseModel):
    like_for_like: bool = Field(description="Every 'breaks' check passed on every backend that ran.")
    reasons: list[str] = Field(default_factory=list, description="Why not, one line per failed check.")
    judged_by: list[str] = Field(default_factory=list, description="The eval measures that decide quality.")


class Comparison(BaseModel):
    """One measure across backends: who is best, and whether that is beyond the noise."""

    measure: str
    better: Literal["higher", "lower"]
    best: str | None = Field(description="The backend with the best mean (null: fewer than two measured, or the "
                             "best two within 0.01% of each other).")
    noise: bool | None = Field(description="true: the best and the runner-up are within each other's spread, "
                               "so it is not a win; null: no spread (one repeat).")
    values: dict[str, float] = Field(description="Backend -> mean.")


class Preflight(BaseModel):
    """Before any training: every backend planned, and the first samples through each one's own template."""

    refusals: dict[str, list[str]] = Field(default_factory=dict, description="Backend -> what it cannot honour.")
    first_samples: dict[str, list[str]] = Field(default_factory=dict, description="Backend -> the first samples "
                                                "as its own template rendered them (decoded).")
    checks: list[ParityRow] = Field(default_factory=list, description="Checks 1-3 on the rendered samples.")
    errors: dict[str, str] = Field(default_factory=dict, description="Backend -> why its pre-flight failed.")


class BakeoffResult(BaseModel):
    """bakeoff.json: one job on several backends, whether it was like-for-like, and how each did."""

    schema_version: int = Field(BAKEOFF_VERSION, description="Version of this schema.")
    name: str = Field(description="The spec's name.")
    spec_sha256: str = Field(description="Hash of the spec as given.")
    method: str = Field(description="The training method (sft, dpo, ...).")
    backends: list[str] = Field(description="The backends, in the order they ran.")
    repeats: int = Field(description="Runs per backend.")
    strict: bool = Field(description="Whether a failed parity check stops the bake-off.")
    executor: str = Field("local", description="Where the runs ran: local (one at a time, on this machine) or ray "
                          "(one Ray task per backend and repeat, a node each).")
    created: str = Field(description="When the bake-off started (UTC, ISO 8601).")
    finished: str | None = Field(None, description="When it ended (null: still running or interrupted).")
    host: dict[str, Any] = Field(default_factory=dict, description="The machine: cpu, cores, memory, gpu.")
    verdict: Verdict
    preflight: Preflight
    parity: list[ParityRow] = Field(default_factory=list, description="Checks 1-9 on the runs' effective.json.")
    results: list[BackendResult]
    comparisons: list[Comparison] = Field(default_factory=list, description="Speed, memory and quality measures "
                                          "across the backends.")
