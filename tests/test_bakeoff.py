"""The bake-off's pure parts and its bad input: the backend list, refusals listed together before anything
starts, an existing folder, a resume of what is not a bake-off; measurements read from a run's files; the
comparisons' noise rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import preference_rows, sft_rows, write_jsonl

from unified_ft.bakeoff_run import check_backends, comparisons, judged_by, plan_all
from unified_ft.cli import main
from unified_ft.comparison import BackendResult, BakeoffResult, Measurements, Preflight, Stat, Verdict
from unified_ft.errors import CapabilityError, SpecError
from unified_ft.measure import eval_figures, mfu, peak_flops, run_figures, warmup_steps
from unified_ft.specfile import load_spec


@pytest.fixture
def spec_file(tmp_path, tiny_model) -> Path:
    write_jsonl(tmp_path / "chats.jsonl", sft_rows(8))
    spec = {"name": "bo", "model": {"path": str(tiny_model)}, "template": "chatml",
            "data": {"train": [{"path": "chats.jsonl", "format": "alpaca"}]},
            "training": {"max_steps": 2}, "evaluation": {"enabled": False}}
    path = tmp_path / "bo.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(("names", "said"), [
    (["trl", "trl"], "trl named more than once"),
    (["trl", "llamafactroy"], "llamafactory"),  # did you mean
    (["trl"], "at least two backends"),
    ([], "at least two backends"),
])
def test_a_bad_backend_list_is_refused_with_the_fix(names, said):
    with pytest.raises(SpecError) as caught:
        check_backends(names)
    assert said in str(caught.value)


def test_the_cli_refuses_a_bad_list_before_anything_starts(spec_file, capsys):
    out = spec_file.parent / "bo-out"
    assert main(["bakeoff", str(spec_file), "--backends", "trl,swift,trl", "-o", str(out)]) == 2
    assert "trl named more than once" in capsys.readouterr().err
    assert not out.exists()


def test_every_refusal_of_every_backend_is_listed_together(spec_file):
    data = yaml.safe_load(spec_file.read_text())
    data["template"] = {"name": "jinja", "jinja": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
    spec_file.write_text(yaml.safe_dump(data))
    with pytest.raises(CapabilityError) as caught:
        plan_all(load_spec(spec_file), ["trl", "llamafactory", "swift"])
    text = str(caught.value)
    assert "nothing was started" in text
    assert "llamafactory: template" in text and "swift: template" in text and "trl:" not in text


def test_an_existing_folder_is_never_overwritten(spec_file, capsys):
    out = spec_file.parent / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["bakeoff", str(spec_file), "--backends", "trl,llamafactory", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "never overwrites" in err and "--resume" in err
    assert (out / "keep.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_resume_of_a_folder_that_is_no_bakeoff_is_refused(tmp_path, capsys):
    assert main(["bakeoff", "--resume", str(tmp_path)]) == 2
    assert "is not a bake-off folder" in capsys.readouterr().err


def test_resume_takes_no_spec(spec_file, tmp_path, capsys):
    assert main(["bakeoff", str(spec_file), "--resume", str(tmp_path)]) == 2
    assert "give no SPEC" in capsys.readouterr().err


def _run_dir(tmp_path: Path, steps: list[tuple[float, int, int]], device: str = "cpu: x86_64") -> Path:
    run = tmp_path / "run"
    (run / "probe").mkdir(parents=True)
    observed = {"process_started": 100.0, "model": {"total_parameters": 1_000_000},
                "steps": [{"step": i + 1, "t": t, "tokens": n, "supervised_tokens": s}
                          for i, (t, n, s) in enumerate(steps)],
                "done": {"peak_memory_mb": 900.0, "device": device, "device_count": 1}}
    (run / "probe" / "observed.json").write_text(json.dumps(observed))
    (run / "manifest.json").write_text(json.dumps({"framework_s": 20.0}))
    return run


def test_run_figures_leave_the_warmup_out(tmp_path):
    run = _run_dir(tmp_path, [(110.0, 1000, 400), (111.0, 2000, 800), (113.0, 4000, 1600)])
    figures = run_figures(run, warmup=1)
    assert figures["wall_s"] == 20.0 and figures["first_step_s"] == 10.0
    assert figures["train_s"] == 3.0
    assert figures["tokens_per_s"] == pytest.approx(1000.0)  # (4000 - 1000) tokens over steps 2-3
    assert figures["supervised_tokens_per_s"] == pytest.approx(400.0)
    assert figures["mfu"] is None  # no GPU peak for a CPU
    assert run_figures(run, warmup=2)["tokens_per_s"] == pytest.approx(1000.0)
    assert run_figures(run, warmup=3)["tokens_per_s"] is None  # nothing left after the warm-up


def test_mfu_from_the_gpu_name():
    assert peak_flops("NVIDIA H200") == 989e12 and peak_flops("cpu: x86_64") is None
    assert peak_flops("Some Future GPU") is None
    assert mfu(10_000, 500_000_000, "NVIDIA H100 80GB HBM3", 1) == pytest.approx(6 * 5e8 * 1e4 / 989e12)
    assert mfu(10_000, 500_000_000, "NVIDIA A100-SXM4-80GB", 2) == pytest.approx(6 * 5e8 * 1e4 / (2 * 312e12))


def test_warmup_steps_default_and_asked():
    assert warmup_steps(3) == 1 and warmup_steps(40) == 4 and warmup_steps(1000) == 5
    assert warmup_steps(1000, 20) == 20 and warmup_steps(10, 0) == 1


def _measured(tokens: list[float], memory: list[float]) -> Measurements:
    empty = Stat.of([])
    return Measurements(wall_s=empty, first_step_s=empty, warmup_steps=1, train_s=empty,
                        tokens_per_s=Stat.of(tokens), supervised_tokens_per_s=empty, peak_memory_mb=Stat.of(memory),
                        final_loss=empty, eval={"loss": Stat.of([2.0, 2.1]), "rouge_l": Stat.of([0.3])})


def _result(measured: dict[str, Measurements]) -> BakeoffResult:
    return BakeoffResult(name="x", spec_sha256="0", method="sft", backends=list(measured), repeats=2, strict=False,
                         created="now", verdict=Verdict(like_for_like=True), preflight=Preflight(),
                         results=[BackendResult(backend=b, status="succeeded", measurements=m)
                                  for b, m in measured.items()])


def test_a_difference_within_the_spread_is_noise_not_a_win():
    rows = {c.measure: c for c in comparisons(_result({
        "trl": _measured([1000, 1120], [900, 901]), "swift": _measured([1040, 1060], [500, 501])}))}
    assert rows["tokens_per_s"].best == "trl" and rows["tokens_per_s"].noise is True
    assert rows["peak_memory_mb"].best == "swift" and rows["peak_memory_mb"].noise is False
    assert rows["eval loss"].better == "lower" and rows["eval rouge_l"].noise is None  # one value: no spread


def test_preference_methods_are_judged_by_the_reward_judges(spec_file):
    spec = load_spec(spec_file)
    assert judged_by(spec) == [spec.evaluation.main_metric, "loss"]
    write_jsonl(spec_file.parent / "pairs.jsonl", preference_rows(4))
    data = yaml.safe_load(spec_file.read_text())
    data["data"]["train"] = [{"path": "pairs.jsonl", "format": "preference"}]
    for method, judges in (("dpo", ["reward_accuracy", "reward_margin"]), ("rm", ["pairwise_accuracy",
                                                                                 "score_margin"])):
        spec_file.write_text(yaml.safe_dump({**data, "method": method}))
        assert judged_by(load_spec(spec_file)) == judges, method


def test_eval_figures_keep_the_judges_not_the_counts(tmp_path):
    report = {"tuned": {"loss": 2.0, "perplexity": 7.4, "metrics": {"rouge_l": 0.5}},
              "preference": {"reward_accuracy": 0.75, "reward_margin": 1.2, "rows": 8, "beta": 0.1, "ties": 0}}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    assert eval_figures(tmp_path) == {"loss": 2.0, "perplexity": 7.4, "rouge_l": 0.5, "reward_accuracy": 0.75,
                                      "reward_margin": 1.2}


def test_equal_values_have_no_winner():
    same = {"trl": _measured([1000, 1000], [900, 900]), "swift": _measured([1000.01, 1000.01], [900, 900])}
    rows = {c.measure: c for c in comparisons(_result(same))}
    assert rows["tokens_per_s"].best is None and rows["eval loss"].best is None


PARITY_RUNS = Path(__file__).parent / "data" / "parity"


def _preflight_from_files(changed: str | None = None):
    """What each backend's pre-flight saw, from real runs' effective.json; `changed`'s first sample re-templated."""
    from unified_ft.effective import Effective

    def fake(plan, folder, say=None):
        found = Effective.model_validate_json((PARITY_RUNS / f"{plan.backend.name}.json").read_text())
        if plan.backend.name == changed:
            found.samples.first_step[0].input_ids[2] += 1
        return found
    return fake


def test_strict_stops_after_a_failed_preflight_before_any_training(spec_file, monkeypatch, capsys):
    """The orchestration only (the pre-flight itself runs for real in tests/integration/test_bakeoff_runs.py)."""
    monkeypatch.setattr("unified_ft.bakeoff_run.preflight", _preflight_from_files(changed="swift"))
    out = spec_file.parent / "strict"
    assert main(["bakeoff", str(spec_file), "--backends", "trl,swift", "--strict", "-o", str(out)]) == 1
    assert "pre-flight: not like-for-like, nothing was trained" in capsys.readouterr().err
    result = BakeoffResult.model_validate_json((out / "bakeoff.json").read_text())
    assert [r.status for r in result.results] == ["not run", "not run"] and not (out / "runs").exists()
    assert result.preflight.checks[0].passed is False and "sample 1 differs at token 2" in result.verdict.reasons[0]
    assert not result.verdict.like_for_like and (out / "report.html").is_file()


def test_without_strict_a_failed_preflight_is_said_and_the_bakeoff_goes_on(spec_file, monkeypatch):
    monkeypatch.setattr("unified_ft.bakeoff_run.preflight", _preflight_from_files(changed="swift"))
    monkeypatch.setattr("unified_ft.bakeoff_run._run_all", lambda *args: None)  # training is not what this tests
    said: list[str] = []
    from unified_ft.bakeoff_run import bakeoff

    result = bakeoff(load_spec(spec_file), ["trl", "swift"], out_dir=spec_file.parent / "lax", say=said.append)
    assert any(line.startswith("pre-flight: not like-for-like: 1. same token ids") for line in said)
    assert "pre-flight: 1. same token ids" in result.verdict.reasons[0]


def test_the_package_level_bakeoff_is_the_function_even_after_its_stages_are_imported():
    import unified_ft
    import unified_ft.bakeoff_run  # noqa: F401 - importing a submodule sets an attribute on the package
    from unified_ft import bakeoff
    assert callable(bakeoff) and bakeoff.__module__ == "unified_ft.api" and unified_ft.bakeoff is bakeoff
