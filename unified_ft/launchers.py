"""Each framework's own multi-process launcher, rendered from the spec's `distributed` section.

uft runs no distributed runtime of its own: a run with several processes is the framework's usual launch line
(accelerate, torchrun, or the environment variables LLaMA-Factory and ms-swift read), one per node, written into
the native folder so it runs without uft. Node 0 is the rendezvous host; every node runs the same command with
its own node rank.
"""

from __future__ import annotations

import ipaddress
import shlex

from .plugin import NodeLaunch
from .spec import DistributedSpec

__all__ = ["NodeLaunch", "accelerate_config", "accelerate_launch", "endpoint", "is_loopback", "shell_launch",
           "torchrun", "torchrun_env"]

#: The accelerate config file a sharded run (DeepSpeed, FSDP2) writes beside the job: accelerate takes those
#: plugins' settings from a config file, not from plain launch flags.
ACCELERATE_CONFIG = "accelerate_config.yaml"

#: Where the processes of a single-node run meet: this machine, a free port chosen when they start.
LOCAL_HOST = "127.0.0.1"


def endpoint(d: DistributedSpec) -> tuple[str, int]:
    """(host, port) of the rendezvous; port 0 on a single node means "any free port"."""
    if d.rendezvous.endpoint is None:
        return LOCAL_HOST, 0
    host, _, port = d.rendezvous.endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(d: DistributedSpec) -> bool:
    """Whether every node runs on this machine (a multi-node rehearsal on 127.0.0.1 / localhost)."""
    host, _ = endpoint(d)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def accelerate_launch(d: DistributedSpec, node_rank: int, script: list[str], mixed_precision: str,
                      launcher: list[str]) -> list[str]:
    """`accelerate launch` with every setting on the command line (no accelerate config file is read, so a
    user's ~/.cache/huggingface/accelerate/default_config.yaml cannot change the run). A sharded strategy names
    the job's own config file instead of --multi_gpu (accelerate allows one of the two); the explicit flags still
    set the processes, machine rank and rendezvous."""
    host, port = endpoint(d)
    mode = ["--config_file", ACCELERATE_CONFIG] if d.strategy in ("deepspeed", "fsdp2") else ["--multi_gpu"]
    argv = [*launcher, *mode, "--num_processes", str(d.world_size), "--num_machines", str(d.nodes),
            "--machine_rank", str(node_rank), "--main_process_ip", host, "--main_process_port", str(port),
            "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    if d.rendezvous.max_restarts:
        argv += ["--max_restarts", str(d.rendezvous.max_restarts)]
    return argv + script


def accelerate_config(d: DistributedSpec, mixed_precision: str) -> dict[str, object]:
    """accelerate's config for a DeepSpeed or FSDP2 run, from the spec alone (process counts and precision too,
    not the 8-GPU bf16 values of the configs trl bundles). FSDP2 saves a full state dict, so the adapter or model
    a run leaves is whole, not one shard per process."""
    common: dict[str, object] = {"compute_environment": "LOCAL_MACHINE", "debug": False}
    if d.strategy == "deepspeed":
        cpu = lambda on: "cpu" if on else "none"  # noqa: E731
        plugin: dict[str, object] = {"distributed_type": "DEEPSPEED", "deepspeed_config": {
            "deepspeed_multinode_launcher": "standard", "offload_optimizer_device": cpu(d.offload != "none"),
            "offload_param_device": cpu(d.offload == "params"), "zero3_init_flag": d.zero_stage == 3,
            "zero3_save_16bit_model": d.zero_stage == 3, "zero_stage": d.zero_stage}}
    elif d.strategy == "fsdp2":
        plugin = {"distributed_type": "FSDP", "fsdp_config": {
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": d.offload == "params", "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_version": 2}}
    else:
        raise ValueError(f"accelerate_config is for strategy deepspeed or fsdp2, not {d.strategy}")
    return {**common, **plugin, "downcast_bf16": "no", "machine_rank": 0, "main_training_function": "main",
            "mixed_precision": mixed_precision, "num_machines": d.nodes, "num_processes": d.world_size,
            "rdzv_backend": "static", "same_network": True, "use_cpu": False}


def torchrun(d: DistributedSpec, node_rank: int, script: list[str], launcher: list[str]) -> list[str]:
    """`torchrun` for frameworks whose runner is a plain training script (unsloth, ColossalAI)."""
    host, port = endpoint(d)
    argv = [*launcher, f"--nnodes={_nodes(d)}", f"--nproc_per_node={d.processes_per_node}"]
    if d.nodes == 1 and port == 0:
        argv.append("--standalone")
    else:
        argv += [f"--node_rank={node_rank}", f"--master_addr={host}", f"--master_port={port}"]
    argv += _elastic(d)
    return argv + script


def torchrun_env(d: DistributedSpec, node_rank: int) -> dict[str, str]:
    """The variables LLaMA-Factory (with FORCE_TORCHRUN) and ms-swift read to start torchrun themselves."""
    host, port = endpoint(d)
    env = {"NPROC_PER_NODE": str(d.processes_per_node), "NNODES": str(d.nodes), "NODE_RANK": str(node_rank)}
    if d.nodes > 1 or port:
        env |= {"MASTER_ADDR": host, "MASTER_PORT": str(port)}
    return env


#: The shell variables a scheduler sets on each node at run time, and the launcher settings that take them:
#: accelerate's and torchrun's flags, and the environment LLaMA-Factory and ms-swift read.
RUN_TIME = {"--machine_rank": "NODE_RANK", "--main_process_ip": "MASTER_ADDR", "--main_process_port": "MASTER_PORT",
            "--node_rank": "NODE_RANK", "--master_addr": "MASTER_ADDR", "--master_port": "MASTER_PORT"}
RUN_TIME_ENV = ("NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def shell_launch(argv: list[str], env: dict[str, str]) -> tuple[list[str], bool]:
    """Node 0's launch as shell lines any node can run: the node rank, rendezvous host and port become
    "$NODE_RANK", "$MASTER_ADDR" and "$MASTER_PORT" (set by the scheduler when the node starts), every other
    setting stays as translated. Also says whether the node rank was templated (a multi-node launch needs it)."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k not in RUN_TIME_ENV]
    passed = [k for k in RUN_TIME_ENV if k in env]
    if passed:
        lines.append(f"export {' '.join(passed)}")
    words, ranked, i = [], "NODE_RANK" in env, 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if flag in RUN_TIME and eq:
            words.append(f'{flag}="${RUN_TIME[flag]}"')
        elif argv[i] in RUN_TIME and i + 1 < len(argv):
            words += [argv[i], f'"${RUN_TIME[argv[i]]}"']
            i += 1
        else:
            words.append(shlex.quote(argv[i]))
            i += 1
            continue
        ranked = ranked or RUN_TIME[flag] == "NODE_RANK"
        i += 1
    return [*lines, " ".join(words)], ranked


def _nodes(d: DistributedSpec) -> str:
    r = d.rendezvous
    if r.min_nodes is None and r.max_nodes is None:
        return str(d.nodes)
    return f"{r.min_nodes or d.nodes}:{r.max_nodes or d.nodes}"


def _elastic(d: DistributedSpec) -> list[str]:
    r = d.rendezvous
    out = [f"--max_restarts={r.max_restarts}"] if r.max_restarts else []
    return out + ([f"--rdzv_id={r.id}"] if r.id is not None else [])

