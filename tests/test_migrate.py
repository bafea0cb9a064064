"""The key ledger every importer shares: each native key mapped, kept, ignored with a reason or unknown with a
did-you-mean, exactly once; and telling which tool a config is for."""

from __future__ import annotations

import pytest

from unified_ft.errors import SpecError
from unified_ft.migrate import KeyLedger, check_tool, detect_tool


def test_every_key_is_accounted_for_once_and_leftovers_are_kept():
    native = {"lr": 1e-4, "rank": 8, "output_dir": "out", "lr_sheduler": "cosine", "extra": None,
              "peft": {"alpha": 16, "bias": "none"}}
    ledger = KeyLedger(native, "tool", known={"lr", "rank", "output_dir", "lr_scheduler", "extra", "peft", "epochs"},
                       defaults={"epochs": 3})
    spec = {"training": {"learning_rate": ledger.take("lr", "training.learning_rate"),
                         "epochs": ledger.take("epochs", "training.epochs")},
            "adapter": {"r": ledger.take("rank", "adapter.r")}}
    ledger.ignore(["output_dir", "not_in_config"], "bookkeeping")
    peft = ledger.section("peft", known={"alpha"})
    spec["adapter"]["alpha"] = peft.take("alpha", "adapter.alpha")
    ledger.take("extra", "data.extra")
    result = ledger.finish(spec)

    assert spec["training"] == {"learning_rate": 1e-4, "epochs": 3}
    assert result.mapped == [("lr", "training.learning_rate"), ("rank", "adapter.r"), ("peft.alpha", "adapter.alpha")]
    assert result.defaults == [("epochs", "training.epochs")]  # the tool's default, written out
    assert result.ignored == {"output_dir": "bookkeeping", "extra": "empty (null): the tool's default applies"}
    assert result.kept == {"lr_sheduler": "cosine", "peft.bias": "none"}
    assert result.unknown == {"lr_sheduler": "lr_scheduler", "peft.bias": None}
    assert spec["backend_options"] == {"tool": {"lr_sheduler": "cosine", "peft": {"bias": "none"}}}
    assert result.counts() == {"mapped": 3, "kept": 0, "ignored": 2, "unknown": 2}
    statuses = {row.key: row.status for row in result.rows()}
    assert statuses["lr_sheduler"] == "unknown" and statuses["epochs"] == "default"


def test_a_key_counted_twice_is_an_importer_bug_not_a_silent_pass():
    ledger = KeyLedger({"a": 1}, "tool")
    ledger.take("a", "x")
    ledger.result.kept["a"] = 1  # an importer that both maps and keeps a key
    with pytest.raises(AssertionError, match="counted twice"):
        ledger.finish({})


@pytest.mark.parametrize(("native", "tool"), [
    ({"stage": "sft", "finetuning_type": "lora", "template": "qwen", "cutoff_len": 1024}, "llamafactory"),
    ({"model": {"name_or_path": "x"}, "peft_config": {"name": "lora"}, "train_dataset": "d.yaml"}, "llamafactory"),
    ({"tuner_type": "lora", "lora_rank": 8, "dataset": ["a"]}, "swift"),
    ({"base_model": "x", "micro_batch_size": 2, "sequence_len": 512, "datasets": [{"path": "d"}]}, "axolotl"),
    ({"model_name_or_path": "x", "dataset_name": "d", "use_peft": True, "lora_r": 16}, "trl"),
    ({"learning_rate": 1e-4}, None),
])
def test_detect_tool_by_key_signature(native, tool):
    assert detect_tool(native) == tool


def test_another_tools_config_names_the_right_importer():
    axolotl = {"base_model": "x", "micro_batch_size": 2, "sequence_len": 512, "adapter": "lora"}
    with pytest.raises(SpecError) as caught:
        check_tool(axolotl, "llamafactory", "their.yaml")
    message = str(caught.value)
    assert "config for axolotl, not for llamafactory" in message and "uft import axolotl their.yaml" in message
    check_tool({"stage": "sft", "finetuning_type": "lora"}, "llamafactory", "ok.yaml")  # its own: no error


def test_uft_import_of_another_tools_config_exits_2_naming_the_importer(tmp_path, capsys):
    from unified_ft.cli import main

    config = tmp_path / "qwen-lora.yml"
    config.write_text("base_model: Qwen/Qwen2.5-0.5B\nadapter: lora\nmicro_batch_size: 2\nsequence_len: 512\n"
                      "datasets:\n  - path: d.jsonl\n    type: alpaca\n")
    assert main(["import", "llamafactory", str(config), "-o", str(tmp_path / "spec.yaml")]) == 2
    err = capsys.readouterr().err
    assert "looks like a config for axolotl" in err.replace("\n", "")
    assert f"uft import axolotl {config}" in err.replace("\n", "") and "Traceback" not in err
    assert not (tmp_path / "spec.yaml").exists()
