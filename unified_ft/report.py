"""The bake-off report: one self-contained HTML page and a short markdown summary, both from bakeoff.json.

The page needs no network to open (charts are matplotlib SVG inlined, CSS inline, no scripts), so it can be
mailed, archived with the runs, or opened on an air-gapped machine. It only reads a `BakeoffResult`: every
number on it is one that bakeoff.json holds. jinja2 and matplotlib are the optional extra `report`, imported
only when a report is written, so importing unified_ft and `uft --help` never pay for them.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .comparison import BackendResult, BakeoffResult, Comparison, LossPoint, Stat
from .errors import UftError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
INSTALL_HINT = "pip install 'unified_ft[report]'  (or: pip install 'jinja2>=3.1' 'matplotlib>=3.8')"
#: One colour per backend, in the order they ran; the tables' swatches use the same ones as the charts.
PALETTE = ("#3b6fd4", "#e07b39", "#2f9e6b", "#c8435a", "#8560c7", "#8c6d4f", "#d35fb7", "#5f7f8f")
#: Generations shown side by side (the first prompts of the first repeat).
MAX_PROMPTS = 6
#: Speed measures shown as bars: (Measurements field, label).
THROUGHPUT = (("tokens_per_s", "tokens/s"), ("supervised_tokens_per_s", "supervised tokens/s"))
TIMES = (("first_step_s", "time to first step"), ("train_s", "training (after warm-up)"), ("wall_s", "wall time"))
#: Figure widths (inches) that fill the page's full, two-thirds and one-third columns at about 1 pt = 1.33 px,
#: so every chart's text is the same size on the page.
WIDE_IN, TWO_THIRDS_IN, ONE_THIRD_IN = 11.2, 7.2, 3.4
#: How a compared measure is named on the page.
LABELS = {"wall_s": "wall time (s)", "first_step_s": "time to first step (s)", "train_s": "training time (s)",
          "tokens_per_s": "tokens/s", "supervised_tokens_per_s": "supervised tokens/s",
          "peak_memory_mb": "peak memory (MiB)", "peak_reserved_mb": "peak reserved (MiB)", "mfu": "MFU",
          "final_loss": "final training loss"}


# --- numbers as text --------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """A number with as many digits as a person reads: 12,345 / 123.4 / 1.23 / 0.0101."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size == 0:
        return "0"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def fmt_spread(value: float) -> str:
    """A spread to two significant digits (42, 1.3, 0.0028): it says how far to trust the mean, no more."""
    return fmt(value) if abs(value) >= 100 or value == 0 else f"{value:.2g}"


def fmt_stat(stat: Stat | None) -> str:
    """mean ± spread (the spread only with two repeats or more)."""
    if stat is None or stat.mean is None:
        return "-"
    return fmt(stat.mean) + (f" ± {fmt_spread(stat.spread)}" if stat.spread is not None else "")


def fmt_percent(stat: Stat | None) -> str:
    """A 0..1 ratio over the repeats (MFU) as a percentage: 32.0% ± 1.4."""
    if stat is None or stat.mean is None:
        return "-"
    return f"{stat.mean * 100:.1f}%" + (f" ± {fmt_spread(stat.spread * 100)}" if stat.spread is not None else "")


def short_value(value: Any) -> str:
    """A parity value as one short line: text and numbers as they are, a mapping as `key value, ...`."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):  # bool too: true/false, as bakeoff.json has it
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"  # a setting (0.05, 0.0002), not a measurement: as it was given
    if isinstance(value, dict):
        return ", ".join(f"{key} {short_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(short_value(item) for item in value) + "]"
    return str(value)


def main_metric(result: BakeoffResult) -> str | None:
    """The eval measure that decides quality: the verdict's first, else loss, else the first one measured."""
    if result.verdict.judged_by:
        return result.verdict.judged_by[0]
    measured = [key for r in result.results if r.measurements for key in r.measurements.eval]
    if "loss" in measured:
        return "loss"
    return measured[0] if measured else None


# --- the markdown summary ---------------------------------------------------------------------------


def markdown_summary(result: BakeoffResult) -> str:
    """What the terminal shows when the bake-off ends: the verdict, what broke parity, one row per backend."""
    lines = [f"## Bake-off {result.name}: {_verdict_word(result)}", ""]
    lines += [f"- {reason}" for reason in result.verdict.reasons]
    failed = [row for row in result.parity if row.passed is False]
    for title, rows in (("Parity failures:", [r for r in failed if r.severity == "breaks"]),
                        ("Also differs (does not break parity):", [r for r in failed if r.severity != "breaks"])):
        if rows:
            lines += ["", title] + [f"- {row.number}. {row.check} ({row.severity}): {row.detail}" for row in rows]
    metric = main_metric(result)
    header = ["backend", "status", "wall s", "tokens/s", "peak MiB", "final loss", f"eval {metric or '-'}"]
    lines += ["", _md_row(header), _md_row(["---"] * len(header))]
    lines += [_md_row(_summary_cells(r, metric)) for r in result.results]
    lines += [f"\n{r.backend} {r.status}: {r.error or 'no error recorded'}" for r in result.results
              if r.status != "succeeded"]
    if result.repeats > 1:
        lines += ["", f"{result.repeats} repeats per backend: mean ± spread; a difference within the spread is noise."]
    return "\n".join(lines).rstrip() + "\n"


def _verdict_word(result: BakeoffResult) -> str:
    return "like-for-like" if result.verdict.like_for_like else "NOT like-for-like"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def _summary_cells(r: BackendResult, metric: str | None) -> list[str]:
    m = r.measurements
    if m is None:
        return [r.backend, r.status, "-", "-", "-", "-", "-"]
    score = fmt_stat(m.eval.get(metric)) if metric else "-"
    return [r.backend, r.status, fmt_stat(m.wall_s), fmt_stat(m.tokens_per_s), fmt_stat(m.peak_memory_mb),
            fmt_stat(m.final_loss), score]


# --- charts -----------------------------------------------------------------------------------------


@dataclass
class Chart:
    """One figure on the page: its stable id, title, the inline SVG (None: nothing to draw) and a caption."""

    id: str
    title: str
    svg: str | None
    caption: str = ""
    skipped: list[str] = field(default_factory=list)


def _libraries() -> tuple[Any, Any]:
    """jinja2 and matplotlib's Figure, or one clear error naming the install command."""
    try:
        import jinja2
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UftError(f"the bake-off report needs jinja2 and matplotlib, which are not installed here ({exc})\n"
                       f"    fix: {INSTALL_HINT}") from None
    return jinja2, Figure


def _rc() -> dict[str, Any]:
    """Chart style: text stays text in the SVG (small, selectable), quiet axes, the page's colours."""
    return {"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 10,
            "font.sans-serif": ["Inter", "Segoe UI", "Helvetica Neue", "Arial", "Liberation Sans", "DejaVu Sans"],
            "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#9aa3af",
            "axes.labelcolor": "#374151", "xtick.color": "#4b5563", "ytick.color": "#4b5563",
            "axes.grid": True, "grid.color": "#e5e7eb", "grid.linewidth": 0.8, "axes.axisbelow": True,
            "legend.frameon": False, "axes.titlesize": 11, "axes.titleweight": "bold"}


def _svg(fig: Figure, chart_id: str) -> str:
    """The figure as an inline <svg> that scales with the page, the same bytes for the same numbers (hashes
    salted by the chart id, no date), its ids prefixed by the chart's so two charts never share one."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": chart_id}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate with URLs, not content
    # matplotlib numbers ids per figure (axes_1, patch_1, ...): prefixed, two charts on one page never share one
    refs = r'(\sid="|url\(#|href="#)(?!' + re.escape(chart_id) + ")"
    text = re.sub(refs, lambda m: m.group(1) + chart_id + "-", text)
    head, rest = text.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return f'{head} role="img" aria-label="{chart_id}" preserveAspectRatio="xMidYMid meet">{rest}'


def _loss_chart(Figure: Any, result: BakeoffResult, colours: dict[str, str]) -> Chart:
    """Every backend's training loss on one chart: each repeat a thin line, their mean a thick one."""
    drawn = [r for r in result.results if any(r.loss_curves)]
    chart = Chart("chart-loss", "Training loss", None, skipped=_skipped(result, drawn))
    if not drawn:
        return chart
    fig = Figure(figsize=(WIDE_IN, 3.6))
    ax = fig.add_subplot()
    for r in drawn:
        curves = [c for c in r.loss_curves if c]
        colour = colours[r.backend]
        for curve in curves if len(curves) > 1 else []:
            ax.plot(*_xy(curve), color=colour, linewidth=0.9, alpha=0.45)
        mean = _mean_curve(curves)
        label = r.backend + (f" (mean of {len(curves)})" if len(curves) > 1 else "")
        ax.plot(*_xy(mean), color=colour, linewidth=2.2 if len(curves) > 1 else 1.6, label=label)
        for curve in (c for c in r.eval_loss_curves if c):
            ax.plot(*_xy(curve), color=colour, linewidth=1.2, linestyle="--", marker="o", markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right", ncols=min(len(drawn), 4))
    chart.svg = _svg(fig, chart.id)
    evals = any(c for r in drawn for c in r.eval_loss_curves)
    chart.caption = "Thin lines: each repeat; thick: their mean." if result.repeats > 1 else ""
    chart.caption += " Dashed with dots: eval loss during training." if evals else ""
    return chart


def _xy(curve: list[LossPoint]) -> tuple[list[int], list[float]]:
    return [p.step for p in curve], [p.loss for p in curve]


def _mean_curve(curves: list[list[LossPoint]]) -> list[LossPoint]:
    """The mean loss at each step that every repeat logged (repeats log the same steps)."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            by_step.setdefault(point.step, []).append(point.loss)
    return [LossPoint(step=s, loss=sum(v) / len(v)) for s, v in sorted(by_step.items()) if len(v) == len(curves)]


def _skipped(result: BakeoffResult, drawn: list[BackendResult]) -> list[str]:
    shown = {r.backend for r in drawn}
    return [f"{r.backend} ({r.status})" for r in result.results if r.backend not in shown]


def _bar_chart(Figure: Any, result: BakeoffResult, colours: dict[str, str], chart_id: str, title: str,
               measures: tuple[tuple[str, str], ...], unit: str, width_in: float) -> Chart:
    """Grouped bars, one group per measure and one bar per backend, the spread as error bars."""
    drawn = [r for r in result.results if r.measurements and any(
        _stat(r, key) is not None and _stat(r, key).mean is not None for key, _ in measures)]
    chart = Chart(chart_id, title, None, skipped=_skipped(result, drawn))
    if not drawn:
        return chart
    fig = Figure(figsize=(width_in, 3.3))
    ax = fig.add_subplot()
    width = 0.8 / len(drawn)
    for i, r in enumerate(drawn):
        stats = [_stat(r, key) for key, _ in measures]
        means = [s.mean if s and s.mean is not None else 0.0 for s in stats]
        spreads = [s.spread if s and s.spread is not None else 0.0 for s in stats]
        xs = [g + (i - (len(drawn) - 1) / 2) * width for g in range(len(measures))]
        bars = ax.bar(xs, means, width * 0.92, color=colours[r.backend], label=r.backend,
                      yerr=spreads if any(spreads) else None, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#111"})
        ax.bar_label(bars, labels=[fmt(v) if v else "" for v in means], padding=2, fontsize=8, color="#374151")
    ax.set_xticks(range(len(measures)), [label for _, label in measures])
    ax.set_ylabel(unit)
    ax.margins(y=0.15)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper left", ncols=min(len(drawn), 4), bbox_to_anchor=(0, 1.16))
    chart.svg = _svg(fig, chart.id)
    chart.caption = "Error bars: spread (standard deviation) over the repeats." if result.repeats > 1 else ""
    return chart


def _stat(r: BackendResult, key: str) -> Stat | None:
    return getattr(r.measurements, key, None) if r.measurements else None


def charts(result: BakeoffResult, colours: dict[str, str]) -> list[Chart]:
    """Every chart of the page, in page order; a backend without the numbers is skipped and named."""
    _, Figure = _libraries()
    import matplotlib

    memory = [("peak_memory_mb", "peak memory")]
    if any(r.measurements and r.measurements.peak_reserved_mb for r in result.results):
        memory.append(("peak_reserved_mb", "peak reserved (GPU)"))
    with matplotlib.rc_context(_rc()):
        return [
            _loss_chart(Figure, result, colours),
            _bar_chart(Figure, result, colours, "chart-throughput", "Throughput (after warm-up)", THROUGHPUT,
                       "tokens per second", TWO_THIRDS_IN),
            _bar_chart(Figure, result, colours, "chart-memory", "Peak memory", tuple(memory), "MiB",
                       ONE_THIRD_IN if len(memory) == 1 else TWO_THIRDS_IN),
            _bar_chart(Figure, result, colours, "chart-time", "Time", TIMES, "seconds", WIDE_IN),
        ]


# --- tables -----------------------------------------------------------------------------------------


@dataclass
class EvalRow:
    """One eval measure across the backends, with who is best and whether that is noise."""

    measure: str
    cells: dict[str, str]
    best: str | None
    noise: bool | None
    better: str | None
    decides: bool


def _comparison(result: BakeoffResult, measure: str) -> Comparison | None:
    """The bake-off's comparison of an eval measure (named `m` or `eval.m`)."""
    for c in result.comparisons:
        if c.measure in (measure, f"eval.{measure}"):
            return c
    return None


def eval_rows(result: BakeoffResult) -> list[EvalRow]:
    """Every eval measure any backend has, the deciding ones first."""
    measures = list(dict.fromkeys(k for r in result.results if r.measurements for k in r.measurements.eval))
    decides = [m for m in result.verdict.judged_by if m in measures]
    rows = []
    for measure in decides + [m for m in measures if m not in decides]:
        c = _comparison(result, measure)
        cells = {r.backend: fmt_stat(r.measurements.eval.get(measure)) if r.measurements else "-"
                 for r in result.results}
        rows.append(EvalRow(measure, cells, c.best if c else None, c.noise if c else None,
                            c.better if c else None, measure in decides))
    return rows


def other_comparisons(result: BakeoffResult) -> list[Comparison]:
    """Comparisons that are not of an eval measure (speed, memory): shown under the charts."""
    measures = {k for r in result.results if r.measurements for k in r.measurements.eval}
    return [c for c in result.comparisons if c.measure not in measures and c.measure.removeprefix("eval.")
            not in measures]


def generation_rows(result: BakeoffResult) -> list[dict[str, Any]]:
    """The first prompts, each with its reference and every backend's answer (matched by prompt)."""
    prompts: dict[str, dict[str, Any]] = {}
    for r in result.results:
        for g in r.generations:
            row = prompts.setdefault(g.prompt, {"prompt": g.prompt, "reference": g.reference, "answers": {}})
            row["answers"].setdefault(r.backend, g.answer)
            row["reference"] = row["reference"] if row["reference"] is not None else g.reference
    return list(prompts.values())[:MAX_PROMPTS]


def version_rows(result: BakeoffResult) -> list[dict[str, Any]]:
    """Each package any backend recorded, its version per backend, and whether they differ."""
    names = sorted({name for r in result.results for name in r.versions})
    rows = []
    for name in names:
        cells = {r.backend: r.versions.get(name, "-") for r in result.results}
        rows.append({"package": name, "cells": cells, "differs": len(set(cells.values()) - {"-"}) > 1})
    return rows


def comparison_label(measure: str) -> str:
    """A compared measure as the page names it (tokens_per_s -> tokens/s)."""
    return LABELS.get(measure, measure)


def parity_cells(values: dict[str, Any], backends: list[str]) -> list[dict[str, Any]]:
    """A parity row's value per backend; a value that differs from the most common one is marked (all of them
    when no value is the majority). When every backend has the same value it is one cell across them (`span`),
    so five narrow columns do not repeat it five times."""
    shown = [short_value(values[b]) if b in values else "-" for b in backends]
    present = [s for s in shown if s != "-"]
    ranked = Counter(present).most_common(2)
    if len(backends) > 1 and len(present) == len(backends) and len(ranked) == 1:
        return [{"text": shown[0], "differs": False, "span": len(backends)}]
    common = ranked[0][0] if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]) else None  # tie: none
    return [{"text": s, "differs": s != "-" and len(ranked) > 1 and s != common, "span": 1} for s in shown]


def backend_rows(result: BakeoffResult, metric: str | None) -> list[dict[str, Any]]:
    """One row per backend for the at-a-glance table: status and the headline numbers (or why it failed)."""
    rows = []
    for r in result.results:
        m = r.measurements
        numbers = {} if m is None else {
            "wall": fmt_stat(m.wall_s), "first_step": fmt_stat(m.first_step_s), "tps": fmt_stat(m.tokens_per_s),
            "stps": fmt_stat(m.supervised_tokens_per_s), "memory": fmt_stat(m.peak_memory_mb),
            "loss": fmt_stat(m.final_loss), "metric": fmt_stat(m.eval.get(metric)) if metric else "-",
            "mfu": fmt_percent(m.mfu)}
        rows.append({"r": r, "numbers": numbers, "command": shlex.join(r.command) if r.command else ""})
    return rows


# --- the page ---------------------------------------------------------------------------------------


def render_html(result: BakeoffResult) -> str:
    """The report page as one string (see write_report)."""
    jinja2, _ = _libraries()
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(
        dict.fromkeys([*result.backends, *(r.backend for r in result.results)]))}
    metric = main_metric(result)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["short"] = short_value
    env.filters["fmt_stat"] = fmt_stat
    env.filters["fmt"] = fmt
    env.filters["label"] = comparison_label
    source = resources.files("unified_ft").joinpath("report_templates", TEMPLATE).read_text(encoding="utf-8")
    names = [r.backend for r in result.results]
    return env.from_string(source).render(
        result=result, names=names, colours=colours, metric=metric, verdict_word=_verdict_word(result),
        charts={c.id: c for c in charts(result, colours)},
        backend_rows=backend_rows(result, metric), eval_rows=eval_rows(result),
        other_comparisons=other_comparisons(result), generations=generation_rows(result),
        versions=version_rows(result), parity_cells=parity_cells,
        failed_checks=[row for row in result.parity if row.passed is False])


def write_report(result: BakeoffResult, out_dir: Path) -> Path:
    """Write `out_dir/report.html`, one self-contained page; returns its path."""
    html = render_html(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(html, encoding="utf-8")
    return path
