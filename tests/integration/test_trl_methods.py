"""Every method and adapter the trl backend marks as runnable on CPU, for real, through the library API."""

from __future__ import annotations

import json

import pytest
from fixtures import kto_rows, preference_rows, sft_rows, write_jsonl

from unified_ft import run

pytestmark = pytest.mark.integration

CASES = {
    "pt-packing": {"method": "pt", "data": {"train": [{"path": "text.jsonl", "format": "text"}], "packing": True}},
    "orpo": {"method": "orpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
    "kto": {"method": "kto", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
    "kto-unpaired": {"method": "kto", "data": {"train": [{"path": "kto.jsonl", "format": "unpaired"}]}},
    "simpo": {"method": "simpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
    "cpo": {"method": "cpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
    "rm": {"method": "rm", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
    "dora-rslora": {"adapter": {"type": "dora", "rslora": True}},
    "prompt": {"adapter": {"type": "prompt", "num_virtual_tokens": 4}},
    "prefix": {"adapter": {"type": "prefix", "num_virtual_tokens": 4}},
    "p_tuning": {"adapter": {"type": "p_tuning", "num_virtual_tokens": 4}},
    "full": {"adapter": {"type": "full"}},
}


def _spec(tmp_path, model, name, overrides):
    write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    write_jsonl(tmp_path / "pref.jsonl", preference_rows())
    write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    write_jsonl(tmp_path / "text.jsonl", [{"text": f"the quick brown fox {i} jumps"} for i in range(12)])
    data = {"train": [{"path": str(tmp_path / "sft.jsonl"), "format": "alpaca"}], "max_length": 64}
    override_data = overrides.get("data", {})
    if override_data:
        data.update(override_data)
        data["train"] = [{**d, "path": str(tmp_path / d["path"])} for d in override_data["train"]]
    return {"name": name, "model": {"path": str(model)}, "template": "chatml", "data": data,
            "training": {"max_steps": 3, "per_device_batch_size": 2, "logging_steps": 1},
            "evaluation": {"enabled": False}, **{k: v for k, v in overrides.items() if k != "data"}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_method_or_adapter_trains(case, tmp_path, tiny_model):
    result = run(_spec(tmp_path, tiny_model, case, CASES[case]), backend="trl", runs_dir=tmp_path / "runs")
    assert result.status == "succeeded" and result.run_dir == tmp_path / "runs" / case / "trl"
    losses = [json.loads(line).get("loss") for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len([x for x in losses if x is not None]) == 3
    if case == "full":
        assert (result.run_dir / "model" / "model.safetensors").exists() and result.adapter_dir is None
    else:
        assert (result.adapter_dir / "adapter_config.json").exists()


def test_freeze_trains_only_the_last_layers(tmp_path, tiny_model):
    from safetensors.torch import load_file

    spec = _spec(tmp_path, tiny_model, "freeze", {"adapter": {"type": "freeze", "trainable_layers": 1}})
    spec["training"]["learning_rate"] = 1.0e-2
    result = run(spec, backend="trl", runs_dir=tmp_path / "runs")
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(result.run_dir / "model" / "model.safetensors")
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed), sorted(changed)


def test_loraplus_and_pissa_give_a_plain_lora_adapter_for_the_original_base(tmp_path, tiny_model):
    """PiSSA rewrites the base while training; the saved adapter must be converted (rank 2r) to fit the
    original base, which is what the shared evaluation loads. Unconverted, the tuned loss would be far
    above the base's."""
    spec = _spec(tmp_path, tiny_model, "pissa", {"adapter": {"r": 4, "alpha": 8, "init": "pissa", "pissa_iters": 2,
                                                             "loraplus_lr_ratio": 4}})
    spec["training"].update(max_steps=8, learning_rate=1.0e-2)
    spec["data"]["eval_split"] = 0.25
    spec["evaluation"] = {"enabled": True, "max_samples": 4, "max_new_tokens": 4, "forgetting": None}
    result = run(spec, backend="trl", runs_dir=tmp_path / "runs")
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True
    report = json.loads((result.run_dir / "eval.json").read_text())
    assert report["tuned"]["loss"] < report["base"]["loss"], report
