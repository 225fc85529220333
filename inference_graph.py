"""The inference graph of a trained run's classifier (export.py's work): the
discriminator alone, variables folded into constants, as a GraphDef that
Ascend's offline converter and TensorFlow serving read.

    checkpoint = export(checkpoint_path, output)
"""

import logging
import os

import tensorflow.compat.v1 as tf

import checkpoints
import model as model_lib
from errors import ConfigError
from files import atomic_path

log = logging.getLogger("export")

INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities")


def frozen_graph_def(checkpoint, saved, batch_size=None, use_ema=False):
    """The inference GraphDef of the checkpoint's discriminator, variables
    folded (its moving-average weights if use_ema)."""
    k = saved["num_classes"]
    with tf.Graph().as_default() as graph:
        image = tf.placeholder(tf.float32, [batch_size] + list(saved["image_shape"]),
                               name=INPUT_NAME)
        logits = model_lib.networks(model_lib.config_of_run(saved))[0](image, training=False)
        class_logits = tf.identity(logits[:, :k], name=OUTPUT_NAMES[0])
        tf.nn.softmax(class_logits, name=OUTPUT_NAMES[1])
        with tf.Session() as sess:
            checkpoints.restore(sess, checkpoint, tf.global_variables(), use_ema)
            frozen = tf.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), list(OUTPUT_NAMES))
    return tf.graph_util.remove_training_nodes(frozen, protected_nodes=list(OUTPUT_NAMES))


def export(checkpoint_path, output, batch_size=None, weights="auto"):
    """Writes <output> and <output>.pbtxt; returns the checkpoint used."""
    if batch_size is not None and batch_size < 1:
        raise ConfigError("--batch_size must be positive, got %d" % batch_size)
    checkpoint = checkpoints.resolve(checkpoint_path)
    saved = checkpoints.run_config_of(checkpoint)
    graph_def = frozen_graph_def(checkpoint, saved, batch_size,
                                 checkpoints.use_ema(saved, weights))
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    for path, text in ((output, False), (output + "txt" if output.endswith(".pb")
                                         else output + ".pbtxt", True)):
        with atomic_path(path) as tmp:
            tf.io.write_graph(graph_def, os.path.dirname(tmp), os.path.basename(tmp),
                              as_text=text)
        log.info("Wrote %s", path)
    log.info("Input %s: float32 %s in [-1, 1]; outputs %s: %s", INPUT_NAME,
             [batch_size or "N"] + list(saved["image_shape"]), ", ".join(OUTPUT_NAMES),
             "[N, %d]" % saved["num_classes"])
    return checkpoint
