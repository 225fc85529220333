#!/usr/bin/env python
"""Starts a TensorFlow cluster on this machine: one parameter server and N
workers (the first is the chief), each a trainer.py process with its own
TF_CONFIG on a free loopback port. For trying multi-worker training on one
machine; a real cluster sets TF_CONFIG on each host the same way.

    python scripts/launch_local_cluster.py 2 --dataset MNIST --train_dir train_dir/two
    python scripts/launch_local_cluster.py 2 --log_dir /tmp/logs -- --dataset MNIST ...

Everything after the worker count (and this script's own --log_dir,
--timeout) goes to every trainer. Each task logs to <log_dir>/<task>.log.
Waits for the workers, then stops the parameter server; exits with the first
non-zero worker status.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def cluster_spec(num_workers):
    ports = free_ports(num_workers + 1)
    hosts = ["127.0.0.1:%d" % p for p in ports]
    cluster = {"ps": hosts[:1], "chief": hosts[1:2]}
    if num_workers > 1:
        cluster["worker"] = hosts[2:]
    return cluster


def tasks(cluster):
    """[(job, index)], parameter servers first."""
    return [("ps", i) for i in range(len(cluster["ps"]))] + [("chief", 0)] + \
        [("worker", i) for i in range(len(cluster.get("worker", [])))]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("num_workers", type=int, help="workers, the chief included")
    parser.add_argument("--log_dir", default="cluster_logs", help="(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=24 * 3600,
                        help="seconds before the workers are stopped (default: a day)")
    args, trainer_args = parser.parse_known_args(argv)
    if trainer_args[:1] == ["--"]:
        trainer_args = trainer_args[1:]
    if args.num_workers < 1:
        parser.error("num_workers must be at least 1")
    return args, trainer_args


def main(argv=None):
    args, trainer_args = parse_args(sys.argv[1:] if argv is None else argv)
    cluster = cluster_spec(args.num_workers)
    if not os.path.isdir(args.log_dir):
        os.makedirs(args.log_dir)
    processes = {}
    for job, index in tasks(cluster):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": job, "index": index}}))
        log_path = os.path.join(args.log_dir, "%s%d.log" % (job, index))
        with open(log_path, "w") as log_file:
            processes[(job, index)] = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "trainer.py")] + trainer_args,
                env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=os.getcwd())
        print("started %s %d (%s), log %s" % (job, index, cluster[job][index], log_path))
        sys.stdout.flush()
    workers = {k: p for k, p in processes.items() if k[0] != "ps"}
    deadline = time.time() + args.timeout
    status = 0
    try:
        while any(p.poll() is None for p in workers.values()):
            if time.time() > deadline:
                print("timeout: stopping the workers")
                for p in workers.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                break
            failed = [k for k, p in workers.items() if p.poll() not in (None, 0)]
            if failed:  # the others would wait for its gradients forever
                print("%s %d failed; stopping the cluster" % failed[0])
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
    finally:
        for key, p in processes.items():
            if p.poll() is None:
                p.terminate()
        for key, p in processes.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for key in sorted(workers):
        code = workers[key].returncode
        print("%s %d exited with %s" % (key[0], key[1], code))
        if code and not status:
            status = code
    return status


if __name__ == "__main__":
    sys.exit(main())
