#!/usr/bin/env bash
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS...]
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#      PYTHON (python, else .venv/bin/python); see slurm_launch.sh.
exec bash "$(dirname "$0")/slurm_launch.sh" test.py "$1" "$2" "${@:3}"
