"""Real ms-swift runs through `uft run --backend swift`, in its own uv environment, judged by the shared
evaluation; the ejected folder run with swift alone; swift's own parser on translated arguments. Nothing
mocked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from fixtures import kto_rows, preference_rows, sft_rows, write_jsonl

from unified_ft import envs
from unified_ft.backends.swift import RECIPE
from unified_ft.cli import main

pytestmark = pytest.mark.integration


def _spec(tmp_path: Path, model: Path, name: str, **overrides) -> Path:
    write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    write_jsonl(tmp_path / "pref.jsonl", preference_rows())
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": "sft.jsonl", "format": "alpaca"}], "eval_split": 0.2, "max_length": 64},
            "training": {"max_steps": 4, "learning_rate": 5.0e-3, "per_device_batch_size": 2},
            "evaluation": {"max_new_tokens": 4, "forgetting": None}}
    spec.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _adapter_shapes(adapter: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as handle:
        return {key.split("base_model.model.")[-1]: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)


def test_lora_sft_on_swift_is_judged_and_matches_trls_adapter_shape(tmp_path, tiny_model, capsys):
    spec = _spec(tmp_path, tiny_model, "same")
    runs = tmp_path / "runs"
    assert main(["run", str(spec), "--backend", "swift", "--runs-dir", str(runs)]) == 0
    assert "trust_remote_code" in capsys.readouterr().out  # what swift does that the spec cannot stop
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    sw, trl = runs / "same" / "swift", runs / "same" / "trl"
    manifest = json.loads((sw / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["versions"]["ms-swift"] == "4.6.0"
    versions = manifest["versions"]
    assert versions["torch_source"].startswith(f"the lock's torch {versions['torch']}")
    assert versions["torch_build"].startswith(envs.choose_lock(RECIPE).build)  # this host's build, read in the env
    assert any("trust_remote_code" in note for note in manifest["notes"])
    losses = [json.loads(line)["loss"] for line in (sw / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4
    assert _adapter_shapes(sw / "adapter") == _adapter_shapes(trl / "adapter")
    report = json.loads((sw / "eval.json").read_text())
    assert report["tuned"]["loss"] < report["base"]["loss"]

    # the args.json swift wrote imports back to the same effective settings
    from unified_ft.backends.swift.importer import import_swift
    from unified_ft.specfile import load_spec, validate_spec_dict

    imported = import_swift(sw / "native" / "output" / "args.json")
    back, ran = validate_spec_dict(imported.spec), load_spec(sw / "spec.yaml")
    for section in ("model", "template", "method", "adapter", "training"):
        assert getattr(back, section) == getattr(ran, section), section
    assert imported.kept == {"model_type": "qwen2"} and back.data.train[0].format == "messages"


def test_dpo_on_swift_and_the_rows_swift_drops_are_counted(tmp_path, tiny_model, capsys):
    spec = _spec(tmp_path, tiny_model, "dpo", method="dpo",
                 data={"train": [{"path": "pref.jsonl", "format": "preference"}], "eval": {"path": "pref.jsonl",
                       "format": "preference"}, "max_length": 64})
    # swift's preprocessor silently drops a pair whose rejected answer equals the chosen one
    write_jsonl(tmp_path / "pref.jsonl", [*preference_rows(), {"prompt": "same", "chosen": "x", "rejected": "x"}])
    assert main(["run", str(spec), "--backend", "swift", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "dpo" / "swift"
    assert json.loads((run_dir / "manifest.json").read_text())["final_metrics"]["dropped_rows"] == 1
    assert "swift dropped 1 train rows" in capsys.readouterr().out
    assert (run_dir / "adapter" / "adapter_config.json").exists() and (run_dir / "eval.json").exists()
    assert yaml.safe_load((run_dir / "native" / "config.yaml").read_text())["rlhf_type"] == "dpo"


def test_ejected_script_runs_with_swift_alone_and_swifts_parser_checks_translations(tmp_path, tiny_model, capsys):
    spec = _spec(tmp_path, tiny_model, "eject")
    out = tmp_path / "native"
    assert main(["translate", str(spec), "--backend", "swift", "-o", str(out), "--check"]) == 0
    env_bin = envs.create_env(RECIPE) / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{env_bin}:{env['PATH']}"
    done = subprocess.run(["bash", "train.sh"], cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((out / "output").glob("checkpoint-*/adapter_config.json"))

    bad = _spec(tmp_path, tiny_model, "bad", backend_options={"swift": {"lora_rankk": 4}})
    assert main(["translate", str(bad), "--backend", "swift", "-o", str(tmp_path / "bad"), "--check"]) != 0
    assert "lora_rankk" in capsys.readouterr().err


PREFERENCE = {"train": [{"path": "pref.jsonl", "format": "preference"}], "max_length": 64}
CASES = {
    "pt": {"method": "pt", "template": "model", "data": {"train": [{"path": "text.jsonl", "format": "text"}],
                                                          "max_length": 64}},
    **{m: {"method": m, "data": PREFERENCE} for m in ("orpo", "simpo", "cpo", "kto", "rm")},
    "kto-unpaired": {"method": "kto", "data": {"train": [{"path": "kto.jsonl", "format": "unpaired"}],
                                               "max_length": 64}},
    "full": {"adapter": {"type": "full"}},
    "freeze": {"adapter": {"type": "freeze", "trainable_layers": 1}},
    "dora-rslora-loraplus-pissa": {"adapter": {"type": "dora", "r": 4, "alpha": 8, "rslora": True,
                                               "loraplus_lr_ratio": 4, "init": "pissa", "pissa_iters": 2}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_other_methods_and_adapters_on_swift(case, tmp_path, tiny_model):
    write_jsonl(tmp_path / "text.jsonl", [{"text": f"the quick brown fox {i} jumps"} for i in range(8)])
    write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    spec = _spec(tmp_path, tiny_model, case, evaluation={"enabled": False},
                 training={"max_steps": 2, "per_device_batch_size": 2}, **CASES[case])
    assert main(["run", str(spec), "--backend", "swift", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / case / "swift"
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2
    if case in ("full", "freeze"):
        from safetensors.torch import load_file

        before, after = load_file(tiny_model / "model.safetensors"), load_file(run_dir / "model" / "model.safetensors")
        changed = {k for k in before if not before[k].equal(after[k])}
        assert changed and (case == "full" or all(k.startswith("model.layers.1.") for k in changed)), changed
    else:
        config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
        assert config["r"] == (8 if case.endswith("pissa") else 4)  # PiSSA: converted to plain LoRA, rank 2r


def test_a_crashed_swift_process_is_recorded_as_failed_with_its_log_tail(tmp_path, tiny_model, capsys):
    spec = _spec(tmp_path, tiny_model, "crash", backend_options={"swift": {"lora_rankk": 4}})
    assert main(["run", str(spec), "--backend", "swift", "--runs-dir", str(tmp_path / "runs")]) not in (0, 2)
    manifest = json.loads((tmp_path / "runs" / "crash" / "swift" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "lora_rankk" in manifest["error_tail"]
    err = capsys.readouterr().err
    assert "lora_rankk" in err and "Traceback (most recent call last)" not in err.split("---")[0]
