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
server; exits with the first non-zero worker status (128 + N for a worker
killed by signal N, as a shell reports it).

Tasks that die are started again, as a Kubernetes TFJob with restartPolicy
ExitCode does (up to --max_restarts times in all): a worker or the chief
killed by a signal (or stopped with SIGTERM) is restarted on its own and
rejoins the running cluster; a parameter server that dies takes the
training state with it, so it and every worker are restarted and the chief
resumes from its last checkpoint. A task that exits with an error (status
1-127: a bad flag, a NaN loss) stops the cluster.

The ports are chosen outside the kernel's ephemeral range (which the kernel
hands out for outgoing connections and port-0 binds), each checked free; if
a task still finds its port taken ("Could not start gRPC server"), every
task is started again on new ports (up to PORT_RETRIES times, apart from
--max_restarts).
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED_PORTS_FILE = "/proc/sys/net/ipv4/ip_local_reserved_ports"
LOWEST_PORT = 10000  # below it: registered services (5432, 6006, 8080, ...)


def _read_ports(path, default):
    """The ports a /proc/sys/net/ipv4 file lists ("32768 60999" or
    "8080,9100-9102"), or `default` where there is no such file."""
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError):
        return default
    ports = set()
    try:
        for item in re.split(r"[\s,]+", text.strip()):
            if "-" in item:
                low, high = item.split("-", 1)
                ports.update(range(int(low), int(high) + 1))
            elif item:
                ports.add(int(item))
    except ValueError:
        return default
    return ports


def ephemeral_range():
    """(first, last) of the ports the kernel picks itself for outgoing
    connections and port-0 binds; where it does not say (not Linux): from
    Linux's default 32768 to 65535, which holds IANA's 49152-65535 too."""
    ports = _read_ports(EPHEMERAL_RANGE_FILE, None)
    if not ports:
        return 32768, 65535
    return min(ports), max(ports)


def port_is_free(port):
    """True if nothing on this machine holds `port` (any address), as a gRPC
    server binding 0.0.0.0:port needs."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _os_picked_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(count):
    """`count` distinct free ports for servers to bind later. Taken at random
    outside the kernel's ephemeral range and its reserved ports, so that no
    outgoing connection or port-0 bind (another test's server, a browser)
    can be given one between this check and the bind; only a process that
    names the same port itself can still take it (the launcher then retries
    with new ports). Where nothing is left outside that range, ports the OS
    picks (racy: any port-0 bind may be given one before its server binds
    it)."""
    first, last = ephemeral_range()
    reserved = _read_ports(RESERVED_PORTS_FILE, set())
    candidates = [p for p in range(LOWEST_PORT, 65536)
                  if not first <= p <= last and p not in reserved]
    if len(candidates) < 10 * count:
        candidates = [p for p in range(1024, 65536)
                      if not first <= p <= last and p not in reserved]
    # Its own generator: a seeded `random` would give concurrent runs the same ports.
    rng = random.SystemRandom()
    ports = []
    for port in rng.sample(candidates, min(len(candidates), 50 * count + 50)):
        if len(ports) == count:
            break
        if port_is_free(port):
            ports.append(port)
    while len(ports) < count:
        port = _os_picked_port()
        if port not in ports:
            ports.append(port)
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


PORT_RETRIES = 3  # new ports for the cluster when a task finds its port taken
# What a task's log says when its server cannot bind (TensorFlow 1.15 and 2.x).
BIND_FAILURES = ("Could not start gRPC server", "Failed to add port to server")


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
        self.log_starts = {}

    def could_not_bind(self, key):
        """True if the task's last run ended because its port was taken:
        TensorFlow's server failed to start (the trainer exits with 1)."""
        path = os.path.join(self.log_dir, "%s%d.log" % key)
        try:
            with open(path, "rb") as f:
                f.seek(self.log_starts.get(key, 0))
                text = f.read().decode("utf-8", "replace")
        except (IOError, OSError):
            return False
        return any(m in text for m in BIND_FAILURES)

    def start(self, key):
        job, index = key
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": self.cluster, "task": {"type": job, "index": index}}))
        log_path = os.path.join(self.log_dir, "%s%d.log" % key)
        again = key in self.processes
        with open(log_path, "a" if again else "w") as log_file:
            self.log_starts[key] = log_file.tell()  # where this run's output begins
            self.processes[key] = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "trainer.py")] + self.trainer_args,
                env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=os.getcwd())
        print("%s %s %d (%s), log %s" % ("restarted" if again else "started", job, index,
                                         self.cluster[job][index], log_path))
        sys.stdout.flush()

    def workers(self):
        return {k: p for k, p in self.processes.items() if k[0] != "ps"}

    def restart(self, keys):
        """Kills those of `keys` still running, then starts them all again,
        parameter servers first."""
        self.stop(keys, kill=True)
        for key in tasks(self.cluster):
            if key in keys:
                self.start(key)

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
    restarts = port_retries = 0
    while True:
        lost = [k for k, p in running.processes.items() if k[0] == "ps" and p.poll() is not None]
        failed = [k for k, p in sorted(running.workers().items()) if p.poll() not in (None, 0)]
        # Checked before the end of the run: a lone chief may be the one that could not bind.
        unbound = [k for k in sorted(lost) + failed if running.could_not_bind(k)]
        if unbound and port_retries < PORT_RETRIES:
            # Another process took a port between free_ports and the bind.
            port_retries += 1
            old = running.cluster
            running.cluster = cluster_spec(len(tasks(old)) - len(old["ps"]))
            print("%s %d could not bind %s (port taken): starting every task again on new "
                  "ports (retry %d of %d)" % (unbound[0] + (old[unbound[0][0]][unbound[0][1]],
                                                            port_retries, PORT_RETRIES)))
            running.restart([k for k, p in running.processes.items()
                             if k[0] == "ps" or p.returncode != 0])
            continue
        # Done when no worker runs and none failed: a killed last worker (a lone
        # chief) is still restarted below.
        if not failed and not any(p.poll() is None for p in running.workers().values()):
            break
        if time.time() > deadline:
            print("timeout: stopping the workers")
            for p in running.workers().values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            return False
        if lost or failed:
            key = (lost or failed)[0]
            code = running.processes[key].returncode
            if restarts >= args.max_restarts or not (lost or killed(code)):
                used_up = (" and the %d restarts of --max_restarts are used up" % args.max_restarts
                           if lost or killed(code) else "")
                print("%s %d exited with %s%s; stopping the cluster" % (key + (how(code),
                                                                            used_up)))
                return False
            restarts += 1
            if lost:
                print("%s %d exited with %s: it held the training state, so every task "
                      "restarts and the chief resumes from its last checkpoint (restart %d of "
                      "%d)" % (key + (how(code), restarts, args.max_restarts)))
                running.restart(lost + [k for k, p in running.workers().items()
                                        if p.returncode != 0])
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
            status = code if code > 0 else 128 - code  # killed by signal N: 128 + N, as shells say
    return status or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
