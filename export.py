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
import sys

from flag_table import add_checkpoint_flag, add_flags, add_weights_flag
from util import command_parser, load_tensorflow, run_tf_command, setup_logging

log = logging.getLogger("export")


def parse_args(argv=None):
    parser = command_parser(__doc__)
    add_checkpoint_flag(parser)
    parser.add_argument("--output", required=True, help="the .pb file to write")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="a fixed batch size for the input (default: any)")
    add_weights_flag(parser)
    add_flags(parser, ("debug",))  # as the trainer's
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.debug)
    inference_graph = load_tensorflow("inference_graph", args.debug)
    return run_tf_command(lambda: inference_graph.export(args.checkpoint, args.output,
                                                         args.batch_size, args.weights))


if __name__ == "__main__":
    sys.exit(main())
