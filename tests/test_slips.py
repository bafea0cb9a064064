"""Nothing slips through silently (issue 11, section 3): a key for another adapter type or method, options for
a backend that does not exist, a passthrough that overrides uft's own value, and GPU-only settings on a
machine without a GPU are each said out loud, in one clear message or a plan note."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from unified_ft.cli import main
from unified_ft.errors import SpecError
from unified_ft.plan import make_plan
from unified_ft.plugin import merge_passthrough
from unified_ft.spec import ADAPTER_MODELS, METHOD_MODELS, JobSpec, LoraAdapter, PlainMethod
from unified_ft.specfile import dump_spec, parse_spec, validate_spec_dict

ALPACA = {"path": "train.jsonl", "format": "alpaca"}
#: The first 7 lines of a spec file; what a test appends starts on line 8.
HEAD = "name: unit\nmodel:\n  path: org/model\ndata:\n  train:\n    - path: t.jsonl\n      format: alpaca\n"
PREFERENCE = {"path": "pref.jsonl", "format": "preference"}


def minimal(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "unit", "model": {"path": "org/model"}, "data": {"train": [dict(ALPACA)]}}
    spec.update(copy.deepcopy(overrides))
    return spec


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate_spec_dict(data)
    return [str(p) for p in info.value.problems]


def outputs(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def flat(text: str) -> str:
    return " ".join(text.split())


# --- 1. a key of another adapter type or method ---------------------------------------------------


@pytest.mark.parametrize(("adapter", "message"), [
    ({"type": "lora", "trainable_layers": 2}, "adapter.trainable_layers applies to type freeze, not lora; remove it"),
    ({"type": "lora", "num_virtual_tokens": 8},
     "adapter.num_virtual_tokens applies to type prefix, prompt and p_tuning, not lora; remove it"),
    ({"r": 4, "bits": 4}, "adapter.bits applies to type qlora, not lora; remove it"),  # no type: lora
    ({"type": "dora", "bits": 8}, "adapter.bits applies to type qlora, not dora; remove it"),
    ({"type": "full", "r": 16}, "adapter.r applies to type lora, qlora and dora, not full; remove it"),
    ({"type": "freeze", "use_dora": True}, "adapter.use_dora applies to type lora, qlora and dora, not freeze"),
    ({"type": "prompt", "trainable_layers": 1}, "adapter.trainable_layers applies to type freeze, not prompt"),
    ({"type": "qlora", "bits": 4, "num_virtual_tokens": 4},
     "adapter.num_virtual_tokens applies to type prefix, prompt and p_tuning, not qlora"),
], ids=["lora-trainable-layers", "lora-virtual-tokens", "untyped-bits", "dora-bits", "full-r", "freeze-use-dora",
        "prompt-trainable-layers", "qlora-virtual-tokens"])
def test_a_key_of_another_adapter_type_names_the_type_that_uses_it(adapter, message):
    (problem,) = problems_of(minimal(adapter=adapter))
    assert message in problem
    wrong = message.split()[0]
    assert f"({wrong})" in problem  # located at the key itself, not at the whole adapter section


@pytest.mark.parametrize(("method", "data", "message"), [
    ({"name": "sft", "beta": 0.1}, ALPACA, "method.beta applies to dpo, orpo, simpo, cpo and kto, not sft"),
    ({"beta": 0.1}, ALPACA, "method.beta applies to dpo, orpo, simpo, cpo and kto, not sft"),  # no name: sft
    ({"name": "dpo", "gamma": 1.0}, PREFERENCE, "method.gamma applies to simpo, not dpo"),
    ({"name": "orpo", "loss_type": "ipo"}, PREFERENCE, "method.loss_type applies to dpo and kto, not orpo"),
    ({"name": "dpo", "nll_weight": 1.0}, PREFERENCE, "method.nll_weight applies to simpo and cpo, not dpo"),
    ({"name": "grpo", "reward_model": "org/rm"}, ALPACA, "method.reward_model applies to ppo, not grpo"),
    ({"name": "pt", "num_generations": 4}, ALPACA, "method.num_generations applies to grpo, not pt"),
], ids=["sft-beta", "unnamed-beta", "dpo-gamma", "orpo-loss-type", "dpo-nll-weight", "grpo-reward-model",
        "pt-num-generations"])
def test_a_key_of_another_method_names_the_methods_that_use_it(method, data, message):
    (problem,) = problems_of(minimal(method=method, data={"train": [data]}))
    assert message in problem and problem.endswith("remove it")


def test_a_wrong_key_in_a_file_is_one_line_at_its_own_line(tmp_path, capsys):
    spec = tmp_path / "job.yaml"
    spec.write_text(HEAD + "adapter:\n  type: lora\n  r: 16\n  trainable_layers: 3\n", encoding="utf-8")  # line 11
    assert main(["validate", str(spec)]) == 2
    _, err = outputs(capsys)
    assert "job.yaml:11 (adapter.trainable_layers): adapter.trainable_layers applies to type freeze, not lora; " \
           "remove it" in flat(err)
    assert "1 problem(s)" in err and "Traceback" not in err
    assert "Extra inputs" not in err and "union" not in err.lower()  # pydantic's own words stay out


def test_the_message_is_the_models_own_so_library_users_get_it_too():
    with pytest.raises(ValidationError, match="adapter.trainable_layers applies to type freeze, not lora"):
        JobSpec.model_validate(minimal(adapter={"type": "lora", "trainable_layers": 2}))


def test_an_unknown_type_or_method_is_one_problem_with_a_did_you_mean():
    (problem,) = problems_of(minimal(adapter={"type": "lorra"}))
    assert "(adapter.type)" in problem and "unknown adapter type 'lorra'" in problem
    assert "did you mean 'lora'?" in problem and "qlora" in problem and "Input tag" not in problem
    (problem,) = problems_of(minimal(method="dpoo"))
    assert "(method.name)" in problem and "did you mean 'dpo'?" in problem


def test_a_misspelt_needed_key_is_named_with_its_fix():
    found = " ".join(problems_of(minimal(adapter={"type": "qlora", "btis": 4})))
    assert "adapter.btis" in found and "did you mean 'bits'?" in found and "adapter.bits" in found
    (problem,) = problems_of(minimal(adapter={"type": "qlora"}))
    assert "(adapter.bits)" in problem and "adapter.type qlora needs adapter.bits (4 or 8)" in problem


def test_defaults_an_adapter_is_lora_and_a_method_is_sft():
    spec = validate_spec_dict(minimal(adapter={"r": 4}, method={}))
    assert isinstance(spec.adapter, LoraAdapter) and spec.adapter.r == 4
    assert isinstance(spec.method, PlainMethod) and spec.method.name == "sft"
    bare = validate_spec_dict(minimal())
    assert (bare.adapter.type, bare.method.name) == ("lora", "sft")


MEMBER_SPECS = [
    minimal(adapter={"type": "lora", "r": 4, "init": "pissa"}),
    minimal(adapter={"type": "qlora", "bits": 4, "use_dora": True}),
    minimal(adapter={"type": "dora", "alpha": 8}),
    minimal(adapter={"type": "full"}),
    minimal(adapter={"type": "freeze", "trainable_layers": 3}),
    minimal(adapter={"type": "p_tuning", "num_virtual_tokens": 5}),
    minimal(method={"name": "dpo", "beta": 0.2, "loss_type": "ipo"}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "orpo", "beta": 0.3}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "simpo", "gamma": 1.0, "nll_weight": 0.1}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "cpo", "nll_weight": 0.5}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "kto", "loss_type": "apo_zero_unpaired"}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "rm"}, data={"train": [PREFERENCE]}),
    minimal(method={"name": "ppo", "reward_model": "org/rm"}),
    minimal(method={"name": "grpo", "num_generations": 4}),
    minimal(method="pt", data={"train": [{"path": "t.jsonl", "format": "text"}]}, evaluation={"enabled": False}),
]


@pytest.mark.parametrize("data", MEMBER_SPECS, ids=lambda d: str(d.get("adapter", d.get("method"))))
def test_every_type_and_method_takes_its_own_keys_and_its_resolved_spec_validates_back(data):
    spec = validate_spec_dict(data)
    resolved = yaml.safe_load(dump_spec(spec))
    assert validate_spec_dict(resolved) == spec  # spec.yaml of a run holds no key of another type or method
    section = "adapter" if "adapter" in data else "method"
    given = data[section] if isinstance(data[section], dict) else {"name": data[section]}
    assert {k: resolved[section][k] for k in given} == given


def test_every_member_has_its_own_tag_and_every_field_a_description():
    tags = [tag for member in (*ADAPTER_MODELS, *METHOD_MODELS)
            for key in ("type", "name") if key in member.model_fields
            for tag in member.model_fields[key].annotation.__args__]
    assert len(tags) == len(set(tags)) == 8 + 10
    undocumented = [f"{m.__name__}.{k}" for m in (*ADAPTER_MODELS, *METHOD_MODELS)
                    for k, f in m.model_fields.items() if not f.description]
    assert not undocumented


# --- 2. backend_options for a backend that does not exist -----------------------------------------


def test_a_misspelt_backend_in_backend_options_is_refused_with_a_did_you_mean(tmp_path, capsys):
    spec = tmp_path / "job.yaml"
    spec.write_text(HEAD + "backend_options:\n  trl:\n    neftune_noise_alpha: 5\n  swfit:\n    max_pixels: 5\n",
                    encoding="utf-8")  # swfit on line 11
    assert main(["validate", str(spec)]) == 2
    _, err = outputs(capsys)
    assert "job.yaml:11 (backend_options.swfit)" in err and "names no backend" in err
    assert "did you mean 'swift'?" in err and "1 problem(s)" in err and "Traceback" not in err


def test_an_unknown_backend_is_collected_with_the_other_problems():
    found = problems_of(minimal(backend_options={"nosuch": {}}, training={"learnig_rate": 1}))
    assert len(found) == 2 and any("backend_options.nosuch" in p for p in found)
    assert any("learnig_rate" in p for p in found)


def test_planned_backends_may_carry_options():
    assert validate_spec_dict(minimal(backend_options={"unsloth": {"x": 1}, "colossalai": {}})).backend_options


def test_a_spec_built_in_python_is_checked_by_the_plan():
    spec = JobSpec.model_validate(minimal(backend_options={"swfit": {"max_pixels": 5}}))
    with pytest.raises(SpecError) as info:
        make_plan(spec, "trl")
    assert "backend_options.swfit" in str(info.value) and "did you mean 'swift'?" in str(info.value)


def test_options_for_other_backends_are_noted_in_the_plan(tiny_model, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_model, backend_options={"swift": {"max_pixels": 5}, "unsloth": {"x": 1},
                                                             "trl": {"neftune_noise_alpha": 5}})
    assert main(["plan", str(spec), "--backend", "trl"]) == 0
    out = flat(outputs(capsys)[0])
    assert "note: backend_options.swift is not used by backend trl" in out
    assert "note: backend_options.unsloth is not used by backend trl" in out
    assert "backend_options.trl is not used" not in out


# --- 3. passthrough keys that override uft's own values -------------------------------------------


def test_merge_passthrough_refuses_a_clash_unless_the_key_is_declared_overridable():
    spec = validate_spec_dict(minimal(backend_options={"trl": {"learning_rate": 1e-3}}))
    with pytest.raises(SpecError, match="backend_options.trl.learning_rate"):
        merge_passthrough(spec, "trl", {"learning_rate": 2e-4})
    native = {"learning_rate": 2e-4}
    assert merge_passthrough(spec, "trl", native, {"learning_rate": "a test says so"}) == ["learning_rate"]
    assert native == {"learning_rate": 1e-3}


def test_a_swift_adam_override_is_noted_in_the_plan(tiny_model, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_model, backend_options={"swift": {"adam_beta2": 0.95}})
    assert main(["plan", str(spec), "--backend", "swift"]) == 0
    out = flat(outputs(capsys)[0])
    assert ("note: backend_options.swift.adam_beta2 overrides uft's value 0.999 (swift's own default is 0.95)"
            in out)
    assert "adam_beta1 overrides" not in out  # only what the spec overrides
    assert "--adam_beta2 0.95" in out  # and swift is given the user's value


def test_a_swift_key_that_is_not_declared_overridable_still_clashes(tiny_model, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_model, backend_options={"swift": {"learning_rate": 0.1}})
    assert main(["translate", str(spec), "--backend", "swift", "-o", str(tmp_path / "out")]) == 2
    _, err = outputs(capsys)
    assert "backend_options.swift.learning_rate" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --- 4. GPU-only settings: translate and plan anywhere, run only with a GPU -----------------------


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine, as far as uft can tell, has no CUDA GPU (also on a machine that has one)."""
    monkeypatch.setattr("unified_ft.plan.detect_gpu", lambda: False)


GPU_ONLY = [({"adapter": {"type": "qlora", "bits": 4}}, "adapter.qlora", "adapter.type: qlora"),
            ({"training": {"max_steps": 2, "precision": "fp16"}}, "precision.fp16", "training.precision: fp16"),
            ({"training": {"max_steps": 2, "optimizer": "paged_adamw_8bit"}}, "optimizer.paged_adamw_8bit",
             "training.optimizer: paged_adamw_8bit")]


@pytest.mark.parametrize(("extra", "feature", "setting"), GPU_ONLY, ids=["qlora", "fp16", "8bit-optimizer"])
def test_translate_writes_a_gpu_job_without_a_gpu_and_says_it_needs_one(extra, feature, setting, tiny_model,
                                                                       tmp_path, capsys, no_gpu):
    spec, out = write_spec(tmp_path, tiny_model, **extra), tmp_path / "out"
    assert main(["translate", str(spec), "--backend", "trl", "-o", str(out)]) == 0
    printed = flat(outputs(capsys)[0])
    assert (out / "config.yaml").is_file() and (out / "train.jsonl").is_file()
    assert f"note: this job needs a CUDA GPU to run ({setting})" in printed and "`uft run` refuses it" in printed


@pytest.mark.parametrize(("extra", "feature", "setting"), GPU_ONLY[:2], ids=["qlora", "fp16"])
def test_plan_shows_a_gpu_job_and_run_refuses_it_with_the_gpu_message(extra, feature, setting, tiny_model,
                                                                     tmp_path, capsys, no_gpu):
    spec, runs = write_spec(tmp_path, tiny_model, **extra), tmp_path / "runs"
    assert main(["plan", str(spec), "--backend", "llamafactory"]) == 0
    assert "this job needs a CUDA GPU to run" in flat(outputs(capsys)[0])
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert f"{setting}: {feature} needs a CUDA GPU and this machine has none" in flat(err)
    assert "Traceback" not in err and (not runs.exists() or not any(runs.iterdir()))


def test_the_translated_qlora_config_is_the_gpu_job(tiny_model, tmp_path, capsys, no_gpu):
    spec, out = write_spec(tmp_path, tiny_model, adapter={"type": "qlora", "bits": 4}), tmp_path / "out"
    assert main(["translate", str(spec), "--backend", "llamafactory", "-o", str(out)]) == 0
    config = yaml.safe_load((out / "train.yaml").read_text(encoding="utf-8"))
    assert config["quantization_bit"] == 4 and config["finetuning_type"] == "lora"


def test_plan_notes_are_printed_verbatim_not_as_markup(tiny_model, tmp_path, capsys, monkeypatch):
    from unified_ft.backends.trl import TrlBackend

    monkeypatch.setattr(TrlBackend, "notes", lambda self, spec: ["see [bold]x[/bold] in [v2]"], raising=False)
    spec = write_spec(tmp_path, tiny_model)
    assert main(["plan", str(spec), "--backend", "trl"]) == 0
    assert "note: see [bold]x[/bold] in [v2]" in outputs(capsys)[0]
    assert main(["translate", str(spec), "--backend", "trl", "-o", str(tmp_path / "out")]) == 0
    assert "note: see [bold]x[/bold] in [v2]" in outputs(capsys)[0]


def write_spec(tmp_path: Path, model: Path, **extra: Any) -> Path:
    """A spec file on the tiny local model (a real config.json, so swift can tell the model type)."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"say {i}", "input": "", "output": f"number {i}"}) + "\n"
                            for i in range(4)), encoding="utf-8")
    spec = {"name": "slips", "model": {"path": str(model)}, "template": "chatml",
            "data": {"train": [{"path": str(data), "format": "alpaca"}]}, "training": {"max_steps": 2}, **extra}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    parse_spec(path.read_text(encoding="utf-8"))  # the test's own spec is valid
    return path
