#!/usr/bin/env bash
# Node 1 of 2: start this on machine 1; node 0 hosts the rendezvous.
set -euo pipefail
cd "$(dirname "$0")"
export TOKENIZERS_PARALLELISM=false
export TRL_EXPERIMENTAL_SILENCE=1
python -m accelerate.commands.launch --config_file accelerate_config.yaml --num_processes 4 --num_machines 2 --machine_rank 1 --main_process_ip 10.0.0.1 --main_process_port 29500 --mixed_precision bf16 --dynamo_backend no train.py config.yaml
