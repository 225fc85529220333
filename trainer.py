#!/usr/bin/env python
"""Trains the semi-supervised GAN (SSGAN) of the reference implementation.

    python trainer.py --dataset MNIST
    python trainer.py --dataset CIFAR10 --deconv_type nn --max_training_steps 100000
    python trainer.py --train_dir train_dir/my-run        # resume it
    tensorboard --logdir train_dir

Every --log_step steps a line as the model card prints it:
  [train step 44871] Supervised loss: 0.10064 D loss: 0.55640 G loss: -0.00838
  Accuracy: 1.00000 (0.021 sec/batch, 1546.661 instances/sec)
and every --test_sample_step a `[val   step N]` line on a test batch. The run
folder gets config.json, train.log, checkpoints model-<step>, TensorBoard
events and samples-<step>.png. Ctrl-C (or SIGTERM) saves a checkpoint before
exiting; pointing --train_dir at the folder resumes it.
"""

import logging
import sys

from flag_table import parse_train_config

from recipes import recipe_help
from util import load_tensorflow, run_tf_command, setup_logging

log = logging.getLogger("trainer")


def main(argv=None):
    config, explicit, unknown = parse_train_config(
        sys.argv[1:] if argv is None else argv, description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1] + "\n" + recipe_help())
    setup_logging(config.debug)
    if unknown:
        log.warning("Ignoring arguments this trainer does not know (a platform may add its "
                    "own): %s", " ".join(unknown))
    train_loop = load_tensorflow("train_loop", config.debug)
    return run_tf_command(lambda: train_loop.train(config, explicit))


if __name__ == "__main__":
    sys.exit(main())
