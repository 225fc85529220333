#!/usr/bin/env python
"""Starts a TensorFlow cluster on this machine: one parameter server and N
workers (the first is the chief), each a trainer.py process with its own
TF_CONFIG on a free loopback port. For trying multi-worker training on one
machine; a real cluster sets TF_CONFIG on each host the same way.

    python scripts/launch_local_cluster.py 2 --dataset MNIST --train_dir train_dir/two
    python scripts/launch_local_cluster.py 2 --log_dir /tmp/logs -- --dataset MNIST ...

Everything after the worker count (and this script's own --log_dir,
--timeout, --max_restarts) goes to every trainer. Each task logs to
<log_dir>/<task>.log. Waits for the workers, then stops the parameter
server; exits with the first non-zero worker status.

Tasks that die are started again, as a Kubernetes TFJob with restartPolicy
ExitCode does (up to --max_restarts times in all): a worker or the chief
killed by a signal (or stopped with SIGTERM) is restarted on its own and
rejoins the running cluster; a parameter server that dies takes the
training state with it, so it and every worker are restarted and the chief
resumes from its last checkpoint. A task that exits with an error (status
1-127: a bad flag, a NaN loss) stops the cluster.
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
    parser.add_argument("--max_restarts", type=int, default=3,
                        help="restarts of killed tasks, in all, before the cluster is stopped; "
                             "0: a task that dies stops it (default: %(default)s)")
    args, trainer_args = parser.parse_known_args(argv)
    if trainer_args[:1] == ["--"]:
        trainer_args = trainer_args[1:]
    if args.num_workers < 1:
        parser.error("num_workers must be at least 1")
    return args, trainer_args


def killed(code):
    """A task stopped by a signal (SIGKILL, a node lost, SIGTERM's exit 143),
    which a restart can cure, as against an error exit (1-127)."""
    return code < 0 or code > 128


def how(code):
    return "signal %d" % -code if code < 0 else "status %d" % code


class Cluster(object):
    """The task processes, started (again) with their TF_CONFIG."""

    def __init__(self, cluster, log_dir, trainer_args):
        self.cluster, self.log_dir, self.trainer_args = cluster, log_dir, trainer_args
        self.processes = {}

    def start(self, key):
        job, index = key
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": self.cluster, "task": {"type": job, "index": index}}))
        log_path = os.path.join(self.log_dir, "%s%d.log" % key)
        again = key in self.processes
        with open(log_path, "a" if again else "w") as log_file:
            self.processes[key] = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "trainer.py")] + self.trainer_args,
                env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=os.getcwd())
        print("%s %s %d (%s), log %s" % ("restarted" if again else "started", job, index,
                                         self.cluster[job][index], log_path))
        sys.stdout.flush()

    def workers(self):
        return {k: p for k, p in self.processes.items() if k[0] != "ps"}

    def stop(self, keys, kill=False):
        for key in keys:
            p = self.processes[key]
            if p.poll() is None:
                p.kill() if kill else p.terminate()
        for key in keys:
            p = self.processes[key]
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def supervise(running, args):
    """Waits for the workers, restarting what dies (see the module doc).
    Returns False if the cluster had to be stopped."""
    deadline = time.time() + args.timeout
    restarts = 0
    while any(p.poll() is None for p in running.workers().values()):
        if time.time() > deadline:
            print("timeout: stopping the workers")
            for p in running.workers().values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            return False
        lost = [k for k, p in running.processes.items() if k[0] == "ps" and p.poll() is not None]
        failed = [k for k, p in sorted(running.workers().items()) if p.poll() not in (None, 0)]
        if lost or failed:
            key = (lost or failed)[0]
            code = running.processes[key].returncode
            if restarts >= args.max_restarts or not (lost or killed(code)):
                print("%s %d exited with %s; stopping the cluster" % (key + (how(code),)))
                return False
            restarts += 1
            if lost:
                print("%s %d exited with %s: it held the training state, so every task "
                      "restarts and the chief resumes from its last checkpoint (restart %d of "
                      "%d)" % (key + (how(code), restarts, args.max_restarts)))
                unfinished = [k for k, p in running.workers().items() if p.returncode != 0]
                running.stop(unfinished, kill=True)
                for k in sorted(lost):
                    running.start(k)
                for k in tasks(running.cluster):
                    if k in unfinished:
                        running.start(k)
            else:
                print("%s %d exited with %s; restarting it: it rejoins the running cluster "
                      "(restart %d of %d)" % (key + (how(code), restarts, args.max_restarts)))
                running.start(key)
            continue
        time.sleep(0.5)
    return True


def main(argv=None):
    args, trainer_args = parse_args(sys.argv[1:] if argv is None else argv)
    cluster = cluster_spec(args.num_workers)
    if not os.path.isdir(args.log_dir):
        os.makedirs(args.log_dir)
    running = Cluster(cluster, args.log_dir, trainer_args)
    for key in tasks(cluster):
        running.start(key)
    ok = True
    try:
        ok = supervise(running, args)
    except KeyboardInterrupt:  # Ctrl-C: the chief saves, then everything stops
        for p in running.workers().values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in running.workers().values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                pass
    finally:
        running.stop(list(running.processes))
    status = 0
    workers = running.workers()
    for key in sorted(workers):
        code = workers[key].returncode
        print("%s %d exited with %s" % (key[0], key[1], code))
        if code and not status:
            status = code
    return status or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
