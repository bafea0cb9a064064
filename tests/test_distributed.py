"""The `distributed` section: its rules, the launch lines it becomes, and backends that cannot take it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from unified_ft.errors import ProblemsError
from unified_ft.launch import translate_to
from unified_ft.launchers import accelerate_launch, endpoint, is_loopback, torchrun, torchrun_env
from unified_ft.plan import make_plan
from unified_ft.spec import DistributedSpec, JobSpec


def _spec(tmp_path, **distributed) -> JobSpec:
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    return JobSpec.model_validate({"name": "d", "model": {"path": "org/model"}, "template": "chatml",
                                   "data": {"train": [{"path": str(tmp_path / "rows.jsonl"), "format": "alpaca"}]},
                                   "evaluation": {"enabled": False}, "distributed": distributed})


@pytest.mark.parametrize(("given", "message"), [
    ({"tp": 2}, "ddp has no tensor/pipeline/context parallelism"),
    ({"processes_per_node": 3, "strategy": "megatron", "tp": 2}, "cannot be split into model-parallel groups"),
    ({"strategy": "deepspeed"}, "needs zero_stage 0 / 1 / 2 / 3; it is not set"),
    ({"strategy": "low_level_zero", "zero_stage": 3}, "needs zero_stage 1 / 2; it is 3"),
    ({"zero_stage": 2}, "zero_stage is for strategy deepspeed or low_level_zero"),
    ({"nodes": 2}, "needs distributed.rendezvous.endpoint"),
    ({"rendezvous": {"endpoint": "10.0.0.1"}}, "is not host:port"),
    ({"rendezvous": {"endpoint": "10.0.0.1:70000"}}, "is not host:port"),
    ({"strategy": "fsdp2", "offload": "optimizer"}, "cannot offload optimizer; strategies that can: deepspeed"),
    ({"strategy": "deepspeed", "zero_stage": 2, "offload": "params"}, "only at zero_stage 3"),
    ({"nodes": 2, "rendezvous": {"endpoint": "h:1", "min_nodes": 3}}, "must include nodes 2"),
])
def test_distributed_rules_name_the_setting_and_the_fix(given, message):
    with pytest.raises(ValidationError, match=message):
        DistributedSpec.model_validate(given)


def test_world_size_and_data_parallel_size():
    d = DistributedSpec(nodes=2, processes_per_node=4, strategy="hybrid_parallel", tp=2, pp=2,
                        rendezvous={"endpoint": "[::1]:29500"})
    assert (d.world_size, d.data_parallel) == (8, 2)
    assert endpoint(d) == ("::1", 29500) and is_loopback(d)
    assert not is_loopback(DistributedSpec(nodes=2, rendezvous={"endpoint": "node-0.cluster:29500"}))


def test_effective_batch_counts_data_parallel_replicas_only(tmp_path):
    spec = _spec(tmp_path, processes_per_node=4, strategy="megatron", tp=2)
    assert spec.effective_batch == 1 * 1 * 2


def test_accelerate_line_sets_every_launcher_setting():
    d = DistributedSpec(nodes=2, processes_per_node=2, rendezvous={"endpoint": "10.0.0.1:29500", "max_restarts": 1})
    argv = accelerate_launch(d, 1, ["train.py", "config.yaml"], "bf16", ["accelerate", "launch"])
    assert argv == ["accelerate", "launch", "--multi_gpu", "--num_processes", "4", "--num_machines", "2",
                    "--machine_rank", "1", "--main_process_ip", "10.0.0.1", "--main_process_port", "29500",
                    "--mixed_precision", "bf16", "--dynamo_backend", "no", "--max_restarts", "1",
                    "train.py", "config.yaml"]
    single = accelerate_launch(DistributedSpec(processes_per_node=2), 0, ["t.py"], "no", ["accelerate", "launch"])
    assert single[single.index("--main_process_port") + 1] == "0"  # a free port, chosen when it starts


def test_torchrun_line_and_environment():
    assert torchrun(DistributedSpec(processes_per_node=2), 0, ["t.py"], ["torchrun"]) == [
        "torchrun", "--nnodes=1", "--nproc_per_node=2", "--standalone", "t.py"]
    d = DistributedSpec(nodes=2, processes_per_node=1,
                        rendezvous={"endpoint": "127.0.0.1:29511", "min_nodes": 1, "id": "job7"})
    assert torchrun(d, 1, ["t.py"], ["torchrun"]) == [
        "torchrun", "--nnodes=1:2", "--nproc_per_node=1", "--node_rank=1", "--master_addr=127.0.0.1",
        "--master_port=29511", "--rdzv_id=job7", "t.py"]
    assert torchrun_env(d, 1) == {"NPROC_PER_NODE": "1", "NNODES": "2", "NODE_RANK": "1",
                                  "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}


@pytest.mark.parametrize("backend", ["trl", "llamafactory", "swift", "colossalai"])
def test_data_parallel_goes_through_each_frameworks_own_launcher(tmp_path, backend):
    spec = _spec(tmp_path, processes_per_node=2)
    plan, job = translate_to(spec, backend, tmp_path / backend)
    assert plan.derived["effective_batch"] == 2
    launch = {"trl": lambda: job.argv[1:3] == ["-m", "accelerate.commands.launch"],
              "llamafactory": lambda: job.env["FORCE_TORCHRUN"] == "1" and job.env["NPROC_PER_NODE"] == "2",
              "swift": lambda: job.env["NPROC_PER_NODE"] == "2" and "MASTER_PORT" not in job.env,
              "colossalai": lambda: job.argv[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in job.argv,
              }[backend]
    assert launch()
    one = translate_to(_spec(tmp_path), backend, tmp_path / f"{backend}-1")[1]
    launchers = {"accelerate.commands.launch", "torch.distributed.run"}
    assert "NPROC_PER_NODE" not in one.env and not launchers & set(one.argv)


@pytest.mark.parametrize("backend", ["unsloth"])
def test_a_strategy_a_backend_does_not_map_is_refused_naming_who_can(tmp_path, backend):
    with pytest.raises(ProblemsError) as caught:
        make_plan(_spec(tmp_path, processes_per_node=2), backend)
    (problem,) = [p for p in caught.value.problems if p.where.startswith("distributed")]
    assert problem.where == "distributed.strategy: ddp" and "trl" in problem.hint


def test_megatron_is_refused_on_trl_with_the_framework_that_has_it(tmp_path):
    with pytest.raises(ProblemsError) as caught:
        make_plan(_spec(tmp_path, processes_per_node=2, strategy="megatron", tp=2), "trl")
    assert "trl has no megatron" in caught.value.problems[0].message


def test_each_node_gets_a_launch_script_with_its_own_rank(tmp_path):
    spec = _spec(tmp_path, nodes=2, processes_per_node=2, rendezvous={"endpoint": "10.0.0.1:29500"})
    _, job = translate_to(spec, "llamafactory", tmp_path / "lf")
    scripts = [(tmp_path / "lf" / f"launch_node{r}.sh").read_text() for r in (0, 1)]
    assert ["export NODE_RANK=1" in text for text in scripts] == [False, True]
    assert all("export MASTER_ADDR=10.0.0.1" in text and "export NNODES=2" in text for text in scripts)
    assert [n.env["NODE_RANK"] for n in job.nodes] == ["0", "1"]


def test_uft_run_rehearses_several_nodes_only_on_this_machine(tmp_path):
    from unified_ft.launch import refuse_remote_nodes

    refuse_remote_nodes(_spec(tmp_path, nodes=2, rendezvous={"endpoint": "127.0.0.1:29500"}))
    with pytest.raises(ProblemsError, match="cannot start the other machines") as caught:
        refuse_remote_nodes(_spec(tmp_path, nodes=2, rendezvous={"endpoint": "10.0.0.1:29500"}))
    assert "launch_node<R>.sh" in caught.value.problems[0].hint
