#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [PY_ARGS...]
# Env: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#      PYTHON (python, else .venv/bin/python). Without GPUs the ranks run
#        on CPU (gloo backend).
#      MAX_RESTARTS, RDZV_*, DIST_TIMEOUT, TORCHRUN_ARGS: see dist_launch.sh
#      (after an elastic restart training resumes from the last checkpoint).
CONFIG=$1
GPUS=$2
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$GPUS" "$CONFIG" "${@:3}"
