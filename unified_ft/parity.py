"""The bake-off's like-for-like checks: the runs' effective.json compared across backends, check by check.

Each check is a ParityRow with the numbers behind it. Only what the frameworks really did is compared (read
back by the trainer probe), never what uft asked for; a value a backend could not read back leaves that
backend out of the check and says so. The numbering (1-9) is the one the docs and the report use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .comparison import ParityRow
from .effective import Effective, _same, shown_value
from .spec import JobSpec

#: Methods whose first-step samples every framework lays out the same way (one sequence per sample); for the
#: others, equal ids still pass, and unequal ones are shown unjudged.
TOKEN_COMPARABLE_METHODS = ("sft", "pt")
#: The shared stack whose versions check 8 lists (the framework's own package is listed too).
STACK = ("torch", "torch_build", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers")

Effectives = dict[str, Effective]


def parity_checks(spec: JobSpec, effectives: Effectives, backends: list[str]) -> list[ParityRow]:
    """Checks 1-9 over the backends that ran (`effectives`), in the order of `backends`."""
    ordered = {b: effectives[b] for b in backends if b in effectives}
    return [*sample_checks(spec, ordered), *batch_checks(ordered), lr_check(ordered), *adapter_checks(spec, ordered),
            *setting_checks(ordered), versions_check(ordered), options_check(spec, backends)]


def sample_checks(spec: JobSpec, effectives: Effectives) -> list[ParityRow]:
    """Checks 1-3: what the pre-flight can already tell (token ids, supervised tokens, samples)."""
    return [token_check(spec, effectives), supervised_check(spec, effectives), samples_check(effectives)]


def token_check(spec: JobSpec, effectives: Effectives) -> ParityRow:
    """1. The same token ids for the first samples: the template, tokenizer and truncation agree."""
    values = {b: _first_ids(e) for b, e in effectives.items()}
    row = _agreement(1, "same token ids for the first samples", values, shown=_ids_shown)
    if row.passed is False and spec.method.name not in TOKEN_COMPARABLE_METHODS:  # equal ids prove it; unequal not
        return _unjudged(1, "same token ids for the first samples", effectives, lambda e: _ids_summary(e),
                         f"not compared token by token: for {spec.method.name}, each framework's collator may lay a "
                         "preference pair out its own way (prompt/chosen/rejected apart or joined), and these "
                         "differ; the texts are in the pre-flight section")
    if row.passed is False:
        row.detail = _first_token_difference(values) or row.detail
    return row


def supervised_check(spec: JobSpec, effectives: Effectives) -> ParityRow:
    """2. The same tokens carry loss, per sample and in total: masking (train on answers only) agrees."""
    per_sample = {b: e.samples.supervised_tokens_per_sample for b, e in effectives.items()}
    totals = {b: e.samples.supervised_tokens_total for b, e in effectives.items()}
    values = {b: (per_sample[b], totals[b]) if per_sample[b] is not None or totals[b] is not None else None
              for b in effectives}
    row = _agreement(2, "same supervised tokens per sample and in total", values,
                     shown=lambda v: f"total {shown_value(v[1])}; per sample {shown_value(v[0])}")
    if row.passed is False:
        row.detail = _list_difference("supervised tokens of sample", per_sample, first_index=1) or \
            _named_difference("supervised tokens in total", totals)
    return row


def samples_check(effectives: Effectives) -> ParityRow:
    """3. The same number of samples after each framework's preprocessing (none dropped, none joined)."""
    values = {b: e.samples.framework_rows for b, e in effectives.items()}
    row = _agreement(3, "same number of samples after preprocessing", values)
    if row.passed is False:
        uft = next((e.samples.uft_rows for e in effectives.values() if e.samples.uft_rows is not None), None)
        row.detail = _named_difference("samples", values) + (f" (uft wrote {uft})" if uft is not None else "")
    return row


def batch_checks(effectives: Effectives) -> list[ParityRow]:
    """4. The same effective batch and the same number of optimizer steps (planned and done)."""
    return [
        _agreement(4, "same effective batch", {b: _batch_shape(e) for b, e in effectives.items()},
                   shown=lambda v: f"{v[0]} = {v[1]} x {v[2]} accumulation x {v[3]} processes",
                   key=lambda v: v[0]),
        _agreement(4, "same number of optimizer steps",
                   {b: e.batch.steps_done if e.batch.steps_done is not None else e.batch.optimizer_steps
                    for b, e in effectives.items()}),
    ]


def lr_check(effectives: Effectives) -> ParityRow:
    """5. The same learning rate at every step (warm-up, decay and the step the scheduler steps on)."""
    values = {b: e.learning_rate.per_step or None for b, e in effectives.items()}
    row = _agreement(5, "same learning rate at every step", values,
                     shown=lambda v: f"{len(v)} steps: {shown_value(v[:4])}{', ...' if len(v) > 4 else ''}")
    if row.passed is False:
        row.detail = _list_difference("learning rate at step", values, first_index=1) or row.detail
    return row


def adapter_checks(spec: JobSpec, effectives: Effectives) -> list[ParityRow]:
    """6. The same adapter as saved: type, targets, rank, alpha, dropout, rsLoRA/DoRA, trainable parameters."""
    fields: list[tuple[str, Callable[[Effective], Any]]] = [
        ("adapter type", lambda e: e.adapter.type),
        ("adapter target modules", lambda e: e.adapter.target_modules),
        ("adapter rank", lambda e: e.adapter.r),
        ("adapter alpha", lambda e: e.adapter.alpha),
        ("adapter dropout", lambda e: e.adapter.dropout),
        ("rsLoRA and DoRA", lambda e: _pair(e.adapter.rslora, e.adapter.dora)),
        ("trainable parameters", lambda e: e.adapter.trainable_parameters),
    ]
    if spec.adapter.type not in ("lora", "qlora", "dora"):
        fields = [fields[0], fields[-1]]
    return [_agreement(6, f"same {name}", {b: get(e) for b, e in effectives.items()}) for name, get in fields]


def setting_checks(effectives: Effectives) -> list[ParityRow]:
    """7. The same precision, quantization, seed, optimizer and its settings, clipping, checkpointing, order."""
    fields: list[tuple[str, Callable[[Effective], Any]]] = [
        ("compute precision", lambda e: e.precision.compute),
        ("weight dtypes", lambda e: e.precision.weights or None),
        ("quantization", lambda e: e.precision.quantization or "none"),
        ("seed", lambda e: e.seed),
        ("optimizer", lambda e: e.optimizer.name),
        ("weight decay", lambda e: e.optimizer.weight_decay),
        ("adam betas and epsilon", lambda e: _pair(e.optimizer.betas, e.optimizer.epsilon)),
        ("gradient clipping", lambda e: e.optimizer.max_grad_norm),
        ("gradient checkpointing", lambda e: e.gradient_checkpointing),
    ]
    rows = [_agreement(7, f"same {name}", {b: get(e) for b, e in effectives.items()}) for name, get in fields]
    return [*rows, order_check(effectives)]


def order_check(effectives: Effectives) -> ParityRow:
    """7. The same sample order: the first step's rows, and which backend reorders on its own."""
    values = {b: e.order.first_step_rows or None for b, e in effectives.items()}
    row = _agreement(7, "same sample order (first step's rows)", values)
    reorders = [f"{b} ({_reordering(e)})" for b, e in effectives.items() if _reordering(e)]
    if reorders:
        row.passed = False
        row.detail = "reorders samples on its own: " + ", ".join(reorders)
    return row


def versions_check(effectives: Effectives) -> ParityRow:
    """8. The versions each backend really used: shown (the frameworks pin different stacks), differences named."""
    values = {b: {k: e.versions[k] for k in (*STACK, _framework_package(b)) if k and k in e.versions}
              for b, e in effectives.items()}
    shared = [k for k in STACK if sum(k in v for v in values.values()) >= 2]
    differ = [k for k in shared if len({v.get(k) for v in values.values() if k in v}) > 1]
    detail = ("differ in " + "; ".join(f"{k}: " + ", ".join(f"{b} {v[k]}" for b, v in values.items() if k in v)
                                       for k in differ)) if differ else "the shared stack is the same"
    return ParityRow(number=8, check="versions each backend really used", passed=None if len(values) < 2 else
                     not differ, values={b: shown_value(v) for b, v in values.items()}, detail=detail,
                     severity="info")


def options_check(spec: JobSpec, backends: list[str]) -> ParityRow:
    """9. backend_options that apply to only some of the backends: an asymmetry the reader must weigh."""
    options = {b: sorted(spec.backend_options.get(b, {})) for b in backends}
    one_sided = {b: keys for b, keys in options.items() if keys}
    detail = "; ".join(f"{b} only: {', '.join(keys)}" for b, keys in one_sided.items()) or \
        "no backend_options for these backends"
    return ParityRow(number=9, check="backend_options on only some backends", passed=not one_sided,
                     values={b: ", ".join(keys) or "-" for b, keys in options.items()}, detail=detail,
                     severity="asymmetry")


def like_for_like(rows: list[ParityRow]) -> list[str]:
    """The reasons the comparison is not like-for-like (empty: it is)."""
    return [f"{r.number}. {r.check}: {r.detail}" for r in rows if r.severity == "breaks" and r.passed is False]


# -- agreement of one value across backends ------------------------------------------------------------------

def _agreement(number: int, check: str, values: dict[str, Any], shown: Callable[[Any], str] = shown_value,
               key: Callable[[Any], Any] | None = None) -> ParityRow:
    """Pass when every backend that has the value has the same one; the groups that differ are named."""
    have = {b: v for b, v in values.items() if v is not None}
    missing = [b for b in values if b not in have]
    groups: list[tuple[Any, list[str]]] = []
    for backend, value in have.items():
        compared = key(value) if key else value
        for group_value, members in groups:
            if _same(group_value, compared):
                members.append(backend)
                break
        else:
            groups.append((compared, [backend]))
    passed = None if len(have) < 2 else len(groups) == 1
    if passed is None:
        detail = "fewer than two backends have this value"
    elif passed:
        detail = f"all {len(have)} the same: {shown(next(iter(have.values())))}"
    else:
        detail = "; ".join(f"{', '.join(members)}: {shown(have[members[0]])}" for _value, members in groups)
    if missing:
        detail += f" (not read back: {', '.join(missing)})"
    return ParityRow(number=number, check=check, passed=passed,
                     values={b: shown(v) if v is not None else "-" for b, v in values.items()}, detail=detail)


def _unjudged(number: int, check: str, effectives: Effectives, summary: Callable[[Effective], str],
              why: str) -> ParityRow:
    return ParityRow(number=number, check=check, passed=None, values={b: summary(e) for b, e in effectives.items()},
                     detail=why)


def _named_difference(what: str, values: dict[str, Any]) -> str:
    return f"{what}: " + ", ".join(f"{b} {shown_value(v)}" for b, v in values.items())


def _list_difference(what: str, values: dict[str, list | None], first_index: int = 0) -> str | None:
    """Where two lists first differ, e.g. "supervised tokens of sample 2: trl 17, swift 15"."""
    have = {b: v for b, v in values.items() if v is not None}
    if len(have) < 2:
        return None
    lengths = {len(v) for v in have.values()}
    for i in range(min(lengths)):
        column = {b: v[i] for b, v in have.items()}
        if any(not _same(next(iter(column.values())), x) for x in column.values()):
            return f"{what} {i + first_index}: " + ", ".join(f"{b} {shown_value(x)}" for b, x in column.items())
    if len(lengths) > 1:
        return f"{what}: lengths differ: " + ", ".join(f"{b} {len(v)}" for b, v in have.items())
    return None


def _first_ids(effective: Effective) -> list[list[int]] | None:
    ids = [s.input_ids for s in effective.samples.first_step if s.input_ids is not None]
    return ids or None


def _ids_shown(ids: list[list[int]]) -> str:
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:8]
    return f"{len(ids)} samples of {', '.join(str(len(x)) for x in ids)} tokens (ids #{digest})"


def _ids_summary(effective: Effective) -> str:
    ids = _first_ids(effective)
    return _ids_shown(ids) if ids else "-"


def _first_token_difference(values: dict[str, list[list[int]] | None]) -> str | None:
    """The first sample and token position where the backends' ids part, with the text each has there."""
    have = {b: v for b, v in values.items() if v}
    reference_backend, reference = next(iter(have.items()))
    for backend, ids in have.items():
        for n, (a, b) in enumerate(zip(reference, ids, strict=False)):
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            if at is None and len(a) != len(b):
                at = min(len(a), len(b))
            if at is not None:
                return (f"sample {n + 1} differs at token {at}: {reference_backend} has {len(a)} tokens "
                        f"{a[max(0, at - 2):at + 3]}, {backend} has {len(b)} tokens {b[max(0, at - 2):at + 3]} "
                        "(a different chat template, tokenizer or truncation)")
        if len(ids) != len(reference):
            return f"first step: {reference_backend} has {len(reference)} whole samples, {backend} {len(ids)}"
    return None


def _batch_shape(effective: Effective) -> tuple[Any, Any, Any, Any] | None:
    b = effective.batch
    return None if b.effective is None else (b.effective, b.per_device, b.accumulation, b.processes)


def _pair(first: Any, second: Any) -> list[Any] | None:
    return None if first is None and second is None else [first, second]


def _reordering(effective: Effective) -> str | None:
    """How a backend reorders samples on its own (None: it reads them as uft wrote them)."""
    found = []
    if effective.order.sampler and effective.order.sampler != "SequentialSampler" and \
            "sequential" not in effective.order.sampler.lower():
        found.append(f"sampler {effective.order.sampler}")
    if effective.order.reordered_at_load:
        found.append("shuffled at load")
    return " and ".join(found) or None


def _framework_package(backend: str) -> str | None:
    return {"llamafactory": "llamafactory", "swift": "ms-swift", "unsloth": "unsloth", "colossalai": "colossalai"}.get(
        backend)
