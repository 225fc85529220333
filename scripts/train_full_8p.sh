#!/bin/bash
# Eight Ascend cards over HCCL: one trainer process per card, gradients all-reduced.
#   bash scripts/train_full_8p.sh --data_path=datasets --rank_table=/path/rank_table_8p.json
# RANK_TABLE_FILE may be set instead of --rank_table. Throughput = 8 x card 0's.
source "$(dirname "${BASH_SOURCE[0]}")/modelzoo_common.sh"
train_steps=40000
RANK_SIZE=${RANK_SIZE:-8}
parse_modelzoo_args "$@"
export RANK_SIZE
export RANK_TABLE_FILE="${rank_table:-$RANK_TABLE_FILE}"
export JOB_ID="${JOB_ID:-$(date +%s)}"
if [[ -z "$RANK_TABLE_FILE" ]]; then
    echo "[Error] multi-card training needs the HCCL rank table: --rank_table=FILE or RANK_TABLE_FILE"
    exit 1
fi
start_time=$(date +%s)
pids=()
for ((i = 0; i < RANK_SIZE; i++)); do
    RANK_ID=$i ASCEND_DEVICE_ID=$i run_trainer "$i" "$output_path/output/$i/train_$i.log" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
e2e_time=$(( $(date +%s) - start_time ))
if [[ $status -ne 0 ]]; then
    echo "[Error] a card's training failed (status $status); see $output_path/output/*/train_*.log"
    exit $status
fi
report "$output_path/output/0/train_0.log" "$e2e_time" "$RANK_SIZE" acc 0
