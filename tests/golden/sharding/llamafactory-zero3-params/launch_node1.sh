#!/usr/bin/env bash
# Node 1 of 2: start this on machine 1; node 0 hosts the rendezvous.
set -euo pipefail
cd "$(dirname "$0")"
export DISABLE_VERSION_CHECK=1
export FORCE_TORCHRUN=1
export MASTER_ADDR=10.0.0.1
export MASTER_PORT=29500
export NNODES=2
export NODE_RANK=1
export NPROC_PER_NODE=2
export TOKENIZERS_PARALLELISM=false
<llamafactory-env>/bin/llamafactory-cli train train.yaml
