#!/usr/bin/env python
"""Measures the training input pipeline: examples/sec delivered to a session.

    python scripts/benchmark_input.py                       # synthetic MNIST-sized data
    python scripts/benchmark_input.py --dataset FASHION_MNIST --data_dir datasets
    python scripts/benchmark_input.py --batch_sizes 32 128 --seconds 10

With no --dataset, a synthetic dataset of --num_examples 28x28x1 images is
written to a temporary folder first, and the HDF5 and TFRecord writing times
are reported too. The pipeline is timed by pulling batches with
session.run(get_next()), as a training loop does, after a warm-up.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import DATA_DIR  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dataset", help="prepared dataset name or folder (default: synthetic)")
    parser.add_argument("--data_dir", default=DATA_DIR, help="(default: %(default)s)")
    parser.add_argument("--num_examples", type=int, default=70000,
                        help="size of the synthetic dataset (default: %(default)s)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="timed duration per batch size (default: %(default)s)")
    parser.add_argument("--warmup_batches", type=int, default=50)
    return parser.parse_args(argv)


def synthetic_dataset(folder, num_examples):
    import numpy as np
    from datasets import store
    rs = np.random.RandomState(0)
    num_test = num_examples // 7
    splits = [(split, rs.randint(0, 256, (n, 28, 28, 1)).astype(np.uint8),
               rs.randint(0, 10, n)) for split, n in (("train", num_examples - num_test),
                                                      ("test", num_test))]
    start = time.time()
    store.write_dataset(folder, splits, 10)
    return time.time() - start


def measure(cache, batch_size, seconds, warmup):
    import tensorflow.compat.v1 as tf
    import input_ops
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(
            input_ops.stream_dataset(cache, batch_size, seed=0)).get_next()
        with tf.Session() as sess:
            for _ in range(warmup):
                sess.run(batch)
            count, start = 0, time.time()
            while time.time() - start < seconds:
                sess.run(batch)
                count += batch_size
            return count / (time.time() - start)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    import input_ops
    from datasets import store
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            info = store.open_dataset(args.dataset, args.data_dir)
        else:
            folder = os.path.join(tmp, "synthetic")
            os.makedirs(folder)
            seconds = synthetic_dataset(folder, args.num_examples)
            print("wrote data.hdf5 (%d examples): %.1f s" % (args.num_examples, seconds))
            info = store.open_dataset(folder)
        start = time.time()
        cache = input_ops.prepare_tfrecords(info, progress=False)
        print("TFRecord cache (read data.hdf5 + convert, or reuse): %.1f s"
              % (time.time() - start))
        print("%-10s %14s" % ("batch", "examples/sec"))
        for batch_size in args.batch_sizes:
            rate = measure(cache, batch_size, args.seconds, args.warmup_batches)
            print("%-10d %14.0f" % (batch_size, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
