"""The bake-off report without a browser: self-contained, escaped, structured, and the terminal summary."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import parse_html
from report_sample import HOSTILE, sample_result

from unified_ft.comparison import BakeoffResult, Stat
from unified_ft.errors import UftError
from unified_ft.report import fmt_stat, markdown_summary, render_html, short_value, write_report

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ("chart-loss", "chart-throughput", "chart-memory", "chart-time")


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(sample_result())


def test_write_report_writes_one_file(tmp_path):
    path = write_report(sample_result(), tmp_path / "bake")
    assert path == tmp_path / "bake" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    assert 20_000 < path.stat().st_size < 400_000  # inline SVG charts, not megabytes of JS


def test_nothing_is_loaded_from_anywhere(html):
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<iframe" not in html.lower()
    assert "@import" not in html and not re.search(r"\bsrc\s*=", html)
    assert all(u.startswith("#") for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html))  # SVG clip paths
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))  # in-page anchors only
    urls = re.findall(r'(\S*)"?https?://[^"\s]*', html)
    assert all(u.startswith("xmlns") for u in urls), urls  # only SVG namespace names, which are never fetched


def test_hostile_text_is_escaped_everywhere(html):
    assert HOSTILE not in html
    escaped = HOSTILE.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
    assert html.count(escaped) >= 4  # the error, the log tail, a plan note, a pre-flight sample
    assert "&lt;b&gt;bye&lt;/b&gt;" in html  # swift's --system, inside its native command


def test_page_order_and_stable_ids(html):
    ids = re.findall(r'\sid="([^"]+)"', html)
    order = ["verdict", "parity", "backends", *CHARTS, "eval", "generations", "native-commands", "versions",
             "preflight"]
    assert [i for i in ids if i in order] == order
    assert len(ids) == len(set(ids)), "an id is repeated (two charts' SVG ids clash)"


def test_verdict_is_first_and_gives_the_reason(html):
    doc = parse_html(html)
    verdict = doc.find(id="verdict")
    assert "bad" in verdict.classes and verdict.attrs["data-like-for-like"] == "false"
    text = verdict.all_text()
    assert "Not like-for-like" in text and "llamafactory batch 32 vs trl batch 16" in text and "rouge_l" in text


def test_parity_table_one_row_per_check(html):
    table = parse_html(html).find("table", id="parity")
    rows = table.find_all("tr", cls="parity-row")
    assert [r.attrs["data-check"] for r in rows] == [str(n) for n in range(1, 10)]
    states = {r.attrs["data-check"]: (r.classes - {"parity-row"}).pop() for r in rows}
    assert states["4"] == "fail" and states["1"] == "pass" and states["8"] == "info" and states["9"] == "asymmetry"
    four = rows[3]
    cells = [td.all_text() for td in four.find_all("td")]
    assert "batch 16, steps 60" in cells and "batch 32, steps 30" in cells
    assert len(four.find_all("td", cls="differs")) == 2  # two backends, no majority: both marked
    one = rows[0]  # swift failed, so it has no value here: each backend keeps its own column
    assert not one.find_all("td", cls="same") and "-" in [td.all_text() for td in one.find_all("td")]


def test_a_value_every_backend_shares_is_one_cell_across_their_columns():
    from unified_ft.report import parity_cells

    names = ["trl", "llamafactory", "swift", "unsloth", "colossalai"]
    assert parity_cells({n: 14 for n in names}, names) == [{"text": "14", "differs": False, "span": 5}]
    split = parity_cells({**{n: 14 for n in names}, "swift": 13}, names)
    assert [c["span"] for c in split] == [1] * 5 and [c["differs"] for c in split] == [False, False, True, False, False]


def test_one_backend_row_each_and_the_failed_one_shows_why(html):
    table = parse_html(html).find("table", id="backends")
    rows = table.find_all("tr", cls="backend-row")
    assert [r.attrs["data-backend"] for r in rows] == ["trl", "llamafactory", "swift"]
    assert [r.attrs["data-status"] for r in rows] == ["succeeded", "succeeded", "failed"]
    trl, _, swift = (r.all_text() for r in rows)
    assert "62.1 ± 1.3" in trl and "2,120 ± 42" in trl and "0.9600 ± 0.0028" in trl
    assert "swift exited with 1" in swift and "torch.OutOfMemoryError: CUDA out of memory" in swift


def test_charts_are_inline_svg_and_skip_the_failed_backend(html):
    doc = parse_html(html)
    for chart in CHARTS:
        figure = doc.find("figure", id=chart)
        assert "chart" in figure.classes
        svg = figure.find("svg")
        assert "viewbox" in svg.attrs and len(svg.find_all("path")) > 5, chart
        assert "Not shown: swift (failed)" in figure.find("figcaption").all_text()
    loss = doc.find("figure", id="chart-loss").all_text()
    assert "trl (mean of 2)" in loss and "llamafactory (mean of 2)" in loss and "swift" not in loss.split("Not")[0]


def test_eval_table_best_in_bold_and_noise_marked(html):
    table = parse_html(html).find("table", id="eval")
    rows = {r.attrs["data-measure"]: r for r in table.find_all("tr", cls="eval-row")}
    assert list(rows)[0] == "rouge_l"  # the measure that decides comes first
    assert set(rows) == {"rouge_l", "loss", "exact_match", "json"}
    rouge = rows["rouge_l"]
    assert [td.all_text() for td in rouge.find_all("td", cls="best")] == ["0.9600 ± 0.0028"]
    assert "noise" in rouge.all_text() and "decides" in rouge.all_text()
    assert "noise" not in rows["loss"].all_text() and rows["loss"].find_all("td", cls="best")
    assert not rows["json"].find_all("td", cls="best")  # no comparison for it: nothing claimed


def test_generations_commands_versions_preflight(html):
    doc = parse_html(html)
    gens = doc.find("table", id="generations").find_all("tr", cls="generation-row")
    assert len(gens) == 3 and '"extra": 1' in gens[2].all_text()
    assert [len(g.find_all("td", cls="miss")) for g in gens] == [0, 0, 1]  # llamafactory's extra key, marked
    commands = [pre.all_text() for pre in doc.find(id="native-commands").find_all("pre", cls="command")]
    assert commands[1] == "llamafactory-cli train native/config.yaml"
    assert commands[2].startswith("swift sft --model tiny") and "'You'\"'\"'re a helpful bot" in commands[2]
    versions = {r.find("td").all_text(): r for r in doc.find("table", id="versions").find_all("tr", cls="version-row")}
    assert len(versions["transformers"].find_all("td", cls="differs")) == 2
    assert not versions["peft"].find_all("td", cls="differs")
    preflight = doc.find(id="preflight")
    assert preflight.find_all("tr", cls="preflight-row") and "Anna is 31" in preflight.all_text()


def test_markdown_summary():
    text = markdown_summary(sample_result())
    lines = text.splitlines()
    assert lines[0] == "## Bake-off extract-json: NOT like-for-like"
    assert "- 4. effective batch and optimizer steps: llamafactory batch 32 vs trl batch 16" in lines
    assert "Parity failures:" in lines and any(line.startswith("- 4. effective batch") and "(breaks)" in line
                                               for line in lines[lines.index("Parity failures:"):])
    assert "| backend | status | wall s | tokens/s | peak MiB | final loss | eval rouge_l |" in lines
    assert "| trl | succeeded | 62.1 ± 1.3 | 2,120 ± 42 | 1,491 ± 16 | 0.0825 ± 0.0021 | 0.9600 ± 0.0028 |" in lines
    assert "| swift | failed | - | - | - | - | - |" in lines
    assert any(line.startswith("swift failed: swift exited with 1") for line in lines)


def _like_for_like_single_run() -> BakeoffResult:
    result = sample_result().model_copy(deep=True)
    result.repeats = 1
    result.verdict.like_for_like, result.verdict.reasons = True, []
    result.parity = [row for row in result.parity if row.passed is not False]
    result.results = result.results[:2]
    for r in result.results:
        m = r.measurements
        for name in ("wall_s", "first_step_s", "train_s", "tokens_per_s", "supervised_tokens_per_s",
                     "peak_memory_mb", "final_loss"):
            setattr(m, name, Stat.of(getattr(m, name).values[:1]))
        m.eval = {key: Stat.of(stat.values[:1]) for key, stat in m.eval.items()}
        r.loss_curves = r.loss_curves[:1]
    return result


def test_like_for_like_single_repeat():
    result = _like_for_like_single_run()
    doc = parse_html(render_html(result))
    assert "ok" in doc.find(id="verdict").classes and "Like-for-like" in doc.find(id="verdict").all_text()
    assert "±" not in doc.find("table", id="backends").all_text()  # one repeat: no spread to show
    assert "Parity failures" not in markdown_summary(result)
    assert markdown_summary(result).startswith("## Bake-off extract-json: like-for-like")


def test_every_backend_failed_still_renders(tmp_path):
    result = sample_result().model_copy(deep=True)
    for r in result.results:
        r.status, r.measurements, r.loss_curves, r.eval_loss_curves, r.generations = "failed", None, [], [], []
        r.error = f"{r.backend} crashed"
    result.parity, result.comparisons = [], []
    doc = parse_html(write_report(result, tmp_path).read_text(encoding="utf-8"))
    assert len(doc.find("table", id="backends").find_all("tr", cls="backend-row")) == 3
    for chart in CHARTS:
        figure = doc.find("figure", id=chart)
        assert not figure.find_all("svg") and "No backend measured this" in figure.all_text()
    assert doc.find("table", id="parity").find_all("tr", cls="parity-row") == []
    assert "| llamafactory | failed |" in markdown_summary(result)


def test_missing_plotting_library_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UftError, match=r"pip install 'unified_ft\[report\]'"):
        write_report(sample_result(), tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert markdown_summary(sample_result())  # the terminal summary needs neither library


def test_cli_and_package_import_no_report_libraries():
    code = ("import sys, unified_ft, unified_ft.cli, unified_ft.report\n"
            "try:\n    unified_ft.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED=' + ','.join(m for m in ('jinja2', 'matplotlib', 'markupsafe') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "LOADED="


def test_template_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch.fnmatch("report.html.j2", p) for p in patterns)
    assert (ROOT / "unified_ft" / "report_templates" / "report.html.j2").is_file()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {r.split(">")[0] for r in extras["report"]} == {"jinja2", "matplotlib"}
    assert "report" in (ROOT / "scripts" / "setup.sh").read_text().split('-e ".[')[1].split("]")[0].split(",")


@pytest.mark.parametrize(("value", "text"), [(None, "-"), ("sha 3f", "sha 3f"), (16, "16"), (True, "true"),
                                             (0.05, "0.05"), (2e-4, "0.0002"), ({"r": 8, "alpha": 16}, "r 8, alpha 16"),
                                             (["q_proj", "v_proj"], "[q_proj, v_proj]")])
def test_short_value(value, text):
    assert short_value(value) == text


def test_fmt_stat():
    assert fmt_stat(Stat.of([61.2, 63.0])) == "62.1 ± 1.3"
    assert fmt_stat(Stat.of([1480.0])) == "1,480"
    assert fmt_stat(Stat.of([])) == "-"
    assert fmt_stat(Stat.of([0.9, 0.9])) == "0.9000 ± 0"


def test_gpu_numbers_get_an_mfu_column_and_reserved_bars():
    result = sample_result().model_copy(deep=True)
    for r in result.results[:2]:
        r.measurements.mfu = Stat.of([0.31, 0.33])
        r.measurements.peak_reserved_mb = Stat.of([2048.0, 2050.0])
    doc = parse_html(render_html(result))
    headers = [th.all_text() for th in doc.find("table", id="backends").find_all("th")]
    assert "MFU" in headers
    assert "32.0% ± 1.4" in doc.find("tr", cls="backend-row").all_text()
    assert "peak reserved (GPU)" in doc.find("figure", id="chart-memory").all_text()
    assert "MFU" not in [th.all_text() for th in parse_html(render_html(sample_result())).find_all("th")]


def test_same_result_same_page():
    assert render_html(sample_result()) == render_html(sample_result())  # reports diff cleanly between bake-offs
