#!/usr/bin/env python
"""Evaluates a trained SSGAN's classifier on a dataset split.

    python evaler.py --checkpoint train_dir/<run>                 # its newest checkpoint
    python evaler.py --checkpoint train_dir/<run>/model-40000 --split train
    python evaler.py --checkpoint train_dir/<run> --dataset path/to/other_folder

Every example of the split is classified exactly once by the discriminator
(its K class logits; batch norm in inference mode), in batches of a fixed
size (as Ascend needs): the last one is padded, and its padding rows are not
counted. Prints the reference's `Average accuracy : 0.XXXX` line, the count
evaluated, per-class accuracy, the confusion matrix and the inference speed,
and writes the same to eval-<step>-<split>.json in the run folder
(eval-<step>-<split>-raw.json for the trained weights of a run that keeps a
moving average), with eval-<step>-samples.png: a grid of generated images,
one row per class as the classifier sees them.
A run that is still training can be evaluated: the newest checkpoint that
loads is read (newer damaged ones are skipped with a warning).
"""

import logging
import sys

from flag_table import add_checkpoint_flag, add_flags, add_weights_flag
from util import command_parser, load_tensorflow, run_tf_command, setup_logging

log = logging.getLogger("evaler")


def parse_args(argv=None):
    parser = command_parser(__doc__)
    add_checkpoint_flag(parser)
    parser.add_argument("--dataset", default=None,
                        help="dataset name or folder (default: the one the run trained on)")
    parser.add_argument("--data_dir", default=None,
                        help="folder of the prepared datasets (default: the run's)")
    parser.add_argument("--split", default="test", choices=("test", "train"),
                        help="which split to evaluate (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=100,
                        help="examples per session.run; the last batch holds the remainder, "
                             "padded to the full size (default: %(default)s)")
    add_weights_flag(parser)
    parser.add_argument("--samples_per_class", type=int, default=10,
                        help="columns of the sample grid (default: %(default)s; 0: no grid)")
    add_flags(parser, ("device", "debug"))  # as the trainer's
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.debug)
    evaluation = load_tensorflow("evaluation", args.debug)
    return run_tf_command(lambda: evaluation.run(args))


if __name__ == "__main__":
    sys.exit(main())
