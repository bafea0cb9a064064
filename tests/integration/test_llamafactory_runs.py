"""Real LLaMA-Factory runs through `uft run --backend llamafactory`, in its own uv environment, judged by the
shared evaluation; and the same spec on trl for comparison. Nothing mocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures import kto_rows, preference_rows, sft_rows, write_jsonl

from unified_ft.cli import main

pytestmark = pytest.mark.integration


def _spec(tmp_path: Path, model: Path, name: str, **overrides) -> Path:
    write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    write_jsonl(tmp_path / "pref.jsonl", preference_rows())
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": "sft.jsonl", "format": "alpaca"}], "eval_split": 0.2, "max_length": 64},
            "training": {"max_steps": 6, "learning_rate": 5.0e-3, "per_device_batch_size": 2},
            "evaluation": {"max_new_tokens": 4}}
    spec.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _adapter_shapes(adapter: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as handle:
        return {key.split("base_model.model.")[-1]: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)


def test_lora_sft_on_llamafactory_matches_trl(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model, "same")
    runs = tmp_path / "runs"
    assert main(["run", str(spec), "--backend", "llamafactory", "--runs-dir", str(runs)]) == 0
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    lf, trl = runs / "same" / "llamafactory", runs / "same" / "trl"
    manifest = json.loads((lf / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["versions"]["llamafactory"] == "0.9.5"
    assert manifest["versions"]["transformers"].startswith("5.6")
    config = yaml.safe_load((lf / "native" / "train.yaml").read_text())
    assert config["lora_alpha"] == 8 and config["disable_gradient_checkpointing"] is True

    # same target modules, rank and trainable-parameter count
    shapes = _adapter_shapes(lf / "adapter")
    assert shapes == _adapter_shapes(trl / "adapter") and len(shapes) > 0
    # same data, template and masking: the first loss (before any update) agrees
    lf_losses, trl_losses = _losses(lf), _losses(trl)
    assert len(lf_losses) == len(trl_losses) == 6
    assert lf_losses[0] == pytest.approx(trl_losses[0], rel=1e-3)

    # judged by the same shared evaluation
    report = json.loads((lf / "eval.json").read_text())
    assert report["backend"] == "llamafactory" and report["tuned"]["loss"] > 0
    assert report["base"]["loss"] == pytest.approx(json.loads((trl / "eval.json").read_text())["base"]["loss"])


def test_dpo_on_llamafactory(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model, "dpo", method={"name": "dpo", "beta": 0.1},
                 data={"train": [{"path": "pref.jsonl", "format": "preference"}], "eval_split": 0.25,
                       "max_length": 64},
                 training={"max_steps": 3, "learning_rate": 1.0e-3, "per_device_batch_size": 2})
    assert main(["run", str(spec), "--backend", "llamafactory", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "dpo" / "llamafactory"
    assert len(_losses(run_dir)) == 3
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    assert json.loads((run_dir / "eval.json").read_text())["tuned"]["loss"] > 0


def test_translate_check_runs_llamafactorys_own_parser(tmp_path, tiny_model, capsys):
    good = _spec(tmp_path, tiny_model, "good")
    assert main(["translate", str(good), "--backend", "llamafactory", "-o", str(tmp_path / "ok"), "--check"]) == 0
    assert "llamafactory accepts the translated config" in capsys.readouterr().out
    bad = _spec(tmp_path, tiny_model, "bad", backend_options={"llamafactory": {"lora_rankk": 3}})
    assert main(["translate", str(bad), "--backend", "llamafactory", "-o", str(tmp_path / "bad"), "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "llamafactory rejects the translated config" in err and "lora_rankk" in err


def test_ejected_folder_runs_with_llamafactory_cli_alone(tmp_path, tiny_model):
    import os
    import subprocess

    from unified_ft import envs
    from unified_ft.backends.llamafactory import RECIPE

    spec = _spec(tmp_path, tiny_model, "eject", training={"max_steps": 2, "per_device_batch_size": 2})
    out = tmp_path / "native"
    assert main(["translate", str(spec), "--backend", "llamafactory", "-o", str(out)]) == 0
    cli = envs.create_env(RECIPE) / "bin" / "llamafactory-cli"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run([str(cli), "train", "train.yaml"], cwd=out, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "output" / "adapter_config.json").exists()


@pytest.mark.parametrize("case", ["pt", "orpo", "simpo", "kto", "kto-unpaired", "rm", "full", "freeze"])
def test_other_methods_and_adapters_on_llamafactory(case, tmp_path, tiny_model):
    write_jsonl(tmp_path / "text.jsonl", [{"text": f"the quick brown fox {i} jumps"} for i in range(8)])
    write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    overrides = {
        "pt": {"method": "pt", "template": "model", "data": {"train": [{"path": "text.jsonl", "format": "text"}]}},
        "orpo": {"method": "orpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
        "simpo": {"method": "simpo", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
        "kto-unpaired": {"method": "kto", "data": {"train": [{"path": "kto.jsonl", "format": "unpaired"}]}},
        "kto": {"method": "kto", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
        "rm": {"method": "rm", "data": {"train": [{"path": "pref.jsonl", "format": "preference"}]}},
        "full": {"adapter": {"type": "full"}},
        "freeze": {"adapter": {"type": "freeze", "trainable_layers": 1}},
    }[case]
    spec = _spec(tmp_path, tiny_model, case, evaluation={"enabled": False},
                 training={"max_steps": 2, "per_device_batch_size": 2}, **overrides)
    assert main(["run", str(spec), "--backend", "llamafactory", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / case / "llamafactory"
    assert len(_losses(run_dir)) == 2
    trained = run_dir / ("model" if case in ("full", "freeze") else "adapter")
    assert (trained / ("config.json" if case in ("full", "freeze") else "adapter_config.json")).exists()


def test_loraplus_and_pissa_on_llamafactory_give_a_converted_adapter(tmp_path, tiny_model):
    """LLaMA-Factory's pissa_convert output is what reaches adapter/: rank 2r, fitting the original base."""
    spec = _spec(tmp_path, tiny_model, "pissa", adapter={"type": "lora", "r": 4, "alpha": 8, "init": "pissa",
                                                           "pissa_iters": 2, "loraplus_lr_ratio": 4},
                 training={"max_steps": 8, "learning_rate": 1.0e-2, "per_device_batch_size": 2},
                 evaluation={"max_new_tokens": 4, "max_samples": 4})
    assert main(["run", str(spec), "--backend", "llamafactory", "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "pissa" / "llamafactory"
    config = yaml.safe_load((run_dir / "native" / "train.yaml").read_text())
    assert config["pissa_init"] is True and config["pissa_convert"] is True and config["loraplus_lr_ratio"] == 4
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 8
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["tuned"]["loss"] < report["base"]["loss"], report


@pytest.mark.parametrize("template", ["qwen", "qwen2_5"])
def test_qwen_templates_render_the_same_tokens_as_trl(template, tmp_path, tiny_model):
    """LLaMA-Factory's `qwen` carries Qwen2.5's system prompt: uft's qwen overrides it (default_system), uft's
    qwen2_5 keeps it. Same tokens on both backends shows as the same loss before any update."""
    spec = _spec(tmp_path, tiny_model, template, template=template, evaluation={"enabled": False},
                 data={"train": [{"path": "sft.jsonl", "format": "alpaca"}], "max_length": 256},
                 training={"max_steps": 1, "learning_rate": 5.0e-3, "per_device_batch_size": 2})
    runs = tmp_path / "runs"
    assert main(["run", str(spec), "--backend", "llamafactory", "--runs-dir", str(runs)]) == 0
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    lf, trl = _losses(runs / template / "llamafactory"), _losses(runs / template / "trl")
    assert lf[0] == pytest.approx(trl[0], rel=1e-3)
    # LLaMA-Factory prints its first training example: the system prompt must be uft's
    printed = (runs / template / "llamafactory" / "logs" / "stdout.log").read_text()
    rendered = printed.split("inputs:\n", 1)[1].split("<|im_end|>", 1)[0]
    system = {"qwen": "You are a helpful assistant.",
              "qwen2_5": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}[template]
    assert rendered == f"<|im_start|>system\n{system}"
