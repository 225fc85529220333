"""Evaluation of a trained run's classifier (evaler.py's work): every example
of a split classified once, the report, and a grid of generated samples per
class.

    report = run(args)   # args: evaler.py's flags
"""

import collections
import logging
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf

import checkpoints
import input_ops
import model as model_lib
import names
import summaries
from datasets import DATA_DIR, store
from device import resolve_device, session_config
from errors import ConfigError
from files import atomic_path, write_json_atomic

log = logging.getLogger("evaler")

SAMPLE_CANDIDATES_PER_CLASS = 50  # generated images drawn per class for the sample grid
SAMPLE_SEED = 1234


EvalResult = collections.namedtuple(
    "EvalResult", "num_examples num_correct accuracy per_class_accuracy confusion_matrix "
                  "instances_per_sec")
EvalResult.__doc__ = """confusion_matrix[true][predicted] counts; per_class_accuracy
has None for a class absent from the split."""


def summarize(labels, predictions, num_classes, seconds):
    """EvalResult of integer label and prediction arrays (one entry per example)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    totals = confusion.sum(axis=1)
    per_class = [float(confusion[c, c]) / totals[c] if totals[c] else None
                 for c in range(num_classes)]
    correct = int(np.trace(confusion))
    return EvalResult(int(len(labels)), correct, float(correct) / max(len(labels), 1), per_class,
                      confusion.tolist(), float(len(labels)) / max(seconds, 1e-9))


def evaluate(checkpoint, model_config, cache, split, batch_size, session_conf=None,
             use_ema=False):
    """Classifies every example of `split` once with D in inference mode
    (with its moving-average weights if use_ema), batch_size examples per
    session.run: the last batch is padded to batch_size (a fixed shape) and
    its padding rows are dropped, so nothing is counted twice or left out.

    Returns:
      (EvalResult, ids in the order visited, predictions).
    """
    k = model_config.num_classes
    with tf.Graph().as_default():
        # Every batch has batch_size rows (fixed shapes for Ascend); the last
        # is padded, and its padding rows are dropped below by their mask.
        batch = tf.data.make_one_shot_iterator(
            input_ops.eval_dataset(cache, batch_size, split=split)).get_next()
        discriminator = model_lib.networks(model_config)[0]
        if getattr(discriminator, "minibatch_kernels", 0):
            # Minibatch discrimination compares each example with the rest
            # of its batch, so padding rows would change the last batch's
            # predictions: classify the valid rows alone (that batch's shape
            # then differs from the others').
            batch = {key: tf.boolean_mask(value, batch["valid"]) for key, value in batch.items()}
        logits = discriminator(batch["image"], training=False)
        predictions = tf.argmax(logits[:, :k], axis=1, output_type=tf.int32)
        with tf.Session(config=session_conf) as sess:
            checkpoints.restore(sess, checkpoint, tf.global_variables(scope=names.D_SCOPE + "/"),
                                use_ema, "the %s split is %s" % (
                                    split, checkpoints.shape_text(cache.image_shape,
                                                                  cache.num_classes)))
            ids, labels, predicted = [], [], []
            seconds = 0.0
            while True:
                start = time.time()
                try:
                    out = sess.run({"id": batch["id"], "label": batch["label"],
                                    "valid": batch["valid"], "prediction": predictions})
                except tf.errors.OutOfRangeError:
                    break
                seconds += time.time() - start
                valid = out["valid"]
                ids.extend(out["id"][valid])
                labels.append(out["label"][valid])
                predicted.append(out["prediction"][valid])
    labels, predicted = np.concatenate(labels), np.concatenate(predicted)
    return summarize(labels, predicted, k, seconds), ids, predicted


def class_sample_grid(checkpoint, model_config, per_class, session_conf=None,
                      use_ema=False):
    """A PNG: row c holds the generated images the classifier is surest are
    class c (blank where fewer were drawn), from fixed noise."""
    k = model_config.num_classes
    num = SAMPLE_CANDIDATES_PER_CLASS * k
    z = np.random.RandomState(SAMPLE_SEED).uniform(-1, 1, (num, model_config.n_z))
    height, width, channels = model_config.image_shape
    with tf.Graph().as_default():
        discriminator, generator = model_lib.networks(model_config)
        images = generator(tf.constant(z, tf.float32), training=False)
        logits = discriminator(images, training=False)
        probabilities = tf.nn.softmax(logits[:, :k])
        chosen = tf.placeholder(tf.float32, [k * per_class, height, width, channels])
        png = summaries.encode_grid_png(chosen, columns=per_class)
        with tf.Session(config=session_conf) as sess:
            checkpoints.restore(sess, checkpoint, tf.global_variables(), use_ema)
            pictures, probs = sess.run([images, probabilities])
            grid = -np.ones([k * per_class, height, width, channels], np.float32)
            predicted = probs.argmax(axis=1)
            for c in range(k):
                mine = np.flatnonzero(predicted == c)
                best = mine[np.argsort(-probs[mine, c])][:per_class]
                grid[c * per_class:c * per_class + len(best)] = pictures[best]
            return sess.run(png, {chosen: grid})


def report_lines(result, split, dataset_name):
    """The printed report, one string per line."""
    k = len(result.per_class_accuracy)
    lines = ["Average accuracy : %.4f" % result.accuracy,
             "Evaluated %d examples of the %s split of %s: %d correct, %d errors (%.2f%%)"
             % (result.num_examples, split, dataset_name, result.num_correct,
                result.num_examples - result.num_correct, 100.0 * (1 - result.accuracy)),
             "Per-class accuracy: " + "  ".join(
                 "%d: %s" % (c, "-" if a is None else "%.4f" % a)
                 for c, a in enumerate(result.per_class_accuracy)),
             "Confusion matrix (rows: true class, columns: predicted class):",
             "      " + "".join("%7d" % c for c in range(k))]
    for c, row in enumerate(result.confusion_matrix):
        lines.append("%6d" % c + "".join("%7d" % v for v in row))
    lines.append("Inference: %.1f instances/sec" % result.instances_per_sec)
    return lines


def run(args):
    """evaler.py: evaluates args.checkpoint as its flags say; returns the report."""
    checkpoint = checkpoints.resolve(args.checkpoint)
    saved = checkpoints.run_config_of(checkpoint)
    dataset = args.dataset or saved["dataset"]
    data_dir = args.data_dir or saved.get("data_dir", DATA_DIR)
    info = store.open_dataset(dataset, data_dir)
    checkpoints.check_fits_dataset(checkpoint, saved, info)
    if args.batch_size < 1:
        raise ConfigError("--batch_size must be positive, got %d" % args.batch_size)
    session_conf = session_config(resolve_device(args.device))
    cache = input_ops.prepare_tfrecords(info)
    model_config = model_lib.config_of_run(saved)
    step = checkpoints.step_of(checkpoint)
    ema = checkpoints.use_ema(saved, args.weights)
    log.info("Evaluating %s (step %s, %s weights) on the %s split of %s", checkpoint, step,
             "moving-average" if ema else "trained", args.split, info.name)
    result, _, _ = evaluate(checkpoint, model_config, cache, args.split, args.batch_size,
                            session_conf, ema)
    for line in report_lines(result, args.split, info.name):
        log.info("%s", line)
    run_dir = os.path.dirname(checkpoint)
    report = dict(result._asdict(), checkpoint=checkpoint, step=step, dataset=info.name,
                  dataset_path=os.path.abspath(info.path), split=args.split,
                  errors=result.num_examples - result.num_correct, batch_size=args.batch_size,
                  weights="ema" if ema else "raw", method=saved.get("method", "ssgan"),
                  num_labeled=saved.get("num_labeled", 0))
    # a run with a moving average keeps the raw weights' report beside it
    raw_of_ema_run = not ema and bool(saved.get("ema_decay"))
    json_path = os.path.join(run_dir, "eval-%s-%s%s.json" % (step, args.split,
                                                             "-raw" if raw_of_ema_run else ""))
    write_json_atomic(json_path, report)
    log.info("Wrote %s", json_path)
    if args.samples_per_class > 0:
        png = class_sample_grid(checkpoint, model_config, args.samples_per_class, session_conf,
                                ema)
        png_path = os.path.join(run_dir, "eval-%s-samples.png" % step)
        with atomic_path(png_path) as tmp:
            with open(tmp, "wb") as f:
                f.write(png)
        log.info("Wrote %s (row c: generated images classified as c)", png_path)
    return report
