#!/bin/bash
# One card (or the CPU/GPU where there is none): the model card's full training, 40,000 steps.
#   bash scripts/train_full_1p.sh --data_path=datasets [--train_steps=N] [--batch_size=N]
# Runs trainer.py with $PYTHON if set, else the python3 first on PATH.
source "$(dirname "${BASH_SOURCE[0]}")/modelzoo_common.sh"
train_steps=40000
run_one_card acc "$@"
