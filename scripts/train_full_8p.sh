#!/bin/bash
# Eight Ascend cards over HCCL: one trainer process per card, gradients all-reduced.
#   bash scripts/train_full_8p.sh --data_path=datasets --rank_table=/path/rank_table_8p.json
# RANK_TABLE_FILE may be set instead of --rank_table. Throughput = 8 x card 0's.
# Every card reads one run folder, output/ckpt (rank 0 writes it): run again, all
# cards resume from its newest checkpoint at the same step. A signal to any card,
# or a NaN loss on one, stops all of them after the same step (the trainer's
# agreement over HCCL); Ctrl-C or SIGTERM to this script is passed to every
# card. A card that exits with an error leaves the others blocked in a
# collective: this script then stops them (SIGTERM, SIGKILL after
# STOP_GRACE_SECS, default 60) instead of waiting for HCCL's timeout.
# Each card runs trainer.py with $PYTHON if set, else the python3 first on PATH.
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
# One process group per card (job control on while they start), so that a
# signal reaches the card's trainer and not only the subshell around it.
groups=()
set -m
for ((i = 0; i < RANK_SIZE; i++)); do
    RANK_ID=$i ASCEND_DEVICE_ID=$i run_trainer "$i" "$output_path/output/$i/train_$i.log" \
        "$output_path/output/ckpt" &
    groups+=($!)
done
set +m
signal_cards() {  # signal_cards SIGNAL: every card's process group
    local group
    for group in "${groups[@]}"; do
        kill -"$1" -- -"$group" 2>/dev/null
    done
}
# Ctrl-C or SIGTERM to this script goes to every card: they stop together after
# the current step and rank 0 saves (a second one stops them at once).
trap 'echo "[Info] SIGINT: passing it to every card"; signal_cards INT' INT
trap 'echo "[Info] SIGTERM: passing it to every card"; signal_cards TERM' TERM
status=0
stop_at=""
statuses=()
while :; do
    running=" $(jobs -rp | tr '\n' ' ') "
    alive=0
    for i in "${!groups[@]}"; do
        group=${groups[$i]}
        if [[ -z "${statuses[$i]}" && "$running" != *" $group "* ]]; then
            wait "$group"
            statuses[$i]=$?
            # 130/143: a stop the cards agreed on; anything else leaves the
            # others blocked in a collective, so they are stopped.
            if [[ ${statuses[$i]} -ne 0 && ${statuses[$i]} -ne 130 && ${statuses[$i]} -ne 143 \
                  && $status -eq 0 ]]; then
                status=${statuses[$i]}
                echo "[Error] card $i's trainer exited with status $status; stopping the others"
                signal_cards TERM
                stop_at=$(( $(date +%s) + ${STOP_GRACE_SECS:-60} ))
            fi
        fi
        if kill -0 -- -"$group" 2>/dev/null; then
            alive=$((alive + 1))
        fi
    done
    ((alive == 0)) && break
    if [[ -n "$stop_at" ]] && (( $(date +%s) >= stop_at )); then
        signal_cards KILL
    fi
    sleep 1
done
trap - INT TERM
if [[ $status -eq 0 ]]; then
    for card_status in "${statuses[@]}"; do
        if [[ $card_status -ne 0 ]]; then
            status=$card_status
            break
        fi
    done
fi
e2e_time=$(( $(date +%s) - start_time ))
if [[ $status -eq 130 || $status -eq 143 ]]; then
    echo "[Info] training was stopped (status $status); run this script again to resume"
    exit $status
elif [[ $status -ne 0 ]]; then
    echo "[Error] a card's training failed (status $status); see $output_path/output/*/train_*.log"
    exit $status
fi
report "$output_path/output/0/train_0.log" "$e2e_time" "$RANK_SIZE" acc 0
