#!/bin/bash
# The Improved-GAN paper's headline experiment: MNIST with 100 labels (10 per
# class), the paper's networks and losses, evaluated on the 10,000 test digits.
#
#   scripts/reproduce_mnist100.sh                          # 300 epochs, seed 1
#   scripts/reproduce_mnist100.sh --epochs 50 --seeds 1,2,3
#   scripts/reproduce_mnist100.sh --dataset FASHION_MNIST \
#       --source /usr/share/datasets/fashion-mnist \
#       --checksums /var/lib/dpkg/info/dataset-fashion-mnist.md5sums
#   scripts/reproduce_mnist100.sh --method supervised      # the same D on the labels alone
#
# Resumable: run it again (with the same or more --epochs) and every run
# continues from its newest checkpoint; finished runs are only evaluated. Ctrl-C
# saves a checkpoint first. A checkpoint every --eval_every epochs (10) is kept
# and evaluated on the test set, with the moving average of D's weights and
# with the trained ones. Prints the test errors of each run at each of those
# epochs (and the mean over the seeds), then a table: seed, labels, epochs,
# test errors out of the test set, error %, wall time (summed over every
# invocation).
#
# The paper's settings are trainer.py's paper recipe (--method improved_gan or
# supervised bring them; `python trainer.py --help`, "Recipes"): the paper's
# networks and Adam (epsilon inside the root) with lr 0.003, beta1 0.5 and no
# gradient clipping for D and G, batch 100, one D step then one G step per
# iteration, the moving average of D's weights (decay 0.9999) for evaluation.
# The script adds its own: the length in epochs (an epoch = training images /
# 100 iterations, 600 for MNIST), the labeled subset chosen by the seed, and
# checkpoints at the epochs it evaluates. Paths are taken relative to the
# folder it is started from, like every command of the repository.
# TensorFlow's oneDNN kernels are switched on (TF_ENABLE_ONEDNN_OPTS=1; they
# are by default only on CPUs with AVX-512 VNNI and newer): 10-15% faster on
# an AVX2 CPU. Set TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's choice.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)

DATASET=MNIST
EPOCHS=300
EVAL_EVERY=10
SEEDS=1
LABELS=100
METHOD=improved_gan
DATA_DIR=datasets
ROOT=train_dir/reproduce
DOWNLOAD_ARGS=()
EXTRA=()
usage() { sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; echo "Options: --dataset --epochs --eval_every --seeds --labels --method --data_dir --root --source --checksums, then -- <extra trainer.py flags>"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) DATASET=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --eval_every) EVAL_EVERY=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --labels) LABELS=$2; shift 2 ;;
    --method) METHOD=$2; shift 2 ;;
    --data_dir) DATA_DIR=$2; shift 2 ;;
    --root) ROOT=$2; shift 2 ;;
    --source|--checksums) DOWNLOAD_ARGS+=("$1" "$2"); shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$METHOD" in improved_gan|supervised) ;; *)
  echo "--method must be improved_gan or supervised, got $METHOD" >&2; exit 2 ;; esac
if ! [[ "$EPOCHS" =~ ^[0-9]+$ ]] || [ "$EPOCHS" -lt 1 ]; then
  echo "--epochs must be a positive integer, got $EPOCHS" >&2; exit 2
fi
if ! [[ "$EVAL_EVERY" =~ ^[0-9]+$ ]] || [ "$EVAL_EVERY" -lt 1 ]; then
  echo "--eval_every must be a positive integer, got $EVAL_EVERY" >&2; exit 2
fi
PYTHON=${PYTHON:-python}
export TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-1}

$PYTHON "$REPO/download.py" --dataset "$DATASET" --data_dir "$DATA_DIR" ${DOWNLOAD_ARGS[@]+"${DOWNLOAD_ARGS[@]}"}

read -r NUM_TRAIN BATCH < <($PYTHON - "$REPO" "$DATASET" "$DATA_DIR" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import recipes
from datasets import store
print(len(store.open_dataset(sys.argv[2], sys.argv[3]).splits["train"]),
      recipes.PAPER_COMMON["batch_size"])
EOF
)
ITERATIONS=$((NUM_TRAIN / BATCH))  # per epoch, as the paper's loop
if [ "$METHOD" = supervised ]; then STEPS_PER_EPOCH=$ITERATIONS; else STEPS_PER_EPOCH=$((2 * ITERATIONS)); fi
MAX_STEPS=$((EPOCHS * STEPS_PER_EPOCH))
SAVE_STEPS=$((EVAL_EVERY * STEPS_PER_EPOCH < MAX_STEPS ? EVAL_EVERY * STEPS_PER_EPOCH : MAX_STEPS))
KEEP=$((MAX_STEPS / SAVE_STEPS + 2))  # every evaluated checkpoint, and the last
echo "$DATASET: $NUM_TRAIN training images, $ITERATIONS iterations per epoch, $EPOCHS epochs = $MAX_STEPS steps per run"

RUNS=()
for SEED in ${SEEDS//,/ }; do
  RUN="$ROOT/${DATASET}-${LABELS}labels-${METHOD}-seed${SEED}"
  RUNS+=("$RUN")
  START=$(date +%s)
  STATUS=0
  $PYTHON "$REPO/trainer.py" --dataset "$DATASET" --data_dir "$DATA_DIR" --train_dir "$RUN" \
    --method "$METHOD" --num_labeled "$LABELS" --seed "$SEED" --data_seed "$SEED" \
    --max_training_steps "$MAX_STEPS" --output_save_step "$SAVE_STEPS" \
    --max_to_keep "$KEEP" --log_step "$ITERATIONS" --test_sample_step "$STEPS_PER_EPOCH" \
    --write_summary_step "$ITERATIONS" ${EXTRA[@]+"${EXTRA[@]}"} || STATUS=$?
  if [ -d "$RUN" ]; then echo $(( $(date +%s) - START )) >> "$RUN/wall_seconds.txt"; fi
  if [ "$STATUS" -eq 130 ] || [ "$STATUS" -eq 143 ]; then
    echo "training $RUN was interrupted and saved; run this script again to resume it" >&2
    exit "$STATUS"
  elif [ "$STATUS" -ne 0 ]; then
    echo "training $RUN failed (status $STATUS, the error is above)" >&2
    exit "$STATUS"
  fi
  # Each kept checkpoint at a multiple of --eval_every epochs, and the last,
  # with the moving average (eval-<step>-test.json) and the trained weights
  # (eval-<step>-test-raw.json); evaluated once.
  for INDEX in "$RUN"/model-*.index; do
    STEP=${INDEX##*/model-}; STEP=${STEP%.index}
    if [ $((STEP % SAVE_STEPS)) -ne 0 ] && [ "$STEP" -ne "$MAX_STEPS" ]; then continue; fi
    SAMPLES=0; if [ "$STEP" -eq "$MAX_STEPS" ]; then SAMPLES=10; fi
    if [ ! -f "$RUN/eval-$STEP-test.json" ]; then
      $PYTHON "$REPO/evaler.py" --checkpoint "$RUN/model-$STEP" --data_dir "$DATA_DIR" --samples_per_class "$SAMPLES"
    fi
    if [ ! -f "$RUN/eval-$STEP-test-raw.json" ] && [ "$METHOD" = improved_gan ]; then
      $PYTHON "$REPO/evaler.py" --checkpoint "$RUN/model-$STEP" --data_dir "$DATA_DIR" --weights raw --samples_per_class 0
    fi
  done
done

$PYTHON - "$STEPS_PER_EPOCH" "$MAX_STEPS" "${RUNS[@]}" <<'EOF'
import glob, json, os, sys
import numpy as np
steps_per_epoch, max_steps, runs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]

def reports(run, suffix=""):
    """{step: errors} of the run's test-set reports up to this invocation's epochs."""
    found = {}
    for path in glob.glob(os.path.join(run, "eval-*-test%s.json" % suffix)):
        step = int(os.path.basename(path).split("-")[1])
        if step <= max_steps:
            found[step] = json.load(open(path))["errors"]
    return found

# The curve: test errors (moving-average weights; the trained ones in brackets).
curves = [(reports(run), reports(run, "-raw")) for run in runs]
steps = sorted(set(s for ema, _ in curves for s in ema))
print("\ntest errors by epoch (moving average of D's weights; trained weights in brackets)")
print("%-7s" % "epochs" + "".join("%-16s" % ("seed %s" % json.load(open(os.path.join(
    run, "config.json")))["seed"]) for run in runs) + ("mean" if len(runs) > 1 else ""))
for step in steps:
    cells, values = [], []
    for ema, raw in curves:
        if step in ema:
            values.append(ema[step])
            cells.append("%d" % ema[step] + (" (%d)" % raw[step] if step in raw else ""))
        else:
            cells.append("-")
    mean = "%.1f" % np.mean(values) if len(runs) > 1 and len(values) == len(runs) else ""
    print("%-7g" % (step / float(steps_per_epoch)) + "".join("%-16s" % c for c in cells) + mean)

rows, errors = [], []
for run in runs:
    config = json.load(open(os.path.join(run, "config.json")))
    final = [p for p in glob.glob(os.path.join(run, "eval-*-test.json"))
             if int(os.path.basename(p).split("-")[1]) <= max_steps]
    report = json.load(open(max(final, key=lambda p: int(os.path.basename(p).split("-")[1]))))
    with open(os.path.join(run, "wall_seconds.txt")) as f:
        seconds = sum(int(line) for line in f if line.strip())
    errors.append(report["errors"])
    rows.append((config["seed"], config["num_labeled"], report["step"] / float(steps_per_epoch),
                 report["errors"], report["num_examples"], 100.0 * report["errors"] /
                 report["num_examples"], seconds))
print("\n%-6s %-7s %-8s %-18s %-8s %s" % ("seed", "labels", "epochs", "test errors", "error %",
                                         "wall time"))
for seed, labels, epochs, err, total, pct, seconds in rows:
    print("%-6d %-7d %-8.1f %-18s %-8.2f %dh%02dm" % (seed, labels, epochs, "%d / %d" % (err, total),
                                                   pct, seconds // 3600, seconds % 3600 // 60))
if len(errors) > 1:
    print("mean   %.1f +- %.1f errors over %d seeds" % (np.mean(errors), np.std(errors), len(errors)))
EOF
