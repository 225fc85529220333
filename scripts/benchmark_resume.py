#!/usr/bin/env python
"""How long a resumed run's input streams take to deliver their first batch,
by the step it resumes at (the cost of a restart that the data adds).

    python scripts/benchmark_resume.py --dataset MNIST --steps 0 12000 300000

Builds what trainer.py builds for the paper's MNIST-100 recipe (batch 100):
the unlabeled stream, the labeled stream of 100 examples and G's own
unlabeled stream, each positioned at the step, and prints the seconds until
all three have produced a batch.

    python scripts/benchmark_resume.py --dataset MNIST --trainer --steps 1 300000

--trainer times the whole restart instead: `python trainer.py --train_dir
<run>` resuming a run of that recipe whose checkpoint is at the step, from
the start of the process to the end of its first training step (Python and
TensorFlow start-up, graph, restore, streams).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import DATA_DIR  # noqa: E402
from names import CHECKPOINT_PREFIX  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="MNIST")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 12000, 300000])
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--num_labeled", type=int, default=100)
    parser.add_argument("--trainer", action="store_true",
                        help="time trainer.py resuming at each step (see above)")
    args = parser.parse_args(argv)
    import tensorflow.compat.v1 as tf  # after the flags: --help answers at once
    import input_ops
    from datasets import store
    tf.disable_v2_behavior()
    if args.trainer:
        return time_trainer(args)
    info = store.open_dataset(args.dataset, args.data_dir)
    cache = input_ops.prepare_tfrecords(info)
    labeled = input_ops.select_labeled(cache.splits["train"].labels, args.num_labeled,
                                       info.num_classes, 1)
    print("%-10s %s" % ("step", "seconds to the first batch of all three streams"))
    for step in args.steps:
        start = time.time()
        with tf.Graph().as_default():
            batches = [tf.data.make_one_shot_iterator(input_ops.stream_dataset(
                cache, args.batch_size, seed=seed, skip_batches=step, **kwargs)).get_next()
                for seed, kwargs in ((1, {}), (3, {"subset": labeled}), (5, {}))]
            with tf.Session() as sess:
                sess.run(batches)
        print("%-10d %.2f" % (step, time.time() - start))
        sys.stdout.flush()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trainer(args, run_dir, steps):
    """Runs trainer.py to `steps`; returns (seconds, its stderr)."""
    command = [sys.executable, os.path.join(ROOT, "trainer.py"), "--dataset", args.dataset,
               "--data_dir", args.data_dir, "--method", "improved_gan", "--train_dir", run_dir,
               "--max_training_steps", str(steps), "--log_step", "1"]
    start = time.time()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        sys.exit("trainer.py failed:\n" + done.stderr[-3000:])
    if not re.search(r"\[train step +%d\]" % steps, done.stderr):
        sys.exit("trainer.py did not train step %d:\n%s" % (steps, done.stderr[-3000:]))
    return time.time() - start


def checkpoint_at(source, target, step):
    """Copies run folder `source` to `target` with its checkpoint renamed to
    model-<step> and its global step set to `step`."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    shutil.copytree(source, target)
    for name in os.listdir(target):
        if name.startswith(CHECKPOINT_PREFIX + "-") or name == "checkpoint":
            os.remove(os.path.join(target, name))
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(source))
    with tf.Graph().as_default():
        variables = [tf.Variable(np.int64(step) if name == "global_step" else
                                 reader.get_tensor(name),
                                 name=name)
                     for name in reader.get_variable_to_shape_map()]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(sess, os.path.join(target, CHECKPOINT_PREFIX),
                                           global_step=step)


def time_trainer(args):
    work = tempfile.mkdtemp(prefix="benchmark_resume_")
    try:
        base = os.path.join(work, "base")
        trainer(args, base, 1)
        print("%-10s %s" % ("step", "seconds from `python trainer.py` to the end of the first "
                                    "step after the resume"))
        for step in args.steps:
            run_dir = os.path.join(work, "at%d" % step)
            checkpoint_at(base, run_dir, step)
            print("%-10d %.1f" % (step, trainer(args, run_dir, step + 1)))
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
