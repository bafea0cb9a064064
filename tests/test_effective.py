"""The read-back of what a framework did (effective.py) on probe outputs written here: every difference from the
spec is flagged, whatever the probe could not see is a note (never a crash), and `uft inspect` refuses what is
not a finished run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from unified_ft.cli import main
from unified_ft.effective import compare, differences, leaf_names, match_row, read_back
from unified_ft.spec import JobSpec

RECORDS = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
           for i in range(6)]


def _text(i: int) -> str:
    return f"<|im_start|>user\nquestion {i}<|im_end|>\n<|im_start|>assistant\nanswer {i}<|im_end|>\n"


def _sample(i: int) -> dict:
    return {"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4], "text": _text(i)}


OBSERVED = {
    "probe_version": 1, "versions": {"torch": "2.14.1", "transformers": "5.6.0"}, "errors": [],
    "learning_rate": [0.0, 0.001], "first_step": [_sample(0), _sample(1), _sample(2), _sample(3)],
    "arguments": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "world_size": 1,
                  "lr_scheduler_type": "cosine", "optim": "adamw_torch", "max_grad_norm": 1.0, "seed": 42,
                  "data_seed": 42},
    "schedule": {"max_steps": 2, "num_train_epochs": 1, "warmup_steps": 0},
    "optimizer": {"class": "torch.optim.adamw.AdamW", "groups": [
        {"parameters": 10, "lr": 0.001, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}]},
    "model": {"parameter_dtypes": {"float32": 100}, "trainable_parameters": 10, "total_parameters": 100,
              "gradient_checkpointing": False, "quantization": None},
    "precision": {"bf16": False, "fp16": False, "mixed_precision": "no"},
    "data": {"samples": 6, "lengths": [4] * 6, "supervised_tokens": [2] * 6, "supervised_from": "labels",
             "first_rows_text": [_text(i) for i in range(5)]},
    "sampler": "SequentialSampler", "done": {"global_step": 2},
}
ADAPTER = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "use_rslora": False, "use_dora": False,
           "target_modules": ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.up_proj"]}


def _spec(**training) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "model": {"path": "org/m"}, "template": "chatml",
                                   "data": {"train": [{"path": "x.jsonl", "format": "messages"}]},
                                   "training": {"max_steps": 2, "per_device_batch_size": 2,
                                                "gradient_accumulation_steps": 2, "learning_rate": 1e-3,
                                                "warmup_ratio": 0.0, "precision": "fp32", **training}})


def _run_dir(tmp_path: Path, observed: dict | None = OBSERVED, adapter: dict | None = ADAPTER) -> Path:
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    if observed is not None:
        (run / "probe").mkdir()
        (run / "probe" / "observed.json").write_text(json.dumps(observed))
    if adapter is not None:
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_config.json").write_text(json.dumps(adapter))
    return run


def _differing(tmp_path: Path, observed: dict, spec: JobSpec | None = None) -> list[str]:
    spec = spec or _spec()
    effective = read_back(_run_dir(tmp_path, observed), spec, "llamafactory", uft_rows=6)
    return [c.setting for c in differences(compare(spec, effective, "llamafactory"))]


def test_a_run_that_did_what_the_spec_says_has_no_difference(tmp_path):
    spec = _spec()
    effective = read_back(_run_dir(tmp_path), spec, "llamafactory", uft_rows=6)
    assert differences(compare(spec, effective, "llamafactory")) == []
    assert effective.adapter.target_modules == ["q_proj", "up_proj"]
    assert effective.samples.first_step[0].label_mask == [0, 0, 1, 1]
    assert effective.samples.supervised_tokens_total == 12 and effective.batch.effective == 4
    assert effective.order.first_step_rows == [0, 1, 2, 3] and effective.order.reordered_at_load is False
    assert effective.notes == []


def _changed(path: str, value) -> dict:
    observed = copy.deepcopy(OBSERVED)
    *parents, key = path.split(".")
    target = observed
    for part in parents:
        target = target[part]
    target[key] = value
    return observed


@pytest.mark.parametrize(("path", "value", "setting"), [
    ("arguments.gradient_accumulation_steps", 4, "effective batch"),  # automatic accumulation (ms-swift's)
    ("optimizer.groups", [{"parameters": 10, "lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.999], "eps": 1e-8}],
     "weight decay"),
    ("optimizer.groups", [{"parameters": 10, "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.95], "eps": 1e-8}],
     "adam betas"),
    ("sampler", "RandomSampler", "sampler (rows read as uft wrote them)"),
    ("data.first_rows_text", [_text(i) for i in (3, 0, 5, 1, 2)], "reorders rows at load"),  # a load-time shuffle
    ("first_step", [_sample(4), _sample(2), _sample(0), _sample(1)], "first step trains uft's first rows"),
    ("data.samples", 5, "samples after preprocessing"),  # a row dropped by the framework's preprocessor
    ("model.gradient_checkpointing", True, "gradient checkpointing"),  # LLaMA-Factory's own default
    ("precision.bf16", True, "compute precision"),
    ("arguments.seed", 0, "seed"),
    ("schedule.warmup_steps", 1, "warmup steps"),
])
def test_each_thing_a_framework_does_differently_is_flagged(tmp_path, path, value, setting):
    assert _differing(tmp_path, _changed(path, value)) == [setting]


def test_a_different_adapter_is_flagged(tmp_path):
    spec = _spec()
    effective = read_back(_run_dir(tmp_path, adapter={**ADAPTER, "lora_alpha": 32, "lora_dropout": 0.05}), spec,
                          "swift", uft_rows=6)
    assert [c.setting for c in differences(compare(spec, effective, "swift"))] == ["adapter alpha",
                                                                                  "adapter dropout"]


def test_adam_settings_from_backend_options_are_what_is_expected(tmp_path):
    observed = _changed("optimizer.groups", [{"parameters": 10, "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.95],
                                              "eps": 1e-8}])
    spec = _spec()
    spec.backend_options = {"llamafactory": {"adam_beta2": 0.95}}
    assert _differing(tmp_path, observed, spec) == []


def test_missing_probe_output_is_a_note_not_a_crash(tmp_path):
    spec = _spec()
    effective = read_back(_run_dir(tmp_path, observed=None, adapter=None), spec, "trl", uft_rows=6)
    assert any("probe wrote nothing" in note for note in effective.notes)
    assert effective.batch.effective is None and effective.samples.first_step == []
    assert differences(compare(spec, effective, "trl")) == []  # unknown is not "different"


def test_a_probe_error_is_a_note(tmp_path):
    observed = {**OBSERVED, "errors": ["Traceback ...\nKeyError: 'optimizer'\n"]}
    effective = read_back(_run_dir(tmp_path, observed), _spec(), "trl", uft_rows=6)
    assert effective.notes == ["the probe hit an error: KeyError: 'optimizer'"]


def test_identical_rows_make_the_order_unknown_not_wrong(tmp_path):
    run = _run_dir(tmp_path)
    (run / "data" / "train.jsonl").write_text("".join(json.dumps(RECORDS[0]) + "\n" for _ in range(6)))
    observed = _changed("first_step", [_sample(0)] * 4)
    (run / "probe" / "observed.json").write_text(json.dumps(observed))
    effective = read_back(run, _spec(), "trl", uft_rows=6)
    assert effective.order.first_step_in_file_order is None and effective.order.reordered_at_load is None


def test_match_row_prefers_the_record_whose_texts_all_appear():
    records = [["question 1", "answer 1"], ["question 1", "answer 12"], ["question 2"]]
    assert match_row("user question 1 assistant answer 12", records) == 1
    assert match_row("user question 2", records) == 2
    assert match_row("nothing alike", records) is None and match_row(None, records) is None


def test_leaf_names():
    assert leaf_names(["model.layers.0.self_attn.q_proj", "q_proj", "model.layers.1.mlp.up_proj"]) == ["q_proj",
                                                                                                        "up_proj"]


def test_inspect_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a uft run directory" in err and "Traceback" not in err
