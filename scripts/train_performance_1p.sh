#!/bin/bash
# One card: a short run for throughput (default 1,000 steps).
#   bash scripts/train_performance_1p.sh --data_path=datasets [--train_steps=N] [--batch_size=N]
# Runs trainer.py with $PYTHON if set, else the python3 first on PATH.
source "$(dirname "${BASH_SOURCE[0]}")/modelzoo_common.sh"
train_steps=1000
run_one_card perf "$@"
