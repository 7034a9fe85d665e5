#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: SCRIPT NPROC [SCRIPT_ARGS...]
# runs tools/SCRIPT on NPROC processes per node with torchrun.
# Env: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#      PYTHON (python). Without GPUs the ranks run on CPU (gloo backend).

SCRIPT=$1
NPROC=$2
TOOLS="$(dirname "$0")"

PYTHONPATH="$TOOLS/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$TOOLS/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
