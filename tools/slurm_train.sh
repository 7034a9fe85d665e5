#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [PY_ARGS...]
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#      PYTHON (python).

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
# WORK_DIR is optional: a 4th argument that is not an option is the work dir.
if [[ -n "$4" && "$4" != -* ]]; then
    WORK_ARGS=("--work-dir=$4")
    PY_ARGS=("${@:5}")
else
    WORK_ARGS=()
    PY_ARGS=("${@:4}")
fi

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
    ${PYTHON:-python} -u "$(dirname "$0")/train.py" "${CONFIG}" \
    "${WORK_ARGS[@]}" --launcher="slurm" "${PY_ARGS[@]}"
