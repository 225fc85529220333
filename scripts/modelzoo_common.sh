#!/bin/bash
# Shared by the ModelZoo-convention scripts (train_full_1p.sh, train_performance_1p.sh,
# train_full_8p.sh): argument parsing, the trainer command, and the figures Huawei's
# tooling reads, computed from the trainer's log lines:
#   [train step N] Supervised loss: a D loss: b G loss: c Accuracy: d (t sec/batch, r instances/sec)
# The trainer runs with $PYTHON if set (e.g. PYTHON=/opt/venv/bin/python), else the
# python3 first on PATH.

Network="Improved-GAN_ID2094_for_TensorFlow"
repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

data_path=""
output_path=""
dataset="MNIST"
batch_size=32
rank_table=""

parse_modelzoo_args() {
    for para in "$@"; do
        case "$para" in
            --data_path=*) data_path="${para#*=}" ;;
            --output_path=*) output_path="${para#*=}" ;;
            --train_steps=*) train_steps="${para#*=}" ;;
            --batch_size=*) batch_size="${para#*=}" ;;
            --dataset=*) dataset="${para#*=}" ;;
            --rank_table=*) rank_table="${para#*=}" ;;
            --rank_size=*) RANK_SIZE="${para#*=}" ;;
            -h|--help)
                echo "usage: $0 --data_path=DIR [--output_path=DIR] [--train_steps=N]" \
                     "[--batch_size=N] [--dataset=NAME]"
                echo "  --data_path   folder holding the prepared dataset folders (e.g. mnist/)"
                echo "  --output_path where output/<device>/ goes (default: <repo>/test)"
                exit 0 ;;
            *) echo "[Warning] unknown argument $para ignored" ;;
        esac
    done
    if [[ -z "$data_path" ]]; then
        echo "[Error] para \"data_path\" must be config"
        exit 1
    fi
    output_path="${output_path:-$repo_dir/test}"
    # the trainer runs from the repository; paths given relative to where the
    # script was started must mean the same there
    case "$data_path" in /*) ;; *) data_path="$PWD/$data_path" ;; esac
    case "$output_path" in /*) ;; *) output_path="$PWD/$output_path" ;; esac
    case "$rank_table" in ""|/*) ;; *) rank_table="$PWD/$rank_table" ;; esac
}

# run_trainer DEVICE_ID LOG_FILE [TRAIN_DIR]: trains into TRAIN_DIR (default
# $output_path/output/DEVICE_ID/ckpt). The cards of one multi-card run share
# one TRAIN_DIR: rank 0 writes it, and on a rerun every card resumes from it
# at the same step.
run_trainer() {
    local device_id="$1" log_file="$2" train_dir="${3:-$output_path/output/$1/ckpt}"
    mkdir -p "$(dirname "$log_file")"
    (cd "$repo_dir" && "${PYTHON:-python3}" trainer.py --dataset "$dataset" \
        --data_dir "$data_path" --max_training_steps "$train_steps" --batch_size "$batch_size" \
        --train_dir "$train_dir" --device auto) > "$log_file" 2>&1
}

# mean_of_last_train_field LOG FIELD: the mean over the last 10 [train step] lines.
mean_of_last_train_field() {
    local log_file="$1" field="$2"
    grep "\[train step" "$log_file" | tail -n 10 | awk -v field="$field" '
        {
            if (field == "fps") { split($0, a, "sec/batch, "); split(a[2], b, " "); v = b[1] }
            else if (field == "sec") { split($0, a, "("); split(a[2], b, " "); v = b[1] }
            else if (field == "acc") { split($0, a, "Accuracy: "); split(a[2], b, " "); v = b[1] }
            sum += v; n += 1
        }
        END { if (n > 0) printf "%.3f", sum / n; else printf "0" }'
}

# report LOG E2E_SECONDS RANK_SIZE KIND: prints the figures and writes <CaseName>.log.
report() {
    local log_file="$1" e2e_time="$2" rank_size="$3" kind="$4" device_id="$5"
    local fps_per_card sec_per_step train_accuracy actual_loss fps
    local done_line
    done_line=$(grep -m 1 "is already trained to step" "$log_file")
    if [[ -n "$done_line" ]]; then
        echo "[Error] no step was trained, so there are no figures to report: ${done_line#*] }"
        echo "Pass a larger --train_steps, or another --output_path for a new run."
        exit 1
    fi
    fps_per_card=$(mean_of_last_train_field "$log_file" fps)
    sec_per_step=$(mean_of_last_train_field "$log_file" sec)
    train_accuracy=$(mean_of_last_train_field "$log_file" acc)
    actual_loss=$(grep "\[train step" "$log_file" | tail -n 1 | awk -F "D loss: " '{print $2}' | awk '{print $1}')
    fps=$(awk -v a="$fps_per_card" -v n="$rank_size" 'BEGIN { printf "%.3f", a * n }')
    # The trainer's "Device: npu (...)" line. On a machine with Ascend devices,
    # figures measured anywhere else are not NPU figures: refuse to report them.
    local device
    device=$(grep -m 1 "\] Device: " "$log_file" | sed 's/.*\] Device: \([a-z]*\).*/\1/')
    if compgen -G "/dev/davinci[0-9]*" > /dev/null && [[ "$device" != "npu" ]]; then
        echo "[Error] this machine has Ascend devices but training ran on '${device:-unknown}'" \
             "(see $log_file): CANN's TF adapter is not set up; no figures reported"
        exit 1
    fi
    echo "Training device : ${device:-unknown}"
    echo "Final Performance images/sec : $fps"
    echo "Final Performance sec/step : $sec_per_step"
    echo "E2E Training Duration sec : $e2e_time"
    echo "Final Train Accuracy : $train_accuracy"
    local case_name="${Network}_bs${batch_size}_${rank_size}p_${kind}"
    local case_log="$output_path/output/$device_id/${case_name}.log"
    {
        echo "Network = ${Network}"
        echo "RankSize = ${rank_size}"
        echo "BatchSize = ${batch_size}"
        echo "DeviceType = $(uname -m)"
        echo "CaseName = ${case_name}"
        echo "ActualFPS = ${fps}"
        echo "TrainingTime = ${sec_per_step}"
        echo "ActualLoss = ${actual_loss}"
        echo "E2ETrainingTime = ${e2e_time}"
        echo "TrainAccuracy = ${train_accuracy}"
    } > "$case_log"
}

# run_one_card KIND ARGS...: parses ARGS, trains on one card (device
# $ASCEND_DEVICE_ID, default 0; the CPU or GPU where there is no NPU) and
# reports; KIND is acc (full) or perf.
run_one_card() {
    local kind="$1"
    shift
    parse_modelzoo_args "$@"
    export RANK_SIZE=1 RANK_ID=0
    # The adapter starts HCCL whenever a rank table is set and RANK_SIZE > 0: one
    # inherited from a multi-card job's shell would make this card wait for the others.
    unset RANK_TABLE_FILE
    ASCEND_DEVICE_ID=${ASCEND_DEVICE_ID:-0}
    local log_file="$output_path/output/$ASCEND_DEVICE_ID/train_$ASCEND_DEVICE_ID.log"
    local start_time status e2e_time train_dir=""
    if [[ "$kind" == perf ]]; then
        # Timed from a fresh start every time: resumed from a run that is already
        # trained this far (a full run's ckpt/, an earlier perf run) it would time nothing.
        train_dir="$output_path/output/$ASCEND_DEVICE_ID/ckpt_perf"
        if [[ -d "$train_dir" ]]; then
            echo "Removing the previous performance run's folder $train_dir"
            rm -rf "$train_dir"
        fi
    fi
    start_time=$(date +%s)
    run_trainer "$ASCEND_DEVICE_ID" "$log_file" "$train_dir"
    status=$?
    e2e_time=$(( $(date +%s) - start_time ))
    if [[ $status -ne 0 ]]; then
        echo "[Error] training failed (status $status); see $log_file"
        tail -n 5 "$log_file"
        exit $status
    fi
    report "$log_file" "$e2e_time" 1 "$kind" "$ASCEND_DEVICE_ID"
}
