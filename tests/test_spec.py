"""JobSpec validation: defaults are filled explicitly and every cross-field rule explains itself."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from unified_ft.errors import SpecError
from unified_ft.spec import JobSpec
from unified_ft.specfile import validate_spec_dict

ALPACA = {"path": "train.jsonl", "format": "alpaca"}
PREFERENCE = {"path": "pref.jsonl", "format": "preference"}
TEXT = {"path": "text.jsonl", "format": "text"}


def minimal(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "unit", "model": {"path": "org/model"}, "data": {"train": [dict(ALPACA)]}}
    spec.update(copy.deepcopy(overrides))
    return spec


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        validate_spec_dict(data)
    return str(info.value)


# --- defaults -------------------------------------------------------------------------------------


def test_minimal_spec_gets_every_default():
    spec = validate_spec_dict(minimal())
    assert spec.schema_version == 1
    assert spec.name == "unit"
    assert spec.model.path == "org/model"
    assert spec.model.trust_remote_code is False and spec.model.revision is None
    assert spec.template.name == "model" and spec.template.jinja is None
    assert spec.method.name == "sft" and not hasattr(spec.method, "beta")  # sft has no settings of its own
    a = spec.adapter
    assert (a.type, a.r, a.alpha, a.dropout) == ("lora", 8, 16, 0.0)
    assert a.target_modules == "all-linear" and a.rslora is False and a.use_dora is False
    assert not hasattr(a, "bits") and not hasattr(a, "trainable_layers")  # keys of qlora and freeze
    t = spec.training
    assert t.epochs == 1.0 and t.max_steps is None
    assert t.learning_rate == 2e-4 and t.lr_scheduler == "cosine" and t.precision == "auto"
    assert t.per_device_batch_size == 1 and t.gradient_accumulation_steps == 1 and t.seed == 42
    assert t.report_to == ["none"]
    d = spec.data
    assert d.max_length == 1024 and d.packing is False and d.eval is None and d.eval_split is None
    assert d.train[0].weight == 1.0 and d.train[0].columns == {}
    assert spec.evaluation.enabled is True and spec.export.formats == []
    assert spec.runs_dir == "runs" and spec.backend_options == {}
    assert spec.record_kind == "chat"


def test_max_steps_alone_leaves_epochs_unset():
    t = validate_spec_dict(minimal(training={"max_steps": 5})).training
    assert t.max_steps == 5 and t.epochs is None


def test_method_string_shorthand_and_dpo_default_beta():
    spec = validate_spec_dict(minimal(method="dpo", data={"train": [PREFERENCE]}))
    assert spec.method.name == "dpo"
    assert spec.method.beta == 0.1
    assert spec.record_kind == "preference"


def test_explicit_beta_is_kept():
    spec = validate_spec_dict(minimal(method={"name": "orpo", "beta": 0.5}, data={"train": [PREFERENCE]}))
    assert spec.method.beta == 0.5


def test_template_string_shorthand():
    assert validate_spec_dict(minimal(template="chatml")).template.name == "chatml"


def test_grpo_gets_default_num_generations():
    assert validate_spec_dict(minimal(method="grpo")).method.num_generations == 8


def test_dora_type_implies_use_dora():
    assert validate_spec_dict(minimal(adapter={"type": "dora"})).adapter.use_dora is True


def test_pissa_gets_default_iterations():
    assert validate_spec_dict(minimal(adapter={"init": "pissa"})).adapter.pissa_iters == 16
    assert validate_spec_dict(minimal()).adapter.pissa_iters is None


def test_qlora_with_bits_is_valid():
    a = validate_spec_dict(minimal(adapter={"type": "qlora", "bits": 4})).adapter
    assert a.type == "qlora" and a.bits == 4


def test_pt_with_text_data_is_valid():
    spec = validate_spec_dict(minimal(method="pt", data={"train": [TEXT], "packing": True}))
    assert spec.record_kind == "text" and spec.data.packing is True


def test_jinja_template_with_text_is_valid():
    spec = validate_spec_dict(minimal(template={"name": "jinja", "jinja": "{{ messages }}"}))
    assert spec.template.jinja == "{{ messages }}"


def test_jobspec_model_validate_directly():
    assert JobSpec.model_validate(minimal()).adapter.r == 8


# --- cross-field rules ----------------------------------------------------------------------------

RULES = [
    pytest.param(minimal(adapter={"type": "qlora"}), ["adapter.bits", "qlora"], id="qlora-without-bits"),
    pytest.param(minimal(adapter={"type": "lora", "bits": 4}), ["adapter.bits", "qlora"], id="bits-without-qlora"),
    pytest.param(minimal(adapter={"type": "dora", "use_dora": False}), ["use_dora", "dora"], id="dora-use-dora-false"),
    pytest.param(minimal(adapter={"type": "full", "use_dora": True}), ["adapter.use_dora", "full"],
                 id="use-dora-on-full"),
    pytest.param(minimal(adapter={"type": "full", "r": 16}), ["adapter.r", "lora, qlora and dora", "full"],
                 id="lora-keys-on-full"),
    pytest.param(minimal(adapter={"type": "prefix", "alpha": 32, "dropout": 0.1}),
                 ["alpha", "dropout", "prefix"], id="lora-keys-on-prefix"),
    pytest.param(minimal(adapter={"target_modules": []}), ["adapter.target_modules"], id="empty-target-modules"),
    pytest.param(minimal(training={"epochs": 1, "max_steps": 10}), ["training.epochs", "training.max_steps"],
                 id="epochs-and-max-steps"),
    pytest.param(minimal(data={"train": [ALPACA], "eval": ALPACA, "eval_split": 0.1}),
                 ["data.eval", "data.eval_split"], id="eval-and-eval-split"),
    pytest.param(minimal(method="dpo"), ["dpo", "preference", "alpaca"], id="dpo-with-alpaca"),
    pytest.param(minimal(method="dpo", data={"train": [PREFERENCE], "eval": ALPACA}), ["preference", "alpaca"],
                 id="dpo-with-alpaca-eval"),
    pytest.param(minimal(data={"train": [PREFERENCE]}), ["method sft", "preference"], id="preference-with-sft"),
    pytest.param(minimal(method="pt"), ["method pt", "format: text", "alpaca"], id="pt-without-text"),
    pytest.param(minimal(data={"train": [TEXT]}), ["format text", "sft"], id="text-with-sft"),
    pytest.param(minimal(method="dpo", data={"train": [PREFERENCE], "packing": True}), ["data.packing", "dpo"],
                 id="packing-with-dpo"),
    pytest.param(minimal(template="chatlm"), ["chatlm", "did you mean 'chatml'"], id="template-did-you-mean"),
    pytest.param(minimal(template={"name": "jinja"}), ["template.jinja", "empty"], id="jinja-without-text"),
    pytest.param(minimal(template={"name": "chatml", "jinja": "x"}), ["template.jinja", "name: jinja"],
                 id="jinja-text-without-jinja-name"),
    pytest.param(minimal(method={"name": "sft", "beta": 0.2}), ["method.beta", "sft"], id="beta-on-sft"),
    pytest.param(minimal(method={"name": "sft", "loss_type": "ipo"}), ["method.loss_type"], id="loss-type-on-sft"),
    pytest.param(minimal(method="ppo"), ["method.reward_model", "ppo"], id="ppo-without-reward-model"),
    pytest.param(minimal(method={"name": "sft", "reward_model": "rm"}), ["method.reward_model", "ppo"],
                 id="reward-model-on-sft"),
    pytest.param(minimal(method={"name": "sft", "num_generations": 4}), ["method.num_generations", "grpo"],
                 id="num-generations-on-sft"),
    pytest.param(minimal(name="../x"), ["'../x'", "'/'"], id="name-path-traversal"),
    pytest.param(minimal(name="a/b"), ["'a/b'", "'/'"], id="name-with-slash"),
    pytest.param(minimal(name=".."), ["'..'"], id="name-dotdot"),
    pytest.param(minimal(name=".hidden"), ["'.hidden'"], id="name-leading-dot"),
    pytest.param(minimal(name=""), ["name"], id="name-empty"),
    pytest.param(minimal(training={"report_to": ["none", "wandb"]}), ["training.report_to", "none"],
                 id="report-to-none-and-wandb"),
    pytest.param(minimal(model={"path": "   "}), ["model.path", "empty"], id="model-path-blank"),
    pytest.param(minimal(adapter={"type": "full", "loraplus_lr_ratio": 16}), ["loraplus_lr_ratio", "full"],
                 id="loraplus-on-full"),
    pytest.param(minimal(adapter={"pissa_iters": 4}), ["adapter.pissa_iters", "init: pissa"], id="iters-without-pissa"),
    pytest.param(minimal(adapter={"type": "qlora", "bits": 4, "init": "pissa"}), ["pissa", "unquantized"],
                 id="pissa-on-qlora"),
    pytest.param(minimal(method={"name": "dpo", "gamma": 1.0}, data={"train": [PREFERENCE]}),
                 ["method.gamma", "simpo"], id="gamma-on-dpo"),
    pytest.param(minimal(method={"name": "orpo", "nll_weight": 1.0}, data={"train": [PREFERENCE]}),
                 ["method.nll_weight", "orpo"], id="nll-weight-on-orpo"),
    pytest.param(minimal(method="simpo"), ["simpo", "preference"], id="simpo-with-alpaca"),
    pytest.param(minimal(method="dpo", adapter={"init": "pissa"}, data={"train": [PREFERENCE]}),
                 ["pissa", "dpo", "reference model"], id="pissa-with-dpo"),
]


@pytest.mark.parametrize(("data", "needles"), RULES)
def test_cross_field_rule_is_explained(data, needles):
    message = error_of(data)
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"


def test_plain_name_with_dots_dashes_underscores_is_accepted():
    assert validate_spec_dict(minimal(name="run_1.v2-a")).name == "run_1.v2-a"


def test_name_with_newline_is_rejected():
    error_of(minimal(name="run\n"))


def test_several_problems_reported_together():
    message = error_of(minimal(adapter={"type": "qlora"}, training={"epochs": 1, "max_steps": 2}))
    assert "2 problem(s)" in message
    assert "adapter.bits" in message and "training.max_steps" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("training", {"learning_rate": 0}), ("adapter", {"r": 0}), ("adapter", {"dropout": 1.0}),
     ("data", {"train": []}), ("data", {"train": [ALPACA], "eval_split": 1.0}), ("method", "nosuch"),
     ("adapter", {"type": "qlora", "bits": 3})],
)
def test_out_of_range_values_rejected(field, value):
    assert field in error_of(minimal(**{field: value}))


@pytest.mark.parametrize("key", ["hub_token", "WANDB_API_KEY", "push_to_hub_token", "password"])
def test_secret_looking_passthrough_keys_are_refused(key):
    message = error_of(minimal(backend_options={"trl": {key: "abc"}}))
    assert f"backend_options.trl.{key}" in message and "environment" in message


def test_ordinary_passthrough_keys_are_kept():
    spec = validate_spec_dict(minimal(backend_options={"trl": {"neftune_noise_alpha": 5}}))
    assert spec.backend_options == {"trl": {"neftune_noise_alpha": 5}}


def test_evaluation_defaults_depend_on_the_method():
    sft = validate_spec_dict(minimal())
    assert sft.evaluation.metrics == ["exact_match", "normalized_exact_match", "rouge_l", "bleu"]
    assert sft.evaluation.main_metric == "rouge_l"
    pt = validate_spec_dict(minimal(method="pt", data={"train": [{"path": "t.jsonl", "format": "text"}]}))
    assert pt.evaluation.metrics == [] and pt.evaluation.main_metric == "loss"


def test_reference_metrics_on_plain_text_are_refused():
    message = error_of(minimal(method="pt", data={"train": [{"path": "t.jsonl", "format": "text"}]},
                               evaluation={"metrics": ["rouge_l"]}))
    assert "no reference answers" in message and "evaluation.metrics" in message


def test_unknown_metric_and_main_metric_names():
    assert "evaluation.metrics" in error_of(minimal(evaluation={"metrics": ["accuracy"]}))
    message = error_of(minimal(evaluation={"main_metric": "rouge"}))
    assert "did you mean 'rouge_l'" in message
    assert "'rouge_l' is not measured" in error_of(minimal(evaluation={"metrics": ["bleu"],
                                                                          "main_metric": "rouge_l"}))


def test_regex_check_needs_a_valid_pattern():
    assert "needs `pattern`" in error_of(minimal(evaluation={"checks": [{"type": "regex"}]}))
    assert "not a valid regex" in error_of(minimal(evaluation={"checks": [{"type": "regex", "pattern": "("}]}))


def test_auto_format_and_hub_datasets_validate_for_any_method():
    spec = validate_spec_dict(minimal(method="dpo", data={"train": [
        {"hub": "org/prefs", "format": "auto", "samples": 500, "hub_site": "modelscope"}]}))
    dataset = spec.data.train[0]
    assert dataset.split == "train" and dataset.hub_site == "modelscope" and dataset.source == "hub:org/prefs"
    assert "exactly one of `path`" in error_of(minimal(data={"train": [{"format": "auto"}]}))
    assert "hub` datasets only" in error_of(minimal(data={"train": [{**ALPACA, "split": "test"}]}))


def test_simpo_and_cpo_get_their_own_defaults():
    simpo = validate_spec_dict(minimal(method="simpo", data={"train": [PREFERENCE]})).method
    assert (simpo.beta, simpo.gamma, simpo.nll_weight) == (2.0, 0.5, 0.0)
    cpo = validate_spec_dict(minimal(method="cpo", data={"train": [PREFERENCE]})).method
    assert (cpo.beta, cpo.nll_weight) == (0.1, 1.0) and not hasattr(cpo, "gamma")
