#!/usr/bin/env python
"""Exports a trained classifier (the discriminator) as a frozen TensorFlow graph.

    python export.py --checkpoint train_dir/<run> --output ssgan.pb
    python export.py --checkpoint train_dir/<run>/model-40000 --output ssgan.pb --batch_size 1

The graph takes `image` (float32 N x H x W x C, pixels scaled to [-1, 1] as
x / 255 * 2 - 1) and gives `logits` (N x K, the class logits; the "fake"
logit is dropped) and `probabilities` (N x K, their softmax). Variables are
folded into constants; there are no training ops, no py_func, and the shapes
are fixed (--batch_size) or batch-free (N unknown), as Ascend's offline
converter accepts:

    atc --model=ssgan.pb --framework=3 --output=ssgan --soc_version=Ascend310 \\
        --input_shape="image:1,28,28,1" --out_nodes="logits:0"

A text copy of the graph is written beside it (<output>.pbtxt).
"""

import logging
import os
import sys

from config import ConfigError
import checkpoints
from util import command_parser, run_tf_command, setup_logging

log = logging.getLogger("export")

INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities")


def parse_args(argv=None):
    parser = command_parser(__doc__)
    checkpoints.add_checkpoint_flag(parser)
    parser.add_argument("--output", required=True, help="the .pb file to write")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="a fixed batch size for the input (default: any)")
    checkpoints.add_weights_flag(parser)
    parser.add_argument("--debug", action="store_true", help="log debugging detail")
    return parser.parse_args(argv)


def frozen_graph_def(checkpoint, saved, batch_size=None, use_ema=False):
    """The inference GraphDef of the checkpoint's discriminator, variables
    folded (its moving-average weights if use_ema)."""
    import tensorflow.compat.v1 as tf
    import model as ssgan
    from evaler import model_config_of
    k = saved["num_classes"]
    with tf.Graph().as_default() as graph:
        image = tf.placeholder(tf.float32, [batch_size] + list(saved["image_shape"]),
                               name=INPUT_NAME)
        logits = ssgan.networks(model_config_of(saved))[0](image, training=False)
        class_logits = tf.identity(logits[:, :k], name=OUTPUT_NAMES[0])
        tf.nn.softmax(class_logits, name=OUTPUT_NAMES[1])
        d_vars = ssgan.ema_restore_map(tf.global_variables(), use_ema)
        checkpoints.check_shapes(checkpoint, d_vars)
        with tf.Session() as sess:
            tf.train.Saver(d_vars).restore(sess, checkpoint)
            frozen = tf.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), list(OUTPUT_NAMES))
    return tf.graph_util.remove_training_nodes(frozen, protected_nodes=list(OUTPUT_NAMES))


def export(checkpoint_path, output, batch_size=None, weights="auto"):
    """Writes <output> and <output>.pbtxt; returns the checkpoint used."""
    import tensorflow.compat.v1 as tf
    from datasets.files import atomic_path
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


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.debug)
    return run_tf_command(lambda: export(args.checkpoint, args.output, args.batch_size,
                                         args.weights), args.debug)


if __name__ == "__main__":
    sys.exit(main())
