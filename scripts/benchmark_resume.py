#!/usr/bin/env python
"""How long a resumed run's input streams take to deliver their first batch,
by the step it resumes at (the cost of a restart that the data adds).

    python scripts/benchmark_resume.py --dataset MNIST --steps 0 12000 300000

Builds what trainer.py builds for the paper's MNIST-100 recipe (batch 100):
the unlabeled stream, the labeled stream of 100 examples and G's own
unlabeled stream, each positioned at the step, and prints the seconds until
all three have produced a batch.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow.compat.v1 as tf  # noqa: E402

import input_ops  # noqa: E402
from datasets import store  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="MNIST")
    parser.add_argument("--data_dir", default="datasets")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 12000, 300000])
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--num_labeled", type=int, default=100)
    args = parser.parse_args(argv)
    tf.disable_v2_behavior()
    info = store.open_dataset(args.dataset, args.data_dir)
    cache = input_ops.prepare_tfrecords(info)
    labeled = input_ops.select_labeled(cache.splits["train"].labels, args.num_labeled,
                                       info.num_classes, 1)
    print("%-10s %s" % ("step", "seconds to the first batch of all three streams"))
    for step in args.steps:
        start = time.time()
        with tf.Graph().as_default():
            batches = [tf.data.make_one_shot_iterator(input_ops.train_dataset(
                cache, args.batch_size, seed=seed, skip_batches=step, **kwargs)).get_next()
                for seed, kwargs in ((1, {}), (3, {"subset": labeled}), (5, {}))]
            with tf.Session() as sess:
                sess.run(batches)
        print("%-10d %.2f" % (step, time.time() - start))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
