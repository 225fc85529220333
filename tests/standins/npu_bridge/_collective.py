"""The stand-in's HCCL: collectives between the processes of one job.

Ranks find each other through a folder beside the rank table
(RANK_TABLE_FILE), named by JOB_ID; each call of a collective writes this
rank's value to a file there and waits for every other rank's value of the
same collective and call number. A rank that never makes the call (its
graph or its step differs) leaves the others waiting, as on the real
hardware, until HCCL_EXEC_TIMEOUT seconds (default 1836, HCCL's) pass and
the op fails. HCCL also needs every rank to issue the collectives in the same
order: each value carries its rank's running count of collectives, and
ranks whose counts differ fail at once."""

import json
import os
import threading
import time

import numpy as np

_counts = {}
_lock = threading.Lock()


def _job():
    environ = os.environ
    size = int(environ.get("RANK_SIZE", "1"))
    rank = int(environ.get("RANK_ID", "0"))
    table = environ.get("RANK_TABLE_FILE")
    if size > 1 and not (table and environ.get("JOB_ID")):
        raise RuntimeError("HCCL: RANK_SIZE=%d needs RANK_TABLE_FILE and JOB_ID" % size)
    folder = os.path.join(os.path.dirname(os.path.abspath(table or ".")),
                          ".hccl-%s" % environ.get("JOB_ID", "local"))
    return size, rank, folder, float(environ.get("HCCL_EXEC_TIMEOUT", "1836"))


def _path(folder, key, number, rank):
    return os.path.join(folder, "%s.%d.%d.npz" % (key.replace("/", "."), number, rank))


def exchange(key, arrays):
    """Every rank's `arrays` (a list of numpy arrays) for this call of the
    collective `key`, in rank order."""
    size, rank, folder, timeout = _job()
    if size == 1:
        return [arrays]
    with _lock:  # per job: one process (a test's) may take part in several
        number = _counts.get((folder, key), 0)
        _counts[(folder, key)] = number + 1
        order = _counts.get(folder, 0)  # this rank's collectives so far, of any key
        _counts[folder] = order + 1
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
    mine = _path(folder, key, number, rank)
    with open(mine + ".tmp", "wb") as f:
        np.savez(f, np.int64(order), *arrays)
    os.rename(mine + ".tmp", mine)
    deadline = time.time() + timeout
    values = []
    for other in range(size):
        path = _path(folder, key, number, other)
        while not os.path.exists(path):
            if time.time() > deadline:
                raise RuntimeError("HCCL timeout: rank %d waited %.0f s for rank %d in "
                                   "collective %s (call %d)" % (rank, timeout, other, key, number))
            time.sleep(0.005)
        with np.load(path) as saved:
            if int(saved["arr_0"]) != order:
                raise RuntimeError("HCCL: rank %d issued collective %s (call %d) as its "
                                   "collective %d, rank %d as its %d: the ranks issue "
                                   "collectives in different orders" % (
                                       rank, key, number, order, other, int(saved["arr_0"])))
            values.append([saved["arr_%d" % (i + 1)] for i in range(len(arrays))])
    if number > 0:  # every rank has read this rank's previous call by now
        os.remove(_path(folder, key, number - 1, rank))
    return values


def check_rank_table(environ):
    """HCCL's start, which the adapter makes whenever RANK_TABLE_FILE is set
    and RANK_SIZE > 0 (ge_plugin.cc), one card included: the rank table's
    devices must be the job's RANK_SIZE cards, or the cards it lists wait for
    each other. (A table that lists no devices, as the tests' "{}", passes.)"""
    table, size = environ.get("RANK_TABLE_FILE"), int(environ.get("RANK_SIZE", "0") or 0)
    if not table or size <= 0 or not os.path.isfile(table):
        return
    with open(table) as f:
        servers = json.load(f).get("server_list", [])
    devices = sum(len(server.get("device", [])) for server in servers)
    if devices and devices != size:
        raise RuntimeError("HCCL: the rank table %s lists %d devices and RANK_SIZE is %d; "
                           "their ranks would wait for each other until HCCL's timeout"
                           % (table, devices, size))

