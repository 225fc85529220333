#!/usr/bin/env python
"""Training throughput on one machine: a single process, and clusters of 1
and 2 workers (plus one parameter server) started by launch_local_cluster.py.

    python scripts/benchmark_cluster.py --dataset FASHION_MNIST --data_dir datasets

Reports the mean global instances/sec of the last ten [train step] lines of
each run (the chief's log). Every process shares this machine's cores, so
the scaling measured here is a lower bound on what separate hosts give.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from datasets import DATA_DIR  # noqa: E402

RATE = re.compile(r"\[train step +\d+\] .* ([\d.]+) instances/sec\)")


def mean_rate(log_path):
    with open(log_path) as f:
        rates = [float(m.group(1)) for m in RATE.finditer(f.read())][-10:]
    return sum(rates) / len(rates) if rates else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="MNIST")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    common = ["--dataset", args.dataset, "--data_dir", args.data_dir, "--max_training_steps",
              str(args.steps), "--log_step", "10", "--output_save_step", str(10 * args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        single = os.path.join(tmp, "single.log")
        with open(single, "w") as f:
            subprocess.check_call([sys.executable, os.path.join(ROOT, "trainer.py")] + common +
                                  ["--train_dir", os.path.join(tmp, "single")],
                                  stdout=f, stderr=subprocess.STDOUT)
        print("%-28s %12s" % ("setting", "instances/s"))
        print("%-28s %12.1f" % ("one process", mean_rate(single)))
        for n in args.workers:
            logs = os.path.join(tmp, "logs%d" % n)
            subprocess.check_call(
                [sys.executable, os.path.join(ROOT, "scripts", "launch_local_cluster.py"), str(n),
                 "--log_dir", logs] + common + ["--train_dir", os.path.join(tmp, "run%d" % n)],
                stdout=subprocess.DEVNULL)
            print("%-28s %12.1f" % ("1 ps + %d worker%s" % (n, "s" if n > 1 else ""),
                                    mean_rate(os.path.join(logs, "chief0.log"))))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
