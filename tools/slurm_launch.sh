#!/usr/bin/env bash
# Shared by slurm_train.sh and slurm_test.sh:
#   tools/slurm_launch.sh SCRIPT PARTITION JOB_NAME [SCRIPT_ARGS...]
# runs tools/SCRIPT with --launcher=slurm on GPUS tasks.
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#      PYTHON (python; .venv/bin/python when it lacks the stack).

# $PYTHON if it has the stack, else .venv/bin/python, else what to run first.
PYTHON=$(PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
    "${PYTHON:-$(command -v python || echo python3)}" \
    "$(dirname "$0")/find_python.py") || exit 1

set -x

SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

# SRUN_ARGS is left unquoted on purpose: it holds several srun options.
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$(dirname "$0")/${SCRIPT}" "${@:4}" \
    --launcher="slurm"
