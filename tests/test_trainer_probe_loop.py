"""The trainer probe's loop API (LoopObserver): a training loop that is not a transformers.Trainer reports to the
probe, which writes observed.json and metrics.jsonl in the Trainer path's schema, read back by effective.py
unchanged. A tiny torch loop here (no framework); the pre-flight in a child process (it ends the process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unified_ft import trainer_probe
from unified_ft.effective import compare, differences, read_back
from unified_ft.specfile import validate_spec_dict

torch = pytest.importorskip("torch")

ROWS = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
        {"input_ids": [9, 10, 11], "labels": [-100, 10, 11]},
        {"input_ids": [12, 13], "labels": [-100, 13]}]
ARGUMENTS = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2, "world_size": 1,
             "learning_rate": 0.1, "lr_scheduler_type": "linear", "warmup_ratio": 0.0, "warmup_steps": 0,
             "num_train_epochs": 1.0, "max_steps": 2, "optim": "adamw_torch", "weight_decay": 0.0,
             "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "max_grad_norm": 1.0, "seed": 3,
             "data_seed": 3, "bf16": False, "fp16": False, "gradient_checkpointing": False}


class Tokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return " ".join(f"t{i}" for i in ids)


def batches():
    for row in ROWS:
        yield {"input_ids": torch.tensor([row["input_ids"]]), "attention_mask": torch.ones(1, len(row["input_ids"]),
                                                                                            dtype=torch.long),
               "labels": torch.tensor([row["labels"]])}


@pytest.fixture
def probe(tmp_path, monkeypatch):
    monkeypatch.setenv(trainer_probe.OUT_ENV, str(tmp_path / "run" / "probe"))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(trainer_probe, "_OBSERVER", None)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # install() adds its import hook to a copy
    return trainer_probe.loop_observer()


def test_no_probe_without_uft(monkeypatch):
    monkeypatch.delenv(trainer_probe.OUT_ENV, raising=False)
    monkeypatch.setattr(trainer_probe, "_OBSERVER", None)
    assert trainer_probe.loop_observer() is None


def test_a_custom_loop_writes_what_the_read_back_reads(probe, tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW([{"params": [model.weight], "weight_decay": 0.0},
                                   {"params": [model.bias], "weight_decay": 0.0}], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 2)
    probe.begin(arguments=ARGUMENTS, schedule={"max_steps": 2, "num_train_epochs": 1, "warmup_steps": 0},
                optimizer=optimizer, model=model, rows=ROWS, tokenizer=Tokenizer(), sampler="SequentialSampler",
                trainer=["toy.Loop"])
    feed = list(batches())
    for step, group in ((1, feed[:2]), (2, feed[2:])):
        probe.step_begin(step, optimizer.param_groups[0]["lr"])
        for batch in group:
            probe.see_inputs(batch)
        optimizer.step()
        scheduler.step()
        probe.step_end(step)
        probe.log({"step": step, "epoch": step / 2, "loss": 1.0 / step, "grad_norm": 0.5})
    probe.end(2, 1.0)

    run_dir = tmp_path / "run"
    observed = json.loads((run_dir / "probe" / "observed.json").read_text())
    assert observed["errors"] == [] and observed["learning_rate"] == [0.1, 0.05]
    assert observed["sampler"] == "SequentialSampler" and observed["data"]["supervised_tokens"] == [2, 2, 1]
    rows = [json.loads(line) for line in (run_dir / "probe" / "metrics.jsonl").read_text().splitlines()]
    assert [r["learning_rate"] for r in rows] == [0.1, 0.05] and rows[0]["tokens"] == 7 and rows[1]["tokens"] == 9
    assert set(rows[0]) == {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens", "elapsed_s",
                            "peak_memory_mb"}

    (run_dir / "data").mkdir()
    (run_dir / "data" / "train.jsonl").write_text("".join(json.dumps({"text": f"t{r['input_ids'][0]}"}) + "\n"
                                                          for r in ROWS))
    spec = validate_spec_dict({"name": "p", "model": {"path": "org/m"}, "method": "pt",
                               "data": {"train": [{"path": "x.jsonl", "format": "text"}], "max_length": 8},
                               "adapter": {"type": "full"},
                               "training": {"max_steps": 2, "per_device_batch_size": 1, "seed": 3,
                                            "gradient_accumulation_steps": 2, "learning_rate": 0.1,
                                            "lr_scheduler": "linear", "warmup_ratio": 0.0, "precision": "fp32",
                                            "max_grad_norm": 1.0}})
    effective = read_back(run_dir, spec, "toy", 3)
    assert effective.notes == []
    assert effective.batch.effective == 2 and effective.batch.steps_done == 2
    assert effective.learning_rate.per_step == [0.1, 0.05] and effective.learning_rate.peak == 0.1
    first = effective.samples.first_step
    assert [s.label_mask for s in first] == [[0, 0, 1, 1], [0, 1, 1]] and [s.row for s in first] == [0, 1]
    assert effective.samples.supervised_tokens_total == 5 and effective.samples.framework_rows == 3
    assert effective.order.sampler == "sequential" and effective.order.first_step_in_file_order is True
    assert effective.precision.compute == "fp32" and effective.optimizer.betas == [0.9, 0.999]
    assert not [c.setting for c in differences(compare(spec, effective, "toy"))
                if c.setting not in ("gradient checkpointing",)]


def test_an_error_inside_the_probe_is_recorded_not_raised(probe, tmp_path):
    probe.begin(arguments=ARGUMENTS, schedule={}, optimizer=None, model=None, rows=ROWS)  # no model: an error
    probe.end(0)
    observed = json.loads((tmp_path / "run" / "probe" / "observed.json").read_text())
    assert observed["errors"] and "done" in observed


PREFLIGHT = """
import sys, torch
sys.path.insert(0, {probe_dir!r})
import trainer_probe
rows = {rows!r}
loader = [{{"input_ids": torch.tensor([r["input_ids"]]), "labels": torch.tensor([r["labels"]])}} for r in rows]
probe = trainer_probe.loop_observer()
probe.begin(arguments={arguments!r}, schedule={{"max_steps": 2}}, optimizer=torch.optim.SGD(
    [torch.nn.Parameter(torch.zeros(1))], lr=0.1), model=torch.nn.Linear(1, 1), rows=rows, dataloader=loader)
print("trained")  # never reached: the pre-flight ends the process
sys.exit(3)
"""


def test_preflight_captures_the_first_step_and_exits_before_training(tmp_path):
    program = PREFLIGHT.format(probe_dir=str(Path(trainer_probe.__file__).parent), rows=ROWS, arguments=ARGUMENTS)
    env = {**os.environ, trainer_probe.OUT_ENV: str(tmp_path / "probe"), trainer_probe.PREFLIGHT_ENV: "1",
           "RANK": "0"}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "trained" not in done.stdout, done.stderr[-2000:]
    observed = json.loads((tmp_path / "probe" / "observed.json").read_text())
    assert observed["preflight"] is True and observed["errors"] == []
    assert [s["labels"] for s in observed["first_step"]] == [ROWS[0]["labels"], ROWS[1]["labels"]]
