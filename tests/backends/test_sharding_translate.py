"""DeepSpeed and FSDP2 on trl, LLaMA-Factory and ms-swift: the native files each framework reads (golden), and
the refusals: a CPU `uft run`, a stage / offload a framework lacks, DeepSpeed and FSDP both on.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends/test_sharding_translate.py`
and review the diff.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml
from fixtures import check_golden

from unified_ft import envs
from unified_ft.errors import CapabilityError, ProblemsError
from unified_ft.launch import ready_plan, translate_to
from unified_ft.plan import make_plan
from unified_ft.specfile import validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "sharding"
EXAMPLES = ROOT / "examples" / "data"
TWO_NODES = {"nodes": 2, "processes_per_node": 2, "rendezvous": {"endpoint": "10.0.0.1:29500"}}

#: case -> (backend, distributed section, files of the native folder to compare).
CASES = {
    "trl-zero2-offload": ("trl", {"processes_per_node": 2, "strategy": "deepspeed", "zero_stage": 2,
                                  "offload": "optimizer"}, ("accelerate_config.yaml", "config.yaml")),
    "trl-zero3-params": ("trl", {"processes_per_node": 4, "strategy": "deepspeed", "zero_stage": 3,
                                 "offload": "params"}, ("accelerate_config.yaml",)),
    "trl-fsdp2-two-nodes": ("trl", {**TWO_NODES, "strategy": "fsdp2", "offload": "params"},
                            ("accelerate_config.yaml", "launch_node1.sh")),
    "llamafactory-zero0": ("llamafactory", {"processes_per_node": 2, "strategy": "deepspeed", "zero_stage": 0},
                           ("train.yaml", "ds_z0_config.json")),
    "llamafactory-zero2-offload": ("llamafactory", {"processes_per_node": 2, "strategy": "deepspeed",
                                                    "zero_stage": 2, "offload": "optimizer"},
                                   ("ds_z2_offload_config.json",)),
    "llamafactory-zero3-params": ("llamafactory", {**TWO_NODES, "strategy": "deepspeed", "zero_stage": 3,
                                                   "offload": "params"},
                                  ("ds_z3_offload_config.json", "launch_node1.sh")),
    "swift-zero1": ("swift", {"processes_per_node": 2, "strategy": "deepspeed", "zero_stage": 1}, ("config.yaml",)),
    "swift-zero3-params": ("swift", {"processes_per_node": 2, "strategy": "deepspeed", "zero_stage": 3,
                                     "offload": "params"}, ("config.yaml",)),
    "swift-fsdp2-offload": ("swift", {"processes_per_node": 2, "strategy": "fsdp2", "offload": "params"},
                            ("config.yaml", "fsdp2.json")),
}


def _spec(distributed: dict, **changes):
    return validate_spec_dict({
        "name": "shard", "model": {"path": "org/model"}, "template": "chatml",
        "data": {"train": [{"path": str(EXAMPLES / "alpaca_sample.jsonl"), "format": "alpaca"}], "max_length": 128},
        "training": {"max_steps": 3, "seed": 1, "precision": "bf16", "gradient_checkpointing": True},
        "evaluation": {"enabled": False}, "distributed": distributed, **changes})


def _portable(text: str) -> str:
    """This machine's paths out of a launch line: the interpreter and uft's framework environments."""
    for backend in ("llamafactory", "swift"):
        recipe = importlib.import_module(f"unified_ft.backends.{backend}").RECIPE
        text = text.replace(str(envs.env_dir(recipe)), f"<{backend}-env>")
    return text.replace(sys.executable, "python")


@pytest.mark.parametrize("case", sorted(CASES))
def test_sharded_translation_matches_golden(case, tmp_path):
    backend, distributed, files = CASES[case]
    _, job = translate_to(_spec(distributed), backend, tmp_path / "native")
    for name in files:
        check_golden(GOLDEN / case / name, _portable((job.native_dir / name).read_text(encoding="utf-8")))
    check_golden(GOLDEN / case / "command.txt", _portable(job.command) + "\n")


def test_trl_accelerate_config_comes_from_the_spec_not_trls_bundled_one(tmp_path):
    _, job = translate_to(_spec({"processes_per_node": 3, "strategy": "fsdp2"},
                                training={"precision": "fp32"}), "trl", tmp_path / "t")
    config = yaml.safe_load((job.native_dir / "accelerate_config.yaml").read_text())
    assert (config["num_processes"], config["num_machines"], config["mixed_precision"]) == (3, 1, "no")
    assert config["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert config["fsdp_config"]["fsdp_offload_params"] is False
    assert job.argv[3:5] == ["--config_file", "accelerate_config.yaml"] and "--multi_gpu" not in job.argv


def test_llamafactory_copies_its_shipped_deepspeed_config_verbatim(tmp_path):
    _, job = translate_to(_spec({"processes_per_node": 2, "strategy": "deepspeed", "zero_stage": 3}),
                          "llamafactory", tmp_path / "lf")
    assert yaml.safe_load((job.native_dir / "train.yaml").read_text())["deepspeed"] == "ds_z3_config.json"
    shipped = ROOT / "backends" / "llamafactory" / "ds_z3_config.json"
    assert (job.native_dir / "ds_z3_config.json").read_bytes() == shipped.read_bytes()
    assert json.loads(shipped.read_text())["zero_optimization"]["stage"] == 3
    assert job.env["FORCE_TORCHRUN"] == "1"


def test_swift_fsdp2_follows_the_specs_gradient_checkpointing(tmp_path):
    _, job = translate_to(_spec({"processes_per_node": 2, "strategy": "fsdp2"},
                                training={"gradient_checkpointing": False}), "swift", tmp_path / "s")
    fsdp = json.loads((job.native_dir / "fsdp2.json").read_text())
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["fsdp_config"]["activation_checkpointing"] is False


DEEPSPEED, FSDP2 = {"strategy": "deepspeed", "zero_stage": 3}, {"processes_per_node": 2, "strategy": "fsdp2"}


@pytest.mark.parametrize(("backend", "distributed"), [("trl", DEEPSPEED), ("trl", FSDP2), ("llamafactory", DEEPSPEED),
                                                      ("swift", DEEPSPEED), ("swift", FSDP2)])
def test_uft_run_refuses_sharding_without_a_gpu_while_translate_writes_it(backend, distributed, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr("unified_ft.plan.detect_gpu", lambda: False)
    plan = make_plan(_spec(distributed), backend)
    assert any("needs a CUDA GPU" in note for note in plan.notes)
    with pytest.raises(CapabilityError) as caught:
        ready_plan(plan)
    (problem,) = caught.value.problems
    strategy = distributed["strategy"]
    assert problem.where == f"distributed.strategy: {strategy}"
    assert f"distributed.{strategy} needs a CUDA GPU" in problem.message and "strategy ddp" in problem.hint
    translate_to(_spec(distributed), backend, tmp_path / "out")  # a GPU job can be prepared here
    assert any((tmp_path / "out").iterdir())


def test_llamafactory_refuses_fsdp2_saying_why(tmp_path):
    with pytest.raises(ProblemsError) as caught:
        make_plan(_spec({"processes_per_node": 2, "strategy": "fsdp2"}), "llamafactory")
    (problem,) = caught.value.problems
    assert "reads no accelerate config" in problem.message and "trl" in problem.hint and "swift" in problem.hint


@pytest.mark.parametrize(("backend", "distributed", "where", "message"), [
    ("llamafactory", {"strategy": "deepspeed", "zero_stage": 1}, "distributed.zero_stage",
     "no DeepSpeed config for zero_stage 1"),
    ("llamafactory", {"strategy": "deepspeed", "zero_stage": 3, "offload": "optimizer"}, "distributed.offload",
     "zero_stage 3 with offload optimizer"),
    ("swift", {"strategy": "deepspeed", "zero_stage": 1, "offload": "optimizer"}, "distributed.offload",
     "no DeepSpeed preset for zero_stage 1 with offload optimizer"),
    ("swift", {"strategy": "deepspeed", "zero_stage": 3, "offload": "optimizer"}, "distributed.offload",
     "zero_stage 3 with offload optimizer"),
])
def test_a_stage_or_offload_the_framework_lacks_is_refused_before_anything_is_written(
        backend, distributed, where, message, tmp_path):
    with pytest.raises(ProblemsError) as caught:
        translate_to(_spec(distributed), backend, tmp_path / "out")
    (problem,) = caught.value.problems
    assert problem.where == where and message in problem.message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("distributed", "options", "key"), [
    ({"processes_per_node": 2, "strategy": "fsdp2"}, {"swift": {"deepspeed": "zero2"}}, "swift.deepspeed"),
    ({"strategy": "deepspeed", "zero_stage": 2}, {"trl": {"fsdp": "full_shard"}}, "trl.fsdp"),
    ({"strategy": "deepspeed", "zero_stage": 2}, {"llamafactory": {"fsdp_config": {}}}, "llamafactory.fsdp_config"),
])
@pytest.mark.parametrize("backend", ["trl", "llamafactory", "swift"])
def test_deepspeed_and_fsdp_together_are_one_error_naming_both(distributed, options, key, backend):
    with pytest.raises(ProblemsError) as caught:
        make_plan(_spec(distributed, backend_options=options), backend)
    problem = caught.value.problems[0]
    assert problem.where == f"backend_options.{key}"
    assert f"distributed.strategy {distributed['strategy']} and backend_options.{key}" in problem.message


@pytest.mark.parametrize("case", [c for c, (backend, _, _) in CASES.items() if backend == "trl"])
def test_accelerate_reads_the_written_config_as_the_strategy(case, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    _, distributed, _ = CASES[case]
    _, job = translate_to(_spec(distributed), "trl", tmp_path / "t")
    config = load_config_from_file(str(job.native_dir / "accelerate_config.yaml"))
    expected = {"deepspeed": "DEEPSPEED", "fsdp2": "FSDP"}[distributed["strategy"]]
    assert config.distributed_type.value == expected
    assert config.num_processes == distributed["processes_per_node"] * distributed.get("nodes", 1)
    if expected == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == distributed["zero_stage"]
        assert config.deepspeed_config["offload_param_device"] == ("cpu" if distributed["offload"] == "params"
                                                                   else "none")
    else:
        assert config.fsdp_config["fsdp_version"] == 2


def test_uft_run_with_a_gpu_still_refuses_deepspeed_where_it_is_not_installed(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed in uft's environment")
    monkeypatch.setattr("unified_ft.plan.detect_gpu", lambda: True)
    plan = make_plan(_spec({"strategy": "deepspeed", "zero_stage": 2}), "trl")
    with pytest.raises(ProblemsError) as caught:
        ready_plan(plan)
    (problem,) = caught.value.problems
    assert problem.where == "distributed.strategy: deepspeed" and "no deepspeed package" in problem.message
    assert "strategy fsdp2" in problem.hint
    ready_plan(make_plan(_spec({"processes_per_node": 2, "strategy": "fsdp2"}), "trl"))  # FSDP2 is torch's own


@pytest.mark.parametrize("backend", ["llamafactory", "swift"])
def test_the_deepspeed_check_looks_inside_the_frameworks_own_environment(backend):
    from unified_ft.launch import _has_module
    from unified_ft.plugin import load_backend

    plugin = load_backend(backend)
    if not plugin.environment().ready:
        pytest.skip(f"uft's environment for {backend} is not built here")
    assert _has_module(plugin, "transformers")  # there, though uft's own environment has it too
    assert not _has_module(plugin, "uft_no_such_module")
