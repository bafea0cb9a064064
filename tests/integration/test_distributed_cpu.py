"""Data parallelism for real on CPU (gloo): a 2-process run and a 2-"node" run (two launchers, node ranks 0 and 1,
meeting on 127.0.0.1) through `uft run`, on each backend whose framework goes multi-process on CPU, train like a
1-process run with the same global batch; the framework itself saw 2 processes, and only rank 0 wrote the
standard outputs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from fixtures import same_rows, write_jsonl

from unified_ft.cli import main

pytestmark = pytest.mark.integration

#: The command line each framework's own launcher is started with (as the manifest records it).
LAUNCHERS = {"trl": ("accelerate.commands.launch", "--num_processes"), "llamafactory": ("FORCE_TORCHRUN", None),
             "swift": ("NPROC_PER_NODE", None), "colossalai": ("torch.distributed.run", "--nproc_per_node=2")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(folder: Path, model: Path, name: str, backend: str, distributed: dict, per_device: int) -> Path:
    write_jsonl(folder / "chats.jsonl", same_rows(16))
    spec = {"name": name, "model": {"path": str(model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": "chats.jsonl", "format": "messages"}], "max_length": 64},
            "training": {"max_steps": 3, "per_device_batch_size": per_device, "learning_rate": 1.0e-3, "seed": 7},
            "evaluation": {"enabled": False}, "distributed": distributed}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--backend", backend, "--runs-dir", str(folder / "runs")]) == 0
    return folder / "runs" / name / backend


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_model) -> list[tuple[int, float]]:
    """trl in one process with batch 2: the losses every 2-process run (batch 1 each) must reproduce."""
    return _losses(_run(tmp_path_factory.mktemp("one"), tiny_model, "one", "trl", {}, per_device=2))


@pytest.mark.parametrize("layout", ["2 processes", "2 nodes"])
@pytest.mark.parametrize("backend", list(LAUNCHERS))
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_model, one_process, backend, layout):
    distributed = ({"processes_per_node": 2} if layout == "2 processes" else
                   {"nodes": 2, "rendezvous": {"endpoint": f"127.0.0.1:{_free_port()}"}})
    two = _run(tmp_path, tiny_model, "two", backend, distributed, per_device=1)
    if layout == "2 nodes":  # node 1's launcher ran beside node 0's, each with its own log and script
        assert (two / "logs" / "node1-stderr.log").exists()
        script = (two / "native" / "launch_node1.sh").read_text()
        assert any(rank in script for rank in ("NODE_RANK=1", "--machine_rank 1", "--node_rank=1"))

    manifest = json.loads((two / "manifest.json").read_text())
    marker, flag = LAUNCHERS[backend]
    command = manifest["command"]
    assert marker in command or marker in manifest["env_keys"]
    if flag and "=" in flag:
        assert flag in command or layout == "2 nodes"  # torchrun counts processes per node
    elif flag:
        assert command[command.index(flag) + 1] == "2"  # processes in all, over every node
    batch = json.loads((two / "effective.json").read_text())["batch"]
    assert (batch["processes"], batch["per_device"], batch["effective"]) == (2, 1, 2)  # as the trainer saw it

    assert json.loads((two / "effective.json").read_text())["order"]["sampler"] == "sequential"
    double = _losses(two)
    assert [s for s, _ in double] == [1, 2, 3]  # one row per step: rank 1 wrote no metrics of its own
    for (_, a), (_, b) in zip(one_process, double, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
    adapter = json.loads((two / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4
