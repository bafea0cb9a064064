"""A real CPU bake-off of all five backends on the tiny model: like-for-like proven from the
frameworks' own outputs, measured, reported, and the report checked in headless Chromium as a person sees it;
then a bake-off where one backend crashes still reports, and a resume runs only what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from browser import parse_html, png_distinct_rows, render
from fixtures import BAKEOFF_BACKENDS, preference_rows, same_spec, write_jsonl

from unified_ft.bakeoff_run import bakeoff, resume_bakeoff
from unified_ft.cli import main
from unified_ft.comparison import BakeoffResult
from unified_ft.errors import RunInterrupted
from unified_ft.specfile import load_spec

pytestmark = pytest.mark.integration

BACKENDS = list(BAKEOFF_BACKENDS)


def _result(out: Path) -> BakeoffResult:
    return BakeoffResult.model_validate_json((out / "bakeoff.json").read_text())


def test_the_five_backends_are_like_for_like(same_job_bakeoff):
    result = _result(same_job_bakeoff)
    assert result.verdict.like_for_like, result.verdict.reasons
    assert [r.status for r in result.results] == ["succeeded"] * len(BACKENDS)
    assert {r.number for r in result.parity} == set(range(1, 10))
    assert all(r.passed for r in result.parity if r.severity == "breaks"), \
        [r for r in result.parity if r.severity == "breaks" and not r.passed]
    pre = result.preflight
    assert not pre.errors and sorted(pre.first_samples) == sorted(BACKENDS)
    assert [r.passed for r in pre.checks] == [True, True, True]
    assert all(pre.first_samples[b][0] == pre.first_samples["trl"][0] for b in BACKENDS)
    assert "<|im_start|>user" in pre.first_samples["trl"][0]  # each framework's own chatml rendering


def test_the_preflight_trained_nothing(same_job_bakeoff):
    for backend in BACKENDS:
        observed = json.loads((same_job_bakeoff / "preflight" / backend / "probe" / "observed.json").read_text())
        assert observed["preflight"] is True and observed["steps"] == [] and "done" not in observed, backend
        assert len(observed["first_step"]) == 4, backend  # the whole first step: 2 x 2 samples


def test_every_backend_is_measured(same_job_bakeoff):
    for entry in _result(same_job_bakeoff).results:
        m = entry.measurements
        assert m is not None, entry.backend
        assert m.wall_s.mean > m.first_step_s.mean > 0, entry.backend
        assert m.warmup_steps == 1 and m.train_s.mean > 0
        assert m.tokens_per_s.mean > m.supervised_tokens_per_s.mean > 0, entry.backend
        assert m.peak_memory_mb.mean > 100 and m.mfu is None  # RSS on CPU; MFU needs a GPU's peak
        assert [p.step for p in entry.loss_curves[0]] == [1, 2, 3]
        assert {"loss", "perplexity", "rouge_l"} <= set(m.eval), entry.backend
        assert entry.command and Path(entry.native_dir).is_dir() and entry.versions["transformers"]
        assert len(entry.generations) == 4 and entry.generations[0].prompt.startswith("user: hello 100")
    rows = {c.measure: c for c in _result(same_job_bakeoff).comparisons}
    assert rows["eval loss"].values["trl"] == pytest.approx(rows["eval loss"].values["swift"], rel=1e-4)


def test_the_report_as_a_person_sees_it(same_job_bakeoff, tmp_path, capsys):
    shown = render(same_job_bakeoff / "report.html", tmp_path)
    doc = parse_html(shown.dom)
    assert "Like-for-like" in doc.find(id="verdict").all_text()
    assert len(doc.find("table", id="parity").find_all("tr", cls="parity-row")) == len(_result(same_job_bakeoff).parity)
    rows = doc.find("table", id="backends").find_all("tr", cls="backend-row")
    assert [r.attrs["data-backend"] for r in rows] == BACKENDS
    for chart in ("chart-loss", "chart-throughput", "chart-memory"):
        assert doc.find("figure", id=chart).find("svg").find_all("path"), chart
    assert png_distinct_rows(shown.screenshot) > 100
    summary = (same_job_bakeoff / "summary.md").read_text()
    assert "like-for-like" in summary.lower() and all(b in summary for b in BACKENDS)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory, tiny_model) -> Path:
    """trl and a LLaMA-Factory that crashes once its model is loaded: a native option (passed through, visibly) that
    its trainer refuses as training begins (a checkpoint that is not there)."""
    folder = tmp_path_factory.mktemp("crash")
    spec = same_spec(folder, tiny_model)
    data = yaml.safe_load(spec.read_text())
    data["evaluation"] = {"enabled": False}
    data["backend_options"] = {"llamafactory": {"resume_from_checkpoint": str(folder / "no-such-checkpoint")}}
    spec.write_text(yaml.safe_dump(data))
    out = folder / "out"
    assert main(["bakeoff", str(spec), "--backends", "trl,llamafactory", "-o", str(out)]) == 0
    return out


def test_a_backend_that_crashes_is_reported_and_the_other_still_runs(crashed):
    result = _result(crashed)
    trl, lf = result.results
    assert trl.status == "succeeded" and trl.measurements is not None
    assert lf.status == "failed" and "llamafactory" in lf.error and lf.log_tail
    assert "no-such-checkpoint" in lf.log_tail
    assert "llamafactory" in result.preflight.errors  # the pre-flight saw it first
    assert not result.verdict.like_for_like and "fewer than two backends finished" in result.verdict.reasons[-1]
    assert next(r for r in result.parity if r.number == 9).detail == "llamafactory only: resume_from_checkpoint"
    doc = parse_html((crashed / "report.html").read_text())
    row = next(r for r in doc.find("table", id="backends").find_all("tr", cls="backend-row")
               if r.attrs["data-backend"] == "llamafactory")
    assert "failed" in row.all_text()


def test_resume_runs_only_what_is_missing(crashed, capsys):
    trl_runs = sorted(crashed.glob("runs/repeat-1/*/trl"))
    assert main(["bakeoff", "--resume", str(crashed)]) == 0
    assert sorted(crashed.glob("runs/repeat-1/*/trl")) == trl_runs  # the finished run is kept, not run again
    attempts = sorted(crashed.glob("runs/repeat-1/*/llamafactory"))
    assert len(attempts) == 2  # the failed one kept as it was, a new one beside it
    resumed = _result(crashed)
    assert resumed.results[1].status == "failed" and "no-such-checkpoint" in resumed.results[1].log_tail
    assert "exited with code" in resumed.preflight.errors["llamafactory"]  # its pre-flight really ran again
    assert (crashed / "preflight" / "llamafactory.attempt-1" / "logs" / "stderr.log").is_file()  # the first kept


def test_a_dpo_bakeoff_is_judged_by_the_reward_judges(tmp_path, tiny_model):
    """DPO on trl and ms-swift: the same pairs, the same steps and losses, and the verdict on quality from reward
    accuracy and margin on the eval pairs."""
    write_jsonl(tmp_path / "pairs.jsonl", preference_rows(12))
    write_jsonl(tmp_path / "held_out.jsonl", preference_rows(16)[12:])
    spec = {"name": "dpo", "model": {"path": str(tiny_model)}, "template": "chatml", "method": {"name": "dpo"},
            "adapter": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
            "data": {"train": [{"path": "pairs.jsonl", "format": "preference"}], "max_length": 64,
                     "eval": {"path": "held_out.jsonl", "format": "preference"}},
            "training": {"max_steps": 3, "per_device_batch_size": 2, "learning_rate": 1.0e-2, "seed": 7},
            "evaluation": {"max_new_tokens": 4, "compare_base": False}}
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(spec))
    assert main(["bakeoff", str(tmp_path / "dpo.yaml"), "--backends", "trl,swift", "-o", str(tmp_path / "out")]) == 0
    result = _result(tmp_path / "out")
    assert result.verdict.like_for_like, result.verdict.reasons
    assert result.verdict.judged_by == ["reward_accuracy", "reward_margin"]
    assert result.parity[0].passed is True  # the collators' ids agree here (else shown unjudged, see test_parity)
    trl, swift = (r.measurements for r in result.results)
    for m in (trl, swift):
        assert 0 <= m.eval["reward_accuracy"].mean <= 1 and m.eval["reward_margin"].mean is not None
    assert trl.final_loss.mean == pytest.approx(swift.final_loss.mean, rel=1e-4)
    assert "eval reward_accuracy" in {c.measure for c in result.comparisons}


def test_an_interrupted_bakeoff_keeps_what_it_has_and_resumes(tmp_path, tiny_model):
    """Ctrl-C while trl trains (raised from the progress callback, as the signal handler would): trl is recorded
    as interrupted, llamafactory as not run, the report is written; the resume runs both, twice each (repeats
    interleaved), and reuses the pre-flight."""
    spec = load_spec(same_spec(tmp_path, tiny_model, evaluation={"enabled": False}))
    out = tmp_path / "out"

    def ctrl_c(row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        bakeoff(spec, ["trl", "llamafactory"], repeats=2, out_dir=out, on_progress=ctrl_c)
    result = _result(out)
    assert [r.status for r in result.results] == ["interrupted", "not run"]
    assert (out / "report.html").is_file() and result.finished is not None
    preflight_mtime = (out / "preflight" / "trl" / "effective.json").stat().st_mtime
    resumed = resume_bakeoff(out)
    assert [r.status for r in resumed.results] == ["succeeded", "succeeded"]
    assert resumed.verdict.like_for_like, resumed.verdict.reasons
    assert (out / "preflight" / "trl" / "effective.json").stat().st_mtime == preflight_mtime
    assert len(list(out.glob("runs/repeat-1/*/trl"))) == 2  # the interrupted run is kept beside the new one
    for entry in resumed.results:
        m = entry.measurements
        assert len(entry.run_dirs) == 2 and len(m.wall_s.values) == 2 and m.wall_s.spread is not None
        assert m.final_loss.values[0] == pytest.approx(m.final_loss.values[1], rel=1e-6)  # same seed, same loss
        assert len(entry.loss_curves) == 2
    started = sorted((json.loads(p.read_text())["started_at"], p.parent.parent.parent.name, p.parent.name)
                     for p in out.glob("runs/repeat-*/*/*/manifest.json") if "failed" not in p.read_text())
    assert [(r, b) for _t, r, b in started][-4:] == [("repeat-1", "trl"), ("repeat-1", "llamafactory"),
                                                   ("repeat-2", "trl"), ("repeat-2", "llamafactory")]
