"""`uft translate --launcher slurm|skypilot`: the cluster job beside the native files, checked against reviewed
goldens, by bash's parser and a YAML parser, by running each node's part with the scheduler's variables faked,
and for anything of this machine (paths, secrets) leaking into it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures import check_golden

from unified_ft.cli import main
from unified_ft.envs import cache_root
from unified_ft.errors import SpecError
from unified_ft.launch import translate_to
from unified_ft.plugin import NativeJob, NodeLaunch
from unified_ft.schedulers import scheduler_files
from unified_ft.spec import JobSpec
from unified_ft.specfile import dump_spec

GOLDEN = Path(__file__).resolve().parent / "golden" / "schedulers"
FILES = {"slurm": "job.sbatch", "skypilot": "sky.yaml"}
MULTI = {"nodes": 2, "processes_per_node": 4, "rendezvous": {"endpoint": "10.0.0.1:29511"}}


def _spec(tmp_path: Path, **distributed) -> JobSpec:
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    return JobSpec.model_validate({"name": "cluster-job", "model": {"path": "org/model"}, "template": "chatml",
                                   "data": {"train": [{"path": str(tmp_path / "rows.jsonl"), "format": "alpaca"}]},
                                   "evaluation": {"enabled": False}, "distributed": distributed or MULTI})


def _translated(tmp_path: Path, backend: str, launcher: str, **distributed) -> Path:
    out = tmp_path / f"{backend}-{launcher}"
    translate_to(_spec(tmp_path, **distributed), backend, out, launcher)
    return out


def _node_body(sbatch: str) -> str:
    """The script each srun task runs (the argument of `srun ... bash -c`)."""
    (line,) = [line for line in sbatch.split("\nsrun ")[1:]]
    return shlex.split(line)[-1]


@pytest.mark.parametrize("launcher", ["slurm", "skypilot"])
@pytest.mark.parametrize("backend", ["trl", "llamafactory"])
def test_scheduler_file_matches_golden(tmp_path, backend, launcher):
    out = _translated(tmp_path, backend, launcher)
    check_golden(GOLDEN / f"{backend}-{launcher}.{FILES[launcher].split('.')[1]}", (out / FILES[launcher]).read_text())


@pytest.mark.parametrize("backend", ["trl", "llamafactory"])
def test_the_folder_brings_what_the_environment_is_built_from(tmp_path, backend):
    out = _translated(tmp_path, backend, "slurm")
    if backend == "trl":
        wanted = (out / "requirements-trl.txt").read_text().splitlines()
        assert "trl<2,>=1.16" in wanted and "accelerate>=1.4" in wanted
        install = "uv pip install --python .venv-trl/bin/python -r requirements-trl.txt"
        assert install in (out / "job.sbatch").read_text()
    else:
        lock = Path(__file__).resolve().parents[1] / "backends" / "llamafactory" / "requirements.lock"
        assert (out / "requirements.lock").read_bytes() == lock.read_bytes()
        sync = "uv pip sync --python .venv-llamafactory/bin/python requirements.lock"
        assert sync in (out / "job.sbatch").read_text()


@pytest.mark.parametrize("backend", ["trl", "llamafactory", "swift", "colossalai"])
def test_sbatch_passes_bash_parser_and_holds_nothing_of_this_machine(tmp_path, backend):
    out = _translated(tmp_path, backend, "slurm")
    sbatch = out / "job.sbatch"
    text = sbatch.read_text()
    subprocess.run(["bash", "-n", str(sbatch)], check=True)
    subprocess.run(["bash", "-n"], input=_node_body(text), text=True, check=True)
    _nothing_of_this_machine(text, tmp_path)
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n" in text
    assert "#SBATCH --job-name=cluster-job\n" in text


@pytest.mark.parametrize("backend", ["trl", "llamafactory", "swift", "colossalai"])
def test_sky_task_parses_and_its_scripts_pass_bash(tmp_path, backend):
    out = _translated(tmp_path, backend, "skypilot")
    text = (out / "sky.yaml").read_text()
    task = yaml.safe_load(text)
    assert (task["num_nodes"], task["resources"], task["workdir"]) == (2, {"accelerators": "YOUR_GPU:4"}, ".")
    for part in ("setup", "run"):
        subprocess.run(["bash", "-n"], input=task[part], text=True, check=True)
    assert "SKYPILOT_NODE_RANK" in task["run"] and f"[ -x .venv-{backend}/bin/python ]" in task["setup"]
    _nothing_of_this_machine(text, tmp_path)


def _nothing_of_this_machine(text: str, tmp_path: Path) -> None:
    for local in ("/work/", str(tmp_path), sys.prefix, sys.executable, str(cache_root()), str(Path.home()) + "/"):
        assert local not in text, local


def _fake_program(out: Path, backend: str, name: str) -> None:
    """The framework's command inside the environment the scheduler would build: prints what it was given."""
    program = out / f".venv-{backend}" / "bin" / name
    program.parent.mkdir(parents=True)
    program.write_text('#!/usr/bin/env bash\necho "ARGS $*"\necho "ENV ${NODE_RANK:-} ${MASTER_ADDR:-} '
                       '${MASTER_PORT:-} ${NNODES:-}"\n')
    program.chmod(0o755)


def _fake_scontrol(tmp_path: Path) -> str:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/usr/bin/env bash\n[ "$1 $2" = "show hostnames" ] && '
                                      'printf "gpu-a\\ngpu-b\\n"\n')
    (bin_dir / "scontrol").chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize(("backend", "program"), [("trl", "python"), ("llamafactory", "llamafactory-cli")])
def test_each_node_gets_its_rank_and_the_first_host_at_run_time(tmp_path, backend, program):
    out = _translated(tmp_path, backend, "slurm")
    _fake_program(out, backend, program)
    env = {"PATH": _fake_scontrol(tmp_path), "SLURM_NODEID": "1", "SLURM_NODELIST": "gpu-[a-b]"}
    done = subprocess.run(["bash", "-c", _node_body((out / "job.sbatch").read_text())], cwd=out, env=env,
                          capture_output=True, text=True, check=True)
    if backend == "trl":
        assert "--num_machines 2 --machine_rank 1 --main_process_ip gpu-a --main_process_port 29511 " in done.stdout
    else:
        assert "ENV 1 gpu-a 29511 2" in done.stdout and "ARGS train train.yaml" in done.stdout
    task = yaml.safe_load((_translated(tmp_path, backend, "skypilot") / "sky.yaml").read_text())
    sky_out = tmp_path / f"{backend}-skypilot"
    _fake_program(sky_out, backend, program)
    ran = subprocess.run(["bash", "-c", task["run"]], cwd=sky_out, capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"], "SKYPILOT_NODE_RANK": "1",
                              "SKYPILOT_NODE_IPS": "10.1.0.5\n10.1.0.6"})
    assert ("--machine_rank 1 --main_process_ip 10.1.0.5" if backend == "trl" else "ENV 1 10.1.0.5 29511") \
        in ran.stdout


def test_a_single_node_spec_gets_one_node_and_the_default_port(tmp_path):
    out = _translated(tmp_path, "llamafactory", "slurm", processes_per_node=2)
    text = (out / "job.sbatch").read_text()
    assert "#SBATCH --nodes=1\n" in text and "#SBATCH --gpus-per-node=2\n" in text and "MASTER_PORT=29500" in text
    assert "export NNODES=1" in _node_body(text)


def test_no_launcher_writes_no_scheduler_file(tmp_path):
    out = _translated(tmp_path, "trl", "none")
    assert not {"job.sbatch", "sky.yaml", "requirements-trl.txt"} & {p.name for p in out.iterdir()}


def test_a_secret_is_named_never_written(tmp_path):
    spec = _spec(tmp_path)
    job = NativeJob(tmp_path, [], ["/opt/env/bin/python", "train.py"], env={"HF_TOKEN": "hf_abcdefgh12345678"},
                    nodes=[NodeLaunch(0, ["/opt/env/bin/python", "train.py", "--node_rank=0"], {}),
                           NodeLaunch(1, ["/opt/env/bin/python", "train.py", "--node_rank=1"], {})])
    for launcher, name in FILES.items():
        text = scheduler_files(spec, "trl", None, job, launcher).texts[name]
        assert "hf_abcdefgh12345678" not in text and "HF_TOKEN" in text and "/opt/env" not in text
        assert '--node_rank="$NODE_RANK"' in text


def test_a_multi_node_launch_without_a_rank_to_template_is_refused(tmp_path):
    job = NativeJob(tmp_path, [], ["mytool", "go"], nodes=[NodeLaunch(0, ["mytool", "go"]), NodeLaunch(1, ["x"])])
    with pytest.raises(SpecError, match="cannot be started by a scheduler"):
        scheduler_files(_spec(tmp_path), "trl", None, job, "slurm")


def test_cli_refuses_an_unknown_launcher_and_leaves_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(dump_spec(_spec(tmp_path)))
    assert main(["translate", str(spec), "--backend", "trl", "--launcher", "pbs", "-o", str(tmp_path / "o")]) == 2
    assert "'pbs' is not one of" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["translate", str(spec), "--backend", "trl", "--launcher", "slurm", "-o", str(tmp_path / "s")]) == 0
    assert "sbatch job.sbatch" in capsys.readouterr().out and (tmp_path / "s" / "job.sbatch").is_file()


def test_torchrun_and_swift_launches_take_the_rank_and_host_at_run_time(tmp_path):
    colossal = _node_body((_translated(tmp_path, "colossalai", "slurm") / "job.sbatch").read_text())
    assert '--node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT"' in colossal
    assert colossal.rstrip().endswith(".venv-colossalai/bin/python -m torch.distributed.run --nnodes=2 "
                                      '--nproc_per_node=4 --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" '
                                      '--master_port="$MASTER_PORT" train.py colossalai_job.json')
    swift = _node_body((_translated(tmp_path, "swift", "slurm") / "job.sbatch").read_text())
    assert "export NODE_RANK MASTER_ADDR MASTER_PORT" in swift and "export NODE_RANK=" not in swift


def test_a_backend_without_an_environment_to_build_is_refused_leaving_nothing(tmp_path):
    with pytest.raises(SpecError, match="has no environment uft can build on a cluster") as caught:
        translate_to(_spec(tmp_path, processes_per_node=1), "axolotl", tmp_path / "ax", "slurm")
    assert caught.value.problems[0].where == "--launcher" and not (tmp_path / "ax").exists()
