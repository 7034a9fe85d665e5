#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: SCRIPT NPROC [SCRIPT_ARGS...]
# runs tools/SCRIPT on NPROC processes per node with torchrun.
# Env: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#      PYTHON (python; .venv/bin/python when it lacks the stack). Without
#        GPUs the ranks run on CPU (gloo backend).
#      MAX_RESTARTS (0): torchrun restarts all ranks this many times after a
#        failure; tools/train.py then resumes from the last checkpoint.
#      RDZV_BACKEND / RDZV_ENDPOINT / RDZV_ID: elastic (c10d) rendezvous
#        instead of the static MASTER_ADDR:PORT one (RDZV_ENDPOINT turns it on).
#      DIST_TIMEOUT (1800): seconds a rank waits in a collective for a dead
#        or hung peer before it fails.
#      TORCHRUN_ARGS: any further torchrun options, e.g. "--monitor-interval 1".
# The exit status is torchrun's: non-zero when any rank failed; torchrun's
# error summary (on stderr) names the failed rank, its exit code and pid.

SCRIPT=$1
NPROC=$2
TOOLS="$(dirname "$0")"
# $PYTHON if it has the stack, else .venv/bin/python, else what to run first.
PYTHON=$(PYTHONPATH="$TOOLS/..":$PYTHONPATH \
    "${PYTHON:-$(command -v python || echo python3)}" "$TOOLS/find_python.py") \
    || exit 1

if [ -n "$RDZV_ENDPOINT" ]; then
    RDZV=(--rdzv-backend="${RDZV_BACKEND:-c10d}"
          --rdzv-endpoint="$RDZV_ENDPOINT"
          --rdzv-id="${RDZV_ID:-sparseformer}")
else
    RDZV=(--node_rank="${NODE_RANK:-0}"
          --master_addr="${MASTER_ADDR:-127.0.0.1}"
          --master_port="${PORT:-29500}")
fi

# shellcheck disable=SC2086  # TORCHRUN_ARGS is a list of options
PYTHONPATH="$TOOLS/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --nproc_per_node="$NPROC" \
    --max-restarts="${MAX_RESTARTS:-0}" \
    "${RDZV[@]}" \
    $TORCHRUN_ARGS \
    "$TOOLS/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
