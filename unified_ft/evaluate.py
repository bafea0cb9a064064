"""The shared evaluation: one judge for every backend's output, run in uft's own environment.

It reads only a run directory's standard outputs (resolved spec, canonical eval data, peft adapter or
full model), so the same code, versions, chat template and masking judge every framework. Results go to
`eval.json` (schema below, versioned), `eval/samples.jsonl` (per-sample answers for a person to read) and, for
preference methods, `eval/preference.jsonl` (each pair's rewards or reward-model scores).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from . import metrics as M
from .chat_tokens import generation_prompt, tokenize_chat, tokenize_text
from .errors import BackendNotReady, UftError
from .plugin import module_available
from .runs import load_finished_run, read_jsonl, write_json_atomic
from .spec import PREFERENCE_METHODS, JobSpec

EVAL_SCHEMA_VERSION = 1
BUILTIN_GENERAL = Path(__file__).with_name("eval_data") / "general.jsonl"
STACK = ("torch", "transformers", "peft", "rouge_score", "sacrebleu")
INSTALL_HINT = "pip install torch==2.13.0 && pip install 'unified_ft[trl]'"

Progress = Callable[[str], None]


class ModelScores(BaseModel):
    """How one model (base or tuned) did on the eval set."""

    loss: float = Field(description="Mean next-token loss over supervised tokens (spec's masking); on preference "
                        "data, over the chosen (desirable) answers. For a reward model (method rm), which has no "
                        "language-model head: the mean pairwise loss -log sigmoid(score(chosen) - score(rejected)).")
    perplexity: float = Field(description="exp(loss).")
    metrics: dict[str, float] = Field(default_factory=dict, description="Reference metrics on generated answers "
                                      "(exact_match, normalized_exact_match, rouge_l in 0..1; bleu in 0..100).")
    checks: dict[str, float] = Field(default_factory=dict, description="Share of answers passing each task check.")
    generated_tokens: int = Field(0, description="New tokens generated over all prompts.")
    tokens_per_s: float = Field(0.0, description="Generation throughput (batched, greedy).")
    lm_eval: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="lm-evaluation-harness scores: task -> metric (`name,filter`) -> value.")


class Forgetting(BaseModel):
    """Loss on general data before and after tuning; a rise means the model forgot some of it."""

    dataset: str
    rows: int
    base_loss: float
    tuned_loss: float
    delta: float = Field(description="tuned_loss - base_loss (positive = forgetting).")


class PreferenceScores(BaseModel):
    """How the tuned model ranks the eval set's preferred answers above the others (preference methods and rm).

    A reward is DPO's implicit reward without its beta: log p_tuned(answer | prompt) - log p_base(answer | prompt),
    log-probabilities summed over the answer's assistant tokens (the spec's chat template, data.max_length), for
    every method alike, so runs with different betas and length normalisations (simpo and orpo train on average
    log-probabilities) compare on one scale. Multiply by `beta` for DPO's own reward scale."""

    kind: Literal["pairs", "labels", "reward_model"] = Field(
        description="pairs: (prompt, chosen, rejected) rows (kto given pairs too); labels: unpaired KTO rows "
        "(desirable or not); reward_model: pairs scored by the trained reward model (method rm).")
    rows: int = Field(description="Pairs, or labelled answers, that were judged.")
    beta: float | None = Field(None, description="The method's beta, for reading the rewards on its own scale "
                               "(not applied to any value here).")
    reward_accuracy: float | None = Field(None, description="pairs: share of pairs with reward(chosen) > "
                                          "reward(rejected); labels: share of answers whose reward has the label's "
                                          "sign (positive = desirable). A tie counts as wrong. None for rm.")
    reward_margin: float | None = Field(None, description="pairs: mean of reward(chosen) - reward(rejected); labels: "
                                        "mean reward of desirable minus mean reward of undesirable answers (None "
                                        "unless both occur). Unscaled log-ratio, summed over tokens. None for rm.")
    chosen_reward: float | None = Field(None, description="Mean reward of the chosen (desirable) answers.")
    rejected_reward: float | None = Field(None, description="Mean reward of the rejected (undesirable) answers.")
    tuned_logp_accuracy: float | None = Field(None, description="pairs: share of pairs the tuned model itself gives "
                                              "the chosen answer the higher summed log-probability (no reference).")
    base_logp_accuracy: float | None = Field(None, description="The same for the base model: where the tuned "
                                             "model started.")
    pairwise_accuracy: float | None = Field(None, description="rm: share of pairs with score(chosen) > "
                                            "score(rejected) (a tie counts as wrong). None for other methods.")
    score_margin: float | None = Field(None, description="rm: mean of score(chosen) - score(rejected).")
    ties: int = Field(0, description="Pairs (or answers) whose reward difference (or reward) is exactly 0.")
    empty_answers: int = Field(0, description="Answers with no token left within data.max_length (their reward "
                               "is 0 by construction): raise max_length if this is not 0.")


class EvalReport(BaseModel):
    """Contents of eval.json."""

    schema_version: int = EVAL_SCHEMA_VERSION
    run_dir: str
    backend: str
    spec_name: str
    eval_rows: int = Field(description="Rows used for loss.")
    generated_rows: int = Field(description="Rows whose answers were generated and scored.")
    max_new_tokens: int
    main_metric: str
    base: ModelScores | None = Field(None, description="The base model on the same prompts (compare_base).")
    tuned: ModelScores
    forgetting: Forgetting | None = None
    preference: PreferenceScores | None = Field(None, description="Preference judges (dpo, orpo, simpo, cpo, kto, "
                                                "rm); None for other methods.")
    duration_s: float
    versions: dict[str, str] = Field(default_factory=dict)


def evaluate_run(run_dir: str | Path, on_progress: Progress | None = None) -> EvalReport:
    """Judge a finished run; writes eval.json and eval/samples.jsonl atomically and returns the report."""
    started = time.monotonic()
    run_dir = Path(run_dir).resolve()
    say = on_progress or (lambda message: None)
    spec, manifest, tuned_source = load_finished_run(run_dir)
    require_stack()
    if spec.method.name == "rm":
        return _evaluate_reward_model(run_dir, spec, manifest, tuned_source, say, started)
    eval_rows = _eval_records(run_dir, spec)
    n_gen = min(len(eval_rows), spec.evaluation.max_samples or len(eval_rows))

    import torch

    torch.manual_seed(spec.training.seed)
    say("loading models")
    tokenizer, base, tuned = _load_models(spec, tuned_source)
    general = _general_records(spec)
    results: dict[str, ModelScores] = {}
    answers: dict[str, list[str]] = {}
    forgetting_losses: dict[str, float] = {}
    for role in (["base"] if spec.evaluation.compare_base else []) + ["tuned"]:
        with _model_for(role, base, tuned) as model:
            say(f"{role}: loss on {len(eval_rows)} rows")
            loss = _mean_loss(model, tokenizer, eval_rows, spec)
            scores = ModelScores(loss=loss, perplexity=_exp(loss))
            if spec.record_kind != "text" and n_gen:
                say(f"{role}: generating {n_gen} answers")
                preds, gen_tokens, seconds = _generate(model, tokenizer, eval_rows[:n_gen], spec)
                refs = [r["reference"] for r in eval_rows[:n_gen]]
                scores.metrics = {m: M.REFERENCE_SCORERS[m](preds, refs) for m in spec.evaluation.metrics}
                scores.checks = {c.type: M.check_rate(preds, c.type, c.pattern) for c in spec.evaluation.checks}
                scores.generated_tokens, scores.tokens_per_s = gen_tokens, round(gen_tokens / max(seconds, 1e-9), 2)
                answers[role] = preds
            if general:
                forgetting_losses[role] = _mean_loss(model, tokenizer, general, spec)
            if spec.evaluation.lm_eval:
                say(f"{role}: lm-evaluation-harness tasks")
                scores.lm_eval = _lm_eval(model, tokenizer, spec)
            results[role] = scores
    preference, judged = None, []
    if spec.method.name in PREFERENCE_METHODS:
        say("preference: log-probabilities of chosen and rejected answers, base and tuned")
        preference, judged = _judge_preferences(run_dir, spec, tokenizer, base, tuned)
    forgetting = None
    if general and "base" in forgetting_losses:
        forgetting = Forgetting(dataset=spec.evaluation.forgetting.path, rows=len(general),
                                base_loss=forgetting_losses["base"], tuned_loss=forgetting_losses["tuned"],
                                delta=forgetting_losses["tuned"] - forgetting_losses["base"])
    report = EvalReport(
        run_dir=str(run_dir), backend=manifest.get("backend", ""), spec_name=spec.name, eval_rows=len(eval_rows),
        generated_rows=n_gen if answers else 0, max_new_tokens=spec.evaluation.max_new_tokens,
        main_metric=spec.evaluation.main_metric, base=results.get("base"), tuned=results["tuned"],
        forgetting=forgetting, preference=preference, duration_s=round(time.monotonic() - started, 1),
        versions=_versions())
    _write(run_dir, report, _samples(eval_rows[:n_gen], answers), judged)
    return report


def require_stack() -> None:
    missing = [m for m in STACK if not module_available(m)]
    if missing:
        raise BackendNotReady(f"evaluation and export run in uft's own environment and need {', '.join(missing)}"
                              f"\n    fix: {INSTALL_HINT}")


def format_table(report: EvalReport):
    """A rich table: each metric for the base and the tuned model, and the change."""
    from rich.table import Table

    reward_model = report.preference is not None and report.preference.kind == "reward_model"
    table = Table(title=f"{report.spec_name} on {report.backend}: " + (
        f"the reward model on {report.eval_rows} eval pairs" if reward_model else
        f"base vs tuned ({report.generated_rows} answers, {report.eval_rows} rows for loss)"))
    table.add_column("metric")
    if report.base:
        table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    if report.base:
        table.add_column("change", justify="right")

    def add(label: str, tuned: float | None, base: float | None) -> None:
        label = f"[bold]{label}[/bold]" if label == report.main_metric else label
        if not report.base:
            table.add_row(label, _fmt(tuned))
            return
        change = None if tuned is None or base is None else tuned - base
        table.add_row(label, _fmt(base), _fmt(tuned), _fmt(change, signed=True))

    names = ["loss"] if reward_model else ["loss", "perplexity", *report.tuned.metrics, *report.tuned.checks,
                                           "tokens_per_s"]
    for name in names:
        add(name, _metric(report.tuned, name), _metric(report.base, name) if report.base else None)
    for task, values in report.tuned.lm_eval.items():
        for name, tuned in values.items():
            add(f"lm_eval {task} {name}", tuned,
                report.base.lm_eval.get(task, {}).get(name, float("nan")) if report.base else None)
    if report.forgetting:
        f = report.forgetting
        table.add_row("general loss (forgetting)", _fmt(f.base_loss), _fmt(f.tuned_loss), _fmt(f.delta, signed=True))
    if report.preference:
        for label, tuned, base in _preference_rows(report.preference):
            add(label, tuned, base)
    return table


def _preference_rows(p: PreferenceScores) -> list[tuple[str, float | None, float | None]]:
    """(label, tuned, base) rows of the preference judges that apply; a reward has no base value (it is
    measured against the base)."""
    rows = [("pairwise_accuracy", p.pairwise_accuracy, None), ("score_margin", p.score_margin, None),
            ("reward_accuracy", p.reward_accuracy, None), ("reward_margin", p.reward_margin, None),
            ("logp preference accuracy", p.tuned_logp_accuracy, p.base_logp_accuracy)]
    return [(label, tuned, base) for label, tuned, base in rows if tuned is not None]


# --- internals ------------------------------------------------------------------------------------------


def _metric(scores: ModelScores, name: str) -> float:
    if name in ("loss", "perplexity", "tokens_per_s"):
        return float(getattr(scores, name))
    return scores.metrics.get(name, scores.checks.get(name, float("nan")))


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _exp(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def _eval_records(run_dir: Path, spec: JobSpec) -> list[dict[str, Any]]:
    """Canonical eval rows as {messages | text, reference} (preference rows are judged on `chosen`, unpaired
    rows on their desirable answers only)."""
    path = run_dir / "data" / "eval.jsonl"
    if not path.exists():
        raise UftError(f"{run_dir}: the run has no eval set\n    fix: add data.eval or data.eval_split to the spec, "
                       "or turn evaluation off with `evaluation.enabled: false`")
    rows = []
    for record in read_jsonl(path):
        if "text" in record:
            rows.append({"text": record["text"]})
            continue
        if "label" in record and not record["label"]:
            continue  # an undesirable answer is no reference
        answer = record.get("chosen") or record.get("completion")
        messages = record["messages"] if "messages" in record else [*record["prompt"], *answer]
        rows.append({"messages": messages, "tools": record.get("tools"),
                     "reference": [m for m in messages if m["role"] == "assistant"][-1]["content"]})
    return rows


def _general_records(spec: JobSpec) -> list[dict[str, Any]]:
    source = spec.evaluation.forgetting
    if source is None:
        return []
    from .data import read_records

    path = BUILTIN_GENERAL if source.path == "builtin" else Path(source.path)
    fmt = "text" if source.path == "builtin" else source.format
    return [r if "text" in r else {"messages": r["messages"], "tools": r.get("tools")}
            for r in read_records(path, fmt, source.columns or None)]


def _load_models(spec: JobSpec, tuned_source: Path, head: str = "causal_lm"):
    """Tokenizer, base model (None when the tuned one is the base with an adapter) and tuned model, as the
    framework saved it: a peft adapter on the base, or a full model; `head` sequence_classification for rm."""
    import warnings

    from transformers.utils import logging as hf_logging

    from .modeling import load_model, model_config
    from .templates import chat_template_text

    hf_logging.set_verbosity_error()  # uft shows its own progress; library bars would garble it
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

    tokenizer, base = load_model(model_config(spec, head=head), chat_template=chat_template_text(spec))
    base.eval()
    if tuned_source.name == "model":
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        if head == "sequence_classification":
            tuned = AutoModelForSequenceClassification.from_pretrained(tuned_source, dtype=base.dtype, num_labels=1)
            tuned.config.pad_token_id = base.config.pad_token_id
        else:
            tuned = AutoModelForCausalLM.from_pretrained(tuned_source, dtype=base.dtype)
        return tokenizer, base, tuned.eval()
    from peft import PeftModel

    recorded = json.loads((tuned_source / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if recorded and recorded != spec.model.path:
        raise UftError(f"{tuned_source} was trained on {recorded}, but the spec's base model is {spec.model.path}\n"
                       "    fix: evaluate the run with the spec it was trained with")
    try:
        tuned = PeftModel.from_pretrained(base, tuned_source).eval()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UftError(f"{tuned_source} does not fit the base model {spec.model.path}: {exc}") from None
    return tokenizer, None, tuned


@contextlib.contextmanager
def _model_for(role: str, base, tuned):
    """The tuned model, or the base: a separate one (full fine-tunes) or the tuned one with its adapter off."""
    if role == "tuned":
        yield tuned
    elif base is not None:
        yield base
    else:
        with tuned.disable_adapter():
            yield tuned


def _mean_loss(model, tokenizer, rows: list[dict[str, Any]], spec: JobSpec) -> float:
    """Token-weighted mean loss over supervised tokens, with the spec's canonical masking."""
    max_length = spec.data.max_length
    encoded = [tokenize_text(tokenizer, r["text"], max_length) if "text" in r else
               tokenize_chat(tokenizer, r["messages"], max_length, spec.data.train_on_prompt, r.get("tools"))
               for r in rows]
    per_row = _token_losses(model, encoded, tokenizer.pad_token_id, spec.evaluation.batch_size)
    count = sum(n for _, n in per_row)
    if count == 0:
        raise UftError("no eval token carries loss (every answer was cut off by data.max_length)\n"
                       "    fix: raise data.max_length")
    return sum(total for total, _ in per_row) / count


def _padded(batch: list[dict[str, list[int]]], pad: int):
    """Right-padded input ids, attention mask and labels (-100 where the mask is 0) of a batch."""
    import torch

    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        attention[i, :n] = 1
        masked = zip(e["input_ids"], e["assistant_masks"], strict=True)
        labels[i, :n] = torch.tensor([t if m else -100 for t, m in masked])
    return ids, attention, labels


def _token_losses(model, encoded: list[dict[str, list[int]]], pad: int, batch_size: int) -> list[tuple[float, int]]:
    """Per sequence: the summed next-token loss over its masked tokens (= -log p of them) and their count."""
    import torch

    out: list[tuple[float, int]] = []
    for start in range(0, len(encoded), batch_size):
        ids, attention, labels = _padded(encoded[start:start + batch_size], pad)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        target = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                   ignore_index=-100, reduction="none").view(target.shape)
        out += list(zip(losses.sum(dim=1).tolist(), (target != -100).sum(dim=1).tolist(), strict=True))
    return out


def _sequence_scores(model, encoded: list[dict[str, list[int]]], pad: int, batch_size: int,
                     value_head: tuple[Any, Any] | None = None) -> list[float]:
    """A reward model's score of each whole sequence: a sequence-classification model pools its last
    non-padding token itself; a value head (LLaMA-Factory's) is applied to the last layer's hidden state at
    the last attended token, as LLaMA-Factory's pairwise trainer does."""
    import torch

    out: list[float] = []
    for start in range(0, len(encoded), batch_size):
        ids, attention, _ = _padded(encoded[start:start + batch_size], pad)
        with torch.no_grad():
            if value_head is None:
                out += model(input_ids=ids, attention_mask=attention).logits[:, 0].float().tolist()
                continue
            hidden = model(input_ids=ids, attention_mask=attention, output_hidden_states=True).hidden_states[-1]
            last = hidden[torch.arange(len(ids)), attention.sum(dim=1) - 1].float()
            weight, bias = value_head
            out += (last @ weight.float().T + bias.float())[:, 0].tolist()
    return out


def _value_head(tuned_source: Path) -> tuple[Any, Any] | None:
    """LLaMA-Factory trains a reward model as a causal LM plus a separate value head, saved beside the adapter
    (or full model) as value_head.safetensors (or .bin): its (weight, bias), or None when there is none."""
    safe, pickled = tuned_source / "value_head.safetensors", tuned_source / "value_head.bin"
    if not safe.exists() and not pickled.exists():
        return None
    import torch

    if safe.exists():
        from safetensors.torch import load_file

        state = load_file(str(safe))
    else:
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    try:
        weight = state["v_head.summary.weight"]
    except KeyError:
        raise UftError(f"{safe if safe.exists() else pickled} has no v_head.summary.weight (keys: "
                       f"{', '.join(sorted(state))}); it is not a value head this evaluation can read") from None
    return weight, state.get("v_head.summary.bias", torch.zeros(weight.shape[0]))


# --- preference judges -----------------------------------------------------------------------------------


def _preference_records(run_dir: Path) -> list[dict[str, Any]]:
    """The eval set as written (pairs, or unpaired labelled answers): a pair is judged as a pair."""
    path = run_dir / "data" / "eval.jsonl"
    records = list(read_jsonl(path)) if path.exists() else []
    if not records or any("chosen" not in r and "label" not in r for r in records):
        raise UftError(f"{path}: a preference run needs an eval set of preference pairs or labelled answers\n"
                       "    fix: add data.eval (format preference or unpaired) or data.eval_split to the spec")
    return records


def _answers(records: list[dict[str, Any]]) -> list[tuple[list[dict], list[dict], str | None]]:
    """(prompt, answer, tools) for each answer to judge: chosen then rejected for a pair, the completion else."""
    sides = ("chosen", "rejected") if "chosen" in records[0] else ("completion",)
    return [(r["prompt"], r[side], r.get("tools")) for r in records for side in sides]


def _answer_tokens(tokenizer, prompt: list[dict], answer: list[dict], tools: str | None, max_length: int) -> dict:
    """prompt + answer in the spec's chat template, the mask on the answer's assistant tokens only (any
    assistant turn inside the prompt is context, not answer), cut at data.max_length like training."""
    encoded = tokenize_chat(tokenizer, [*prompt, *answer], max_length, False, tools)
    first = next(i for i, m in enumerate(answer) if m["role"] == "assistant")
    start = len(generation_prompt(tokenizer, [*prompt, *answer[: first + 1]], tools)[0])
    mask = [m if j >= start else 0 for j, m in enumerate(encoded["assistant_masks"])]
    return {"input_ids": encoded["input_ids"], "assistant_masks": mask}


def _judge_preferences(run_dir: Path, spec: JobSpec, tokenizer, base, tuned
                       ) -> tuple[PreferenceScores, list[dict[str, Any]]]:
    """Implicit rewards (tuned minus base summed log-probabilities) of every eval answer, aggregated."""
    records = _preference_records(run_dir)
    encoded = [_answer_tokens(tokenizer, p, a, t, spec.data.max_length) for p, a, t in _answers(records)]
    logps, counts = {}, []
    for role in ("base", "tuned"):
        with _model_for(role, base, tuned) as model:
            per_answer = _token_losses(model, encoded, tokenizer.pad_token_id, spec.evaluation.batch_size)
        logps[role] = [-total for total, _ in per_answer]
        counts = [n for _, n in per_answer]
    rewards = M.implicit_rewards(logps["tuned"], logps["base"])
    common = {"beta": getattr(spec.method, "beta", None), "empty_answers": counts.count(0)}
    if "label" in records[0]:
        labels = [bool(r["label"]) for r in records]
        j = M.label_judgement(rewards, labels)
        judged = [{"index": i, "prompt": r["prompt"], "completion": r["completion"], "label": r["label"],
                   "reward": rewards[i], "logp_base": logps["base"][i], "logp_tuned": logps["tuned"][i]}
                  for i, r in enumerate(records)]
        return PreferenceScores(
            kind="labels", rows=j.count, reward_accuracy=j.accuracy, reward_margin=j.margin, ties=j.ties,
            chosen_reward=_mean([x for x, good in zip(rewards, labels, strict=True) if good]),
            rejected_reward=_mean([x for x, good in zip(rewards, labels, strict=True) if not good]), **common), judged
    chosen, rejected = rewards[0::2], rewards[1::2]
    j = M.pair_judgement(chosen, rejected)
    judged = [{"index": i, "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
               "reward_chosen": chosen[i], "reward_rejected": rejected[i],
               **{f"logp_{role}_{side}": logps[role][2 * i + k] for role in ("base", "tuned")
                  for k, side in enumerate(("chosen", "rejected"))}}
              for i, r in enumerate(records)]
    return PreferenceScores(
        kind="pairs", rows=j.count, reward_accuracy=j.accuracy, reward_margin=j.margin, ties=j.ties,
        chosen_reward=_mean(chosen), rejected_reward=_mean(rejected),
        tuned_logp_accuracy=M.pair_judgement(logps["tuned"][0::2], logps["tuned"][1::2]).accuracy,
        base_logp_accuracy=M.pair_judgement(logps["base"][0::2], logps["base"][1::2]).accuracy, **common), judged


def _evaluate_reward_model(run_dir: Path, spec: JobSpec, manifest: dict[str, Any], tuned_source: Path,
                           say: Progress, started: float) -> EvalReport:
    """A reward model scores answers and generates none: it is judged by how it ranks the eval pairs."""
    import torch

    records = _preference_records(run_dir)
    torch.manual_seed(spec.training.seed)
    say("loading the reward model")
    value_head = _value_head(tuned_source)
    head = "causal_lm" if value_head is not None else "sequence_classification"
    tokenizer, _, tuned = _load_models(spec, tuned_source, head=head)
    encoded = [_answer_tokens(tokenizer, p, a, t, spec.data.max_length) for p, a, t in _answers(records)]
    say(f"scoring {len(records)} pairs")
    scores = _sequence_scores(tuned, encoded, tokenizer.pad_token_id, spec.evaluation.batch_size, value_head)
    chosen, rejected = scores[0::2], scores[1::2]
    j = M.pair_judgement(chosen, rejected)
    loss = M.pairwise_loss(chosen, rejected)
    if loss is None:  # _preference_records refuses an empty eval set; said here too, not assumed
        raise UftError(f"{run_dir}: the eval set has no pairs to score")
    preference = PreferenceScores(
        kind="reward_model", rows=j.count, pairwise_accuracy=j.accuracy, score_margin=j.margin, ties=j.ties,
        chosen_reward=_mean(chosen), rejected_reward=_mean(rejected),
        empty_answers=sum(1 for e in encoded if 1 not in e["assistant_masks"]))
    judged = [{"index": i, "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
               "score_chosen": chosen[i], "score_rejected": rejected[i]} for i, r in enumerate(records)]
    report = EvalReport(
        run_dir=str(run_dir), backend=manifest.get("backend", ""), spec_name=spec.name, eval_rows=len(records),
        generated_rows=0, max_new_tokens=spec.evaluation.max_new_tokens, main_metric=spec.evaluation.main_metric,
        tuned=ModelScores(loss=loss, perplexity=_exp(loss)), preference=preference,
        duration_s=round(time.monotonic() - started, 1), versions=_versions())
    _write(run_dir, report, [], judged)
    return report


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _generate(model, tokenizer, rows: list[dict[str, Any]], spec: JobSpec) -> tuple[list[str], int, float]:
    """Greedy answers to each row's final prompt, batched with left padding; returns (answers, tokens, s)."""
    import torch

    prompts = [generation_prompt(tokenizer, r["messages"], r.get("tools"))[0] for r in rows]
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    answers, new_tokens, seconds = [], 0, 0.0
    for start in range(0, len(prompts), spec.evaluation.batch_size):
        batch = prompts[start:start + spec.evaluation.batch_size]
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, p in enumerate(batch):
            ids[i, width - len(p):] = torch.tensor(p)
            attention[i, width - len(p):] = 1
        began = time.monotonic()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=attention, do_sample=False, num_beams=1,
                                 max_new_tokens=spec.evaluation.max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                                 temperature=None, top_p=None, top_k=None)
        seconds += time.monotonic() - began
        for row in out[:, width:].tolist():
            if eos in row:
                row = row[: row.index(eos) + 1]
            new_tokens += len(row)
            answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return answers, new_tokens, seconds


def _lm_eval(model, tokenizer, spec: JobSpec) -> dict[str, dict[str, float]]:
    """lm-evaluation-harness on the model object already loaded (so base and tuned are the same as above)."""
    import logging

    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise BackendNotReady("evaluation.lm_eval needs lm-evaluation-harness\n"
                              "    fix: pip install 'lm-eval==0.4.13', or remove evaluation.lm_eval") from None
    cfg, seed = spec.evaluation.lm_eval, spec.training.seed
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    only_files = all(t.endswith((".yaml", ".yml")) for t in cfg.tasks)
    manager = TaskManager(include_path=cfg.include_path, include_defaults=not (cfg.include_path or only_files))
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=spec.evaluation.batch_size)
    try:
        out = lm_eval.simple_evaluate(model=harness, tasks=list(cfg.tasks), task_manager=manager, limit=cfg.limit,
                                      apply_chat_template=cfg.apply_chat_template, log_samples=False,
                                      random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                      fewshot_random_seed=seed)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise UftError(f"lm-evaluation-harness could not run {cfg.tasks}: {exc}\n    fix: check the task names "
                       "and evaluation.lm_eval.include_path (task data paths in the YAML must be absolute)") from None
    model.eval()
    return {task: {key.removesuffix(",none"): float(value) for key, value in values.items()
                   if "," in key and "_stderr" not in key}
            for task, values in out["results"].items()}


def _samples(rows: list[dict[str, Any]], answers: dict[str, list[str]]) -> list[dict[str, Any]]:
    samples = []
    for i, row in enumerate(rows):
        if "tuned" not in answers:
            break
        sample = {"index": i, "prompt": row["messages"][:-1], "reference": row["reference"]}
        for role, preds in answers.items():
            sample[role] = preds[i]
            sample[f"{role}_scores"] = M.sample_scores(preds[i], row["reference"])
        samples.append(sample)
    return samples


def _write(run_dir: Path, report: EvalReport, samples: list[dict[str, Any]],
           judged: list[dict[str, Any]] | None = None) -> None:
    """eval/ and eval.json replace an earlier evaluation only once the new one is complete; `judged` (each
    preference pair or labelled answer with its rewards or scores) goes to eval/preference.jsonl."""
    tmp = run_dir / ".eval-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_jsonl(tmp / "samples.jsonl", samples)
    if judged:
        _write_jsonl(tmp / "preference.jsonl", judged)
    shutil.rmtree(run_dir / "eval", ignore_errors=True)
    tmp.rename(run_dir / "eval")
    write_json_atomic(run_dir / "eval.json", report.model_dump(mode="json"))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {m: version(m) for m in ("torch", "transformers", "peft", "rouge-score", "sacrebleu")}
