"""What the Hugging-Face-Trainer backends share (hf_trainer.py): one meaning for each training setting, the
precision guard, the row shapes, and what of a framework's output is copied into the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified_ft.errors import SpecError
from unified_ft.hf_trainer import copy_trained, record_shapes, trainer_arguments
from unified_ft.specfile import validate_spec_dict

ALPACA = {"path": "x.jsonl", "format": "alpaca"}
PAIRS = {"path": "x.jsonl", "format": "preference"}


def _spec(method: str = "sft", **training):
    data = {"train": [ALPACA if method == "sft" else PAIRS]}
    return validate_spec_dict({"name": "p", "model": {"path": "org/m"}, "method": method, "data": data,
                               "training": {"precision": "bf16", **training}})


def test_trainer_arguments_are_every_setting_explicit():
    args = trainer_arguments(_spec(max_steps=7, seed=3))
    assert (args["max_steps"], args["num_train_epochs"], args["seed"], args["data_seed"]) == (7, 1.0, 3, 3)
    assert (args["bf16"], args["fp16"], args["report_to"]) == (True, False, "none")
    args = trainer_arguments(_spec(epochs=2, report_to=["tensorboard"]))
    assert (args["max_steps"], args["num_train_epochs"], args["report_to"]) == (-1, 2, ["tensorboard"])


def test_an_unresolved_precision_is_refused():
    with pytest.raises(ValueError, match="resolved by the plan"):
        trainer_arguments(_spec(precision="auto"))


def test_record_shapes():
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    pair = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "y"}],
            "rejected": [{"role": "assistant", "content": "n"}]}
    assert [s for s, _ in record_shapes(_spec(), [chat, {"text": "t"}], "x")] == ["chat", "text"]
    assert [s for s, _ in record_shapes(_spec("dpo"), [pair], "x")] == ["pair"]
    assert [(s, r["label"]) for s, r in record_shapes(_spec("kto"), [pair], "x")] == [("unpaired", True),
                                                                                        ("unpaired", False)]
    long = {**pair, "chosen": pair["chosen"] * 2}
    with pytest.raises(SpecError, match="one chosen and one rejected"):
        list(record_shapes(_spec("dpo"), [long], "LLaMA-Factory"))


def _saved(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("{}")
    return folder


def test_copy_trained_takes_an_adapter_without_what_is_not_shared(tmp_path):
    source = _saved(tmp_path / "out", "adapter_config.json", "adapter_model.safetensors", "training_args.bin",
                    "optimizer.pt")
    adapter = copy_trained(source, tmp_path / "run", ("optimizer.pt",))
    assert adapter == tmp_path / "run" / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]


def test_copy_trained_takes_full_weights_to_model(tmp_path):
    source = _saved(tmp_path / "out", "config.json", "model.safetensors")
    assert copy_trained(source, tmp_path / "run") is None
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert copy_trained(_saved(tmp_path / "empty"), tmp_path / "run2") is None and not (tmp_path / "run2").exists()
