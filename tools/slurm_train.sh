#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [PY_ARGS...]
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#      PYTHON (python, else .venv/bin/python); see slurm_launch.sh.
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
# WORK_DIR is optional: a 4th argument that is not an option is the work dir.
if [[ -n "$4" && "$4" != -* ]]; then
    WORK_ARGS=("--work-dir=$4")
    PY_ARGS=("${@:5}")
else
    WORK_ARGS=()
    PY_ARGS=("${@:4}")
fi
exec bash "$(dirname "$0")/slurm_launch.sh" train.py "$PARTITION" "$JOB_NAME" \
    "$CONFIG" "${WORK_ARGS[@]}" "${PY_ARGS[@]}"
