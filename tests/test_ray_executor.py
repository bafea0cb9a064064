"""The Ray executor's pure parts: what a run asks Ray for, what it refuses, and the message without Ray."""

from __future__ import annotations

import sys

import pytest

from unified_ft.cli import main
from unified_ft.errors import ProblemsError, UftError
from unified_ft.ray_executor import check_spec, import_ray, task_resources
from unified_ft.spec import JobSpec

BASE = {"name": "d", "model": {"path": "org/m"}, "data": {"train": [{"path": "x.jsonl", "format": "alpaca"}]}}
CPU_NODES = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 16.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}}]


def _spec(**distributed) -> JobSpec:
    return JobSpec.model_validate({**BASE, "distributed": distributed})


def test_a_timed_run_takes_a_whole_node_and_a_quality_run_one_cpu():
    assert task_resources(CPU_NODES, _spec()) == {"num_cpus": 16.0}  # the largest live node: nothing shares it
    assert task_resources(CPU_NODES, _spec(), timed=False) == {"num_cpus": 1.0}


def test_on_a_gpu_cluster_a_run_asks_one_gpu_per_process():
    nodes = [{"Alive": True, "Resources": {"CPU": 32.0, "GPU": 8.0}}]
    assert task_resources(nodes, _spec(processes_per_node=4)) == {"num_cpus": 32.0, "num_gpus": 4.0}


def test_a_multi_node_spec_is_not_a_ray_task():
    with pytest.raises(ProblemsError, match="runs on one node"):
        check_spec(_spec(nodes=2, rendezvous={"endpoint": "10.0.0.1:29500"}))


def test_without_ray_the_message_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UftError, match=r"pip install 'unified_ft\[ray\]'"):
        import_ray()


def test_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    assert main(["bakeoff", str(tmp_path / "s.yaml"), "--backends", "trl,swift", "--address", "h:1"]) == 2
    assert "--address names a Ray cluster" in capsys.readouterr().err
