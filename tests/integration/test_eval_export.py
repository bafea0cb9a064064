"""run -> shared evaluation -> export merged -> reload -> compare, on the tiny fixture model, for real."""

from __future__ import annotations

import json

import pytest
import yaml
from fixtures import sft_rows, write_jsonl

from unified_ft.cli import main
from unified_ft.errors import RunDirError, UftError
from unified_ft.export import export_run

pytestmark = pytest.mark.integration


LOCAL_TASK = """task: uft_local_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: DATA
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs: {until: ["<|im_end|>"], do_sample: false, max_gen_toks: 8}
metric_list:
  - {metric: exact_match, aggregation: mean, higher_is_better: true}
metadata: {version: 1.0}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model):
    """One LoRA run with the shared evaluation on (the default), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("evalrun")
    write_jsonl(tmp / "sft.jsonl", sft_rows(30))
    tasks = tmp / "lm_tasks"
    tasks.mkdir()
    write_jsonl(tasks / "qa.jsonl", [{"question": f"say number {i}", "answer": f"number {i} yes"} for i in range(6)])
    (tasks / "uft_local_qa.yaml").write_text(LOCAL_TASK.replace("DATA", str(tasks / "qa.jsonl")))
    spec = {"name": "judged", "model": {"path": str(tiny_model)}, "template": "chatml",
            "data": {"train": [{"path": "sft.jsonl", "format": "alpaca"}], "eval_split": 0.2, "max_length": 64},
            "training": {"max_steps": 12, "learning_rate": 1.0e-2, "per_device_batch_size": 4},
            "evaluation": {"max_new_tokens": 8, "checks": [{"type": "regex", "pattern": "number \\\\d yes"}],
                           "forgetting": {"path": "builtin", "format": "text"},
                           "lm_eval": {"tasks": ["uft_local_qa"], "include_path": "lm_tasks"}},
            "export": {"formats": ["adapter"]}}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp / "spec.yaml"), "--runs-dir", str(tmp / "runs")]) == 0
    return tmp / "runs" / "judged" / "trl"


def test_evaluation_runs_after_training_and_writes_eval_json(finished_run):
    report = json.loads((finished_run / "eval.json").read_text())
    assert report["schema_version"] == 1 and report["backend"] == "trl" and report["eval_rows"] == 6
    for role in ("base", "tuned"):
        scores = report[role]
        assert set(scores["metrics"]) == {"exact_match", "normalized_exact_match", "rouge_l", "bleu"}
        assert "regex" in scores["checks"] and scores["perplexity"] == pytest.approx(2.718281828 ** scores["loss"])
        assert scores["generated_tokens"] > 0 and scores["tokens_per_s"] > 0
    assert report["tuned"]["loss"] < report["base"]["loss"]  # 12 steps at a high rate on 24 rows
    assert report["forgetting"]["rows"] == 32
    for role in ("base", "tuned"):  # lm-evaluation-harness on a task over local data, same two models
        assert 0.0 <= report[role]["lm_eval"]["uft_local_qa"]["exact_match"] <= 1.0
    samples = [json.loads(line) for line in (finished_run / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and samples[0]["prompt"][-1]["role"] == "user"
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["evaluation"].startswith("succeeded")


def test_spec_export_section_runs_after_training(finished_run):
    exported = finished_run / "export" / "adapter"
    assert (exported / "adapter_model.safetensors").exists() and (exported / "README.md").exists()
    assert "## Evaluation" in (exported / "README.md").read_text()  # the card carries the shared evaluation
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["exports"] == [str(exported)]


def test_uft_eval_again_replaces_the_report_whole(finished_run, capsys):
    before = json.loads((finished_run / "eval.json").read_text())
    assert main(["eval", str(finished_run)]) == 0
    after = json.loads((finished_run / "eval.json").read_text())
    assert after["tuned"]["loss"] == pytest.approx(before["tuned"]["loss"])  # deterministic
    assert after["tuned"]["metrics"] == before["tuned"]["metrics"]
    assert "base vs tuned" in capsys.readouterr().out


def test_merged_export_reloads_with_the_same_logits_as_base_plus_adapter(finished_run, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_run(finished_run, "merged", tmp_path / "merged")
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
    assert "judged (merged)" in (out / "README.md").read_text()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                          finished_run / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "say number 3"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        diff = (merged(ids).logits - reference(ids).logits).abs().max().item()
    assert diff < 1e-4
    assert "<|im_start|>" in tokenizer.chat_template


def test_adapter_export_and_never_overwriting(finished_run, tmp_path):
    out = export_run(finished_run, "adapter", tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in out.iterdir()}
    with pytest.raises(RunDirError, match="never overwritten"):
        export_run(finished_run, "adapter", tmp_path / "adapter")


def test_bad_inputs_for_eval_and_export(finished_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a uft run directory" in capsys.readouterr().err
    with pytest.raises(UftError, match="unknown export"):
        export_run(finished_run, "onnx")
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "spec.yaml").write_text((finished_run / "spec.yaml").read_text())
    (failed / "manifest.json").write_text(json.dumps({"status": "failed"}))
    assert main(["export", str(failed), "--to", "merged"]) == 2
    assert "the run is failed" in capsys.readouterr().err
    assert not (failed / "export").exists()


def _copy_run(finished_run, tmp_path, edit_spec):
    import shutil

    copy = tmp_path / "run-copy"
    shutil.copytree(finished_run, copy, ignore=shutil.ignore_patterns("export", "native"))
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    edit_spec(spec)
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    return copy


def test_adapter_whose_base_does_not_match_is_refused(finished_run, tmp_path, tiny_model):
    import shutil

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    copy = _copy_run(finished_run, tmp_path, lambda s: s["model"].update(path=str(other)))
    with pytest.raises(UftError, match="was trained on"):
        from unified_ft.evaluate import evaluate_run

        evaluate_run(copy)


def test_merging_into_a_quantized_base_is_refused_with_what_to_do(finished_run, tmp_path, tiny_model):
    import shutil

    quantized = tmp_path / "gptq-model"
    shutil.copytree(tiny_model, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (quantized / "config.json").write_text(json.dumps(config))
    copy = _copy_run(finished_run, tmp_path, lambda s: s["model"].update(path=str(quantized)))
    with pytest.raises(UftError, match="(?s)stored quantized \\(gptq\\).*export the adapter"):
        export_run(copy, "merged")
    assert not (copy / "export" / "merged").exists()


def test_evaluation_without_the_embedded_stack_names_the_install_command(finished_run, monkeypatch):
    import unified_ft.evaluate as evaluate

    monkeypatch.setattr(evaluate, "module_available", lambda name: name != "rouge_score")
    with pytest.raises(UftError, match="(?s)need rouge_score.*pip install"):
        evaluate.evaluate_run(finished_run)
