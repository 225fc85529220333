#!/bin/bash
# Eight Ascend cards over HCCL: one trainer process per card, gradients all-reduced.
#   bash scripts/train_full_8p.sh --data_path=datasets --rank_table=/path/rank_table_8p.json
# RANK_TABLE_FILE may be set instead of --rank_table. Throughput = 8 x card 0's.
# Every card reads one run folder, output/ckpt (rank 0 writes it): run again, all
# cards resume from its newest checkpoint at the same step. A signal to any card,
# or a NaN loss on one, stops all of them after the same step (the trainer's
# agreement over HCCL). A card that exits with an error leaves the others
# blocked in a collective: this script then stops them (SIGTERM, SIGKILL after
# STOP_GRACE_SECS, default 60) instead of waiting for HCCL's timeout.
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
# kill_tree SIGNAL PID: the process and its descendants (the trainer runs in a
# subshell of the card's background job).
kill_tree() {
    local child
    for child in $(pgrep -P "$2"); do
        kill_tree "$1" "$child"
    done
    kill "-$1" "$2" 2>/dev/null
}
start_time=$(date +%s)
pids=()
for ((i = 0; i < RANK_SIZE; i++)); do
    RANK_ID=$i ASCEND_DEVICE_ID=$i run_trainer "$i" "$output_path/output/$i/train_$i.log" \
        "$output_path/output/ckpt" &
    pids+=($!)
done
status=0
stop_at=""
while ((${#pids[@]} > 0)); do
    running=" $(jobs -rp | tr '\n' ' ') "
    left=()
    for pid in "${pids[@]}"; do
        if [[ "$running" == *" $pid "* ]]; then
            left+=("$pid")
            continue
        fi
        wait "$pid"
        card_status=$?
        if ((card_status != 0 && status == 0)); then
            status=$card_status
            echo "[Error] a card's trainer exited with status $card_status; stopping the others"
            stop_at=$(( $(date +%s) + ${STOP_GRACE_SECS:-60} ))
        fi
    done
    pids=("${left[@]}")
    if [[ -n "$stop_at" && ${#pids[@]} -gt 0 ]]; then
        signal=TERM
        (( $(date +%s) >= stop_at )) && signal=KILL
        for pid in "${pids[@]}"; do
            kill_tree "$signal" "$pid"
        done
    fi
    sleep 1
done
e2e_time=$(( $(date +%s) - start_time ))
if [[ $status -ne 0 ]]; then
    echo "[Error] a card's training failed (status $status); see $output_path/output/*/train_*.log"
    exit $status
fi
report "$output_path/output/0/train_0.log" "$e2e_time" "$RANK_SIZE" acc 0
