"""A bake-off spread over Ray for real: a local Ray head on the loopback address, two backends through it (one
Ray task per backend, each supervising its framework's own launcher), and the head stopped by its own PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixtures import same_rows, write_jsonl

pytestmark = pytest.mark.integration
pytest.importorskip("ray", reason="the ray extra is not installed (setup.sh installs it)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head --block` in a session of its own; stopped (with everything it started) by its PID."""
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    log = (tmp_path / "ray-head.log").open("wb")
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.monotonic() + 120
    while b"block forever" not in (tmp_path / "ray-head.log").read_bytes():
        assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "ray-head.log").read_text()
        time.sleep(0.5)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()


def test_a_bakeoff_through_a_local_ray_head(tmp_path, tiny_model, ray_head):
    write_jsonl(tmp_path / "chats.jsonl", same_rows(16))
    spec = {"name": "viaray", "model": {"path": str(tiny_model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {"train": [{"path": "chats.jsonl", "format": "messages"}], "max_length": 64},
            "training": {"max_steps": 2, "per_device_batch_size": 2, "learning_rate": 1.0e-3, "seed": 7},
            "evaluation": {"enabled": False}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "bakeoff"
    uft = Path(sys.executable).with_name("uft")  # its own process, as a user runs it: Ray's driver stays out of pytest
    done = subprocess.run([str(uft), "bakeoff", str(path), "--backends", "trl,llamafactory", "--executor", "ray",
                           "--address", ray_head, "-o", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "bakeoff.json").read_text())
    assert result["executor"] == "ray"
    assert [r["status"] for r in result["results"]] == ["succeeded", "succeeded"]
    assert result["verdict"]["like_for_like"], result["verdict"]
    for backend in ("trl", "llamafactory"):  # ordinary run directories, written by the Ray tasks
        manifest = json.loads((out / "runs" / "repeat-1" / "viaray" / backend / "manifest.json").read_text())
        assert manifest["status"] == "succeeded"
