"""Backend discovery and capability checks: every unsupported setting is reported, together, by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unified_ft import plugin
from unified_ft.cli import main
from unified_ft.errors import BackendInvalid, BackendNotFound, CapabilityError, Problem
from unified_ft.plugin import (
    CHOICE_FEATURES,
    FLAG_FEATURES,
    NATIVE,
    Backend,
    BackendBase,
    Capability,
    NativeJob,
    all_features,
    available_backends,
    builtin_backends,
    check_capabilities,
    check_contract,
    load_backend,
    spec_features,
)
from unified_ft.specfile import validate_spec_dict

ROOT = Path(__file__).resolve().parents[1]

ALPACA = {"path": "/d/train.jsonl", "format": "alpaca"}
PREF = {"path": "/d/pref.jsonl", "format": "preference"}


def make_spec(**extra: Any):
    return validate_spec_dict({"name": "p", "model": {"path": "org/m"}, "data": {"train": [ALPACA]}, **extra})


class FakeBackend:
    """Supports exactly what its table says."""

    name = "fake"

    def __init__(self, capabilities: dict[str, Capability]) -> None:
        self.capabilities = capabilities


BASIC = {
    "method.sft": NATIVE, "adapter.lora": NATIVE, "optimizer.adamw_torch": NATIVE, "precision.auto": NATIVE,
    "precision.fp32": NATIVE, "scheduler.cosine": NATIVE, "template.model": NATIVE,
}


# --- features -------------------------------------------------------------------------------------


def test_spec_features_of_a_minimal_spec():
    feats = spec_features(make_spec())
    assert feats == {
        "method.sft": "method: sft",
        "adapter.lora": "adapter.type: lora",
        "optimizer.adamw_torch": "training.optimizer: adamw_torch",
        "precision.auto": "training.precision: auto",
        "scheduler.cosine": "training.lr_scheduler: cosine",
        "template.model": "template: model",
    }


def test_spec_features_lists_optional_features():
    spec = make_spec(
        method="dpo", data={"train": [PREF, PREF]}, template="chatml",
        adapter={"type": "lora", "rslora": True, "use_dora": True},
        training={"gradient_checkpointing": True, "report_to": ["wandb", "tensorboard"], "optimizer": "adamw_8bit"},
        model={"path": "org/m", "trust_remote_code": True, "gguf_file": "m.gguf"},
    )
    feats = spec_features(spec)
    for key in ("method.dpo", "adapter.lora", "adapter.rslora", "adapter.dora", "data.mixing", "template.chatml",
                "training.gradient_checkpointing", "report_to.wandb", "report_to.tensorboard",
                "optimizer.adamw_8bit", "model.trust_remote_code", "model.gguf"):
        assert key in feats, key
    assert "report_to.none" not in feats
    assert feats["method.dpo"] == "method: dpo"


def test_dora_type_is_one_feature():
    feats = spec_features(make_spec(adapter={"type": "dora"}))
    assert "adapter.dora" in feats and feats["adapter.dora"] == "adapter.type: dora"


def test_packing_and_train_on_prompt_features():
    feats = spec_features(make_spec(data={"train": [ALPACA], "packing": True, "train_on_prompt": True}))
    assert feats["data.packing"] == "data.packing: true"
    assert feats["data.train_on_prompt"] == "data.train_on_prompt: true"


# --- capability checks ----------------------------------------------------------------------------


def test_check_capabilities_passes_and_returns_emulated_notes():
    caps = {**BASIC, "adapter.lora": Capability("emulated", "via a shim")}
    notes = check_capabilities(make_spec(), FakeBackend(caps), has_gpu=False)
    assert notes == ["adapter.type: lora: emulated by fake (via a shim)"]


def test_check_capabilities_lists_every_problem_together():
    caps = {**BASIC, "method.ppo": Capability("unsupported", "no ppo here"),
            "adapter.qlora": Capability("native", needs_gpu=True)}
    del caps["scheduler.cosine"]  # undeclared -> unsupported
    spec = make_spec(method={"name": "ppo", "reward_model": "rm"}, adapter={"type": "qlora", "bits": 4})
    with pytest.raises(CapabilityError) as info:
        check_capabilities(spec, FakeBackend(caps), has_gpu=False)
    err = info.value
    assert len(err.problems) == 3
    text = str(err)
    assert "backend fake" in text
    assert "method: ppo" in text and "method.ppo" in text and "no ppo here" in text
    assert "adapter.qlora needs a CUDA GPU" in text
    assert "scheduler.cosine" in text and "not declared" in text


def test_gpu_capability_passes_with_a_gpu():
    caps = {**BASIC, "adapter.qlora": Capability("native", needs_gpu=True)}
    assert check_capabilities(make_spec(adapter={"type": "qlora", "bits": 4}), FakeBackend(caps), has_gpu=True) == []


def test_trl_refuses_ppo_and_names_the_feature():
    trl = load_backend("trl")
    spec = make_spec(method={"name": "ppo", "reward_model": "rm"}, training={"precision": "fp32"})
    with pytest.raises(CapabilityError) as info:
        check_capabilities(spec, trl, has_gpu=True)
    text = str(info.value)
    assert "method.ppo" in text and "trl" in text
    assert len(info.value.problems) == 1


@pytest.mark.parametrize(("backend", "loss", "refused"), [
    ("trl", "kto_pair", True), ("trl", "ipo", False), ("llamafactory", "exo_pair", True),
    ("llamafactory", "kto_pair", False), ("swift", "sigmoid_norm", True), ("swift", "robust", False)])
def test_each_backend_declares_the_dpo_losses_its_release_has(backend, loss, refused):
    """A loss the spec accepts but one framework's release lacks is refused before the run, naming it."""
    spec = make_spec(method={"name": "dpo", "loss_type": loss}, data={"train": [PREF]},
                     training={"precision": "fp32"}, template="chatml")
    plugin = load_backend(backend)
    if not refused:
        check_capabilities(spec, plugin, has_gpu=True)
        return
    with pytest.raises(CapabilityError) as info:
        check_capabilities(spec, plugin, has_gpu=True)
    assert f"loss_type.dpo.{loss}" in str(info.value) and "method.loss_type" in str(info.value)


def test_every_loss_type_is_declared_by_every_backend():
    from unified_ft.spec import LOSS_TYPES

    for backend in builtin_backends():
        table = load_backend(backend).capabilities
        wanted = [f"loss_type.{method}.{loss}" for method, losses in LOSS_TYPES.items() for loss in losses]
        missing = [feature for feature in wanted if feature not in table]
        assert not missing, (backend, missing)


def test_trl_qlora_needs_gpu():
    trl = load_backend("trl")
    spec = make_spec(adapter={"type": "qlora", "bits": 4}, training={"precision": "fp32"})
    with pytest.raises(CapabilityError, match="CUDA GPU"):
        check_capabilities(spec, trl, has_gpu=False)
    check_capabilities(spec, trl, has_gpu=True)


# --- discovery ------------------------------------------------------------------------------------


def test_available_backends_includes_trl():
    names = available_backends()
    assert "trl" in names and names == sorted(names)


def test_load_trl_backend():
    backend = load_backend("trl")
    assert backend.name == "trl"
    assert isinstance(backend, Backend)
    assert backend.capabilities["method.sft"].level == "native"


def test_unknown_backend_lists_available():
    with pytest.raises(BackendNotFound) as info:
        load_backend("nosuch")
    text = str(info.value)
    assert "'nosuch'" in text and "trl" in text and "unified_ft.backends" in text


def test_planned_backend_says_not_available_yet(monkeypatch):
    monkeypatch.setattr("unified_ft.plugin.PLANNED_BACKENDS", ("futureflow",))
    with pytest.raises(BackendNotFound) as info:
        load_backend("futureflow")
    text = str(info.value)
    assert "not available" in text and "yet" in text and "trl" in text


def test_native_job_command_quotes_env_and_args(tmp_path):
    job = NativeJob(tmp_path, [], ["python", "train.py", "a b.yaml"], env={"B": "2", "A": "x y"})
    assert job.command == "A='x y' B=2 python train.py 'a b.yaml'"


# --- the contract ---------------------------------------------------------------------------------


def test_the_protocol_declares_everything_the_core_uses():
    attributes, methods = plugin.protocol_members()
    assert attributes == ["name", "capabilities", "import_native"]
    assert methods == ["environment", "env_recipe", "translate", "check", "progress", "collect", "effective", "notes",
                       "gpu_needs"]


def test_a_backend_object_lacking_members_is_named_with_them():
    with pytest.raises(BackendInvalid) as info:
        check_contract(FakeBackend(BASIC), "fake", "entry point fake = tests:FakeBackend")
    text = str(info.value)
    assert "backend 'fake' (entry point fake = tests:FakeBackend)" in text
    assert ("lacks import_native, environment, env_recipe, translate, check, progress, collect, effective, notes, "
            "gpu_needs") in text


def test_the_base_class_gives_the_optional_members():
    base = BackendBase()
    assert base.import_native is None and base.env_recipe() is None and base.notes(make_spec()) == []
    assert base.gpu_needs(make_spec()) == []
    base.name = "toy"
    effective = base.effective(Path("."), make_spec(), 3)  # a run with no probe output: notes, never a crash
    assert effective.backend == "toy" and any("probe wrote nothing" in note for note in effective.notes)


def test_gpu_problems_add_what_the_backend_says_its_own_options_need():
    """A backend setting outside the portable features (ColossalAI's plugin) that needs CUDA is refused at run."""
    class Needy(BackendBase):
        name, capabilities = "needy", {}

        def gpu_needs(self, spec):
            return [Problem("backend_options.needy.plugin", "needs CUDA", "use a GPU machine")]

    problems = plugin.gpu_problems(make_spec(), Needy())
    assert [p.where for p in problems] == ["backend_options.needy.plugin"]
    plain = BackendBase()
    plain.capabilities = {}
    assert plugin.gpu_problems(make_spec(), plain) == []


def test_every_builtin_backend_is_one_folder_with_one_entry_point():
    folders = sorted(p.name for p in (ROOT / "backends").iterdir() if (p / "__init__.py").is_file())
    assert builtin_backends() == folders
    for name in folders:
        assert type(load_backend(name)).__module__ == f"unified_ft.backends.{name}"


def test_a_backend_folder_without_an_entry_point_says_how_to_register_it(monkeypatch):
    registered = plugin._registrations()
    monkeypatch.setattr(plugin, "_registrations", lambda: {k: v for k, v in registered.items() if k != "swift"})
    with pytest.raises(BackendNotFound, match="backends/swift is not registered") as info:
        load_backend("swift")
    assert "pyproject.toml" in str(info.value) and "unified_ft.backends.swift:<Class>" in str(info.value)


def test_import_needs_a_backend_with_an_importer(tmp_path, capsys):
    assert main(["import", "unsloth", str(tmp_path / "x.yaml"), "-o", str(tmp_path / "spec.yaml")]) == 2
    assert "backend unsloth has no importer; uft imports the configs of axolotl, llamafactory, swift, trl" in \
        capsys.readouterr().err


def test_an_importer_option_the_backend_does_not_take_is_refused(tmp_path, capsys):
    script = ROOT / "tests" / "backends" / "swift_examples" / "lora_sft.sh"
    out = tmp_path / "spec.yaml"
    assert main(["import", "swift", str(script), "--dataset-info", "x.json", "-o", str(out)]) == 2
    assert "`uft import swift` takes no --dataset-info" in capsys.readouterr().err and not out.exists()


# --- capability completeness ----------------------------------------------------------------------


def _one_spec_per_value() -> list:
    """Specs that between them use every value of every Literal-typed feature setting."""
    specs = []
    for _prefix, (section, name, _) in CHOICE_FEATURES.items():
        for value in plugin._choices(section, name):
            if section == "method":
                data = {"sft": ALPACA, "ppo": ALPACA, "grpo": ALPACA, "pt": {"path": "/d/t.jsonl", "format": "text"}}
                extra = {"method": {"name": value, **({"reward_model": "org/rm"} if value == "ppo" else {})},
                         "data": {"train": [data.get(value, PREF)]}}
            elif section == "adapter":
                extra = {"adapter": {"type": value, **({"bits": 4} if value == "qlora" else {})}}
            else:
                extra = {section: {name: value}}
            specs.append(make_spec(**extra))
    return specs


def test_all_features_covers_what_spec_features_produces():
    """all_features() reads the spec's types; every feature a real spec produces is among them."""
    known = set(all_features())
    everything_on = make_spec(
        model={"path": "org/m", "trust_remote_code": True, "gguf_file": "m.gguf"}, template="chatml",
        adapter={"type": "lora", "rslora": True, "use_dora": True, "loraplus_lr_ratio": 16, "init": "pissa"},
        data={"train": [ALPACA, ALPACA], "packing": True, "train_on_prompt": True},
        training={"gradient_checkpointing": True, "report_to": ["wandb", "tensorboard"]})
    assert set(FLAG_FEATURES) <= set(spec_features(everything_on))
    for spec in [everything_on, *_one_spec_per_value()]:
        assert set(spec_features(spec)) <= known, set(spec_features(spec)) - known
    assert {"precision.auto", "template.jinja", "report_to.wandb", "loss_type.kto.kto"} <= known
    assert "report_to.none" not in known
    assert len(all_features()) == len(known)  # each once (adapter.dora is both a type and a flag)


@pytest.mark.parametrize("backend", builtin_backends())
def test_every_builtin_backend_declares_every_feature(backend):
    """No feature falls through to "not declared by this backend": each says native, emulated or why not."""
    table = load_backend(backend).capabilities
    assert [f for f in all_features() if f not in table] == []
    assert all(cap.note for cap in table.values() if cap.level != "native"), "emulated/unsupported say why"


# --- GGUF ------------------------------------------------------------------------------------------


class _Reads:
    def __init__(self, level: str) -> None:
        self.capabilities = {"model.gguf": Capability(level, "x")}


def test_a_backend_that_reads_gguf_gets_the_spec_as_given(monkeypatch):
    from unified_ft import models

    monkeypatch.setattr(models, "gguf_as_safetensors", lambda spec, say: pytest.fail("converted"))
    spec = make_spec(model={"path": "/m", "gguf_file": "m.gguf"})
    assert models.for_backend(spec, _Reads("native")) == (spec, None)


def test_a_backend_that_emulates_gguf_gets_the_converted_folder(monkeypatch, tmp_path):
    from unified_ft import models

    monkeypatch.setattr(models, "gguf_as_safetensors", lambda spec, say: tmp_path / "converted")
    converted, derived = models.for_backend(make_spec(model={"path": "/m", "gguf_file": "m.gguf"}),
                                            _Reads("emulated"))
    assert converted.model.path == str(tmp_path / "converted") and converted.model.gguf_file is None
    assert derived.startswith("/m/m.gguf -> ")
