#!/bin/bash
# One card: a short run for throughput (default 1,000 steps).
#   bash scripts/train_performance_1p.sh --data_path=datasets [--train_steps=N] [--batch_size=N]
source "$(dirname "${BASH_SOURCE[0]}")/modelzoo_common.sh"
train_steps=1000
parse_modelzoo_args "$@"
export RANK_SIZE=1 RANK_ID=0
ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID:-0}
log_file="$output_path/output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log"
start_time=$(date +%s)
run_trainer "$ASCEND_DEVICE_ID" "$log_file"
status=$?
e2e_time=$(( $(date +%s) - start_time ))
if [[ $status -ne 0 ]]; then
    echo "[Error] training failed (status $status); see $log_file"
    tail -n 5 "$log_file"
    exit $status
fi
report "$log_file" "$e2e_time" 1 perf "$ASCEND_DEVICE_ID"
