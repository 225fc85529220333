"""Multi-worker training on TensorFlow's own distributed runtime.

A cluster is described by the standard TF_CONFIG environment variable
  {"cluster": {"chief": [...], "worker": [...], "ps": [...]},
   "task": {"type": "worker", "index": 1}}
or by --job_name / --task_index / --ps_hosts / --worker_hosts. Variables live
on the parameter servers; each worker (the chief counts as worker 0) reads its
own shard of the data; the gradients of D and of G are each aggregated over
all workers (one SyncReplicasOptimizer per optimizer), so the workers step
in lock-step, D and G alternating as on one machine.
"""

import collections
import json
import logging
import time

import tensorflow.compat.v1 as tf

from config import ConfigError

log = logging.getLogger(__name__)

ClusterInfo = collections.namedtuple(
    "ClusterInfo", "cluster task_type task_index worker_index num_workers is_chief")
ClusterInfo.__doc__ = """cluster: {job: [host:port]}; worker_index: this task's place among
the workers (chief first), which is also its data shard."""


def _parse_hosts(text):
    return [h.strip() for h in text.split(",") if h.strip()] if text else []


def cluster_info(config, environ):
    """ClusterInfo from the flags or TF_CONFIG, or None for a single machine."""
    if config.job_name or config.ps_hosts or config.worker_hosts:
        if not (config.job_name and config.worker_hosts):
            raise ConfigError("--job_name, --task_index and --worker_hosts (and --ps_hosts) go "
                              "together")
        cluster = {"worker": _parse_hosts(config.worker_hosts)}
        if config.ps_hosts:
            cluster["ps"] = _parse_hosts(config.ps_hosts)
        task_type, task_index = config.job_name, config.task_index
    elif environ.get("TF_CONFIG"):
        try:
            tf_config = json.loads(environ["TF_CONFIG"])
            cluster = {k: list(v) for k, v in tf_config["cluster"].items()}
            task_type = tf_config["task"]["type"]
            task_index = int(tf_config["task"].get("index", 0))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError("TF_CONFIG is not valid (%s: %s); expected {\"cluster\": {\"chief\": "
                              "[...], \"worker\": [...], \"ps\": [...]}, \"task\": {\"type\": ..., "
                              "\"index\": ...}}" % (type(e).__name__, e))
    else:
        return None
    if task_type not in cluster or not 0 <= task_index < len(cluster[task_type]):
        raise ConfigError("task %s:%d is not in the cluster %s" % (task_type, task_index, cluster))
    if not cluster.get("ps"):
        raise ConfigError("a multi-worker cluster needs at least one parameter server (ps)")
    workers = [("chief", i) for i in range(len(cluster.get("chief", [])))] + \
              [("worker", i) for i in range(len(cluster.get("worker", [])))]
    worker_index = workers.index((task_type, task_index)) if task_type != "ps" else None
    return ClusterInfo(cluster, task_type, task_index, worker_index, len(workers),
                       worker_index == 0)


def start_server(info):
    spec = tf.train.ClusterSpec(info.cluster)
    return tf.train.Server(spec, job_name=info.task_type, task_index=info.task_index)


def serve(info):
    """A parameter server: serves variables until the process is stopped."""
    server = start_server(info)
    log.info("Parameter server %d of %d serving at %s", info.task_index + 1,
             len(info.cluster["ps"]), info.cluster["ps"][info.task_index])
    server.join()


def device_setter(info):
    """Variables round-robin on the parameter servers, the rest on this worker."""
    return tf.train.replica_device_setter(
        worker_device="/job:%s/task:%d" % (info.task_type, info.task_index),
        cluster=tf.train.ClusterSpec(info.cluster))


class SyncWrapper(object):
    """Wraps each optimizer in a SyncReplicasOptimizer aggregating all workers'
    gradients, and remembers them for the session set-up."""

    def __init__(self, num_workers):
        self.num_workers = num_workers
        self.optimizers = []

    def __call__(self, optimizer):
        sync = tf.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=self.num_workers,
            total_num_replicas=self.num_workers, name=optimizer.get_name() + "_sync")
        self.optimizers.append(sync)
        return sync


def session_filters(info, config):
    """Each worker talks to the parameter servers and itself only."""
    config.device_filters.extend(["/job:ps", "/job:%s/task:%d" % (info.task_type,
                                                                 info.task_index)])
    return config


def wait_until_initialized(sess, variables, timeout=600):
    """Non-chief workers: block until the chief has initialised or restored."""
    pending = tf.report_uninitialized_variables(variables)
    start = time.time()
    while True:
        names = sess.run(pending)
        if not len(names):
            return
        if time.time() - start > timeout:
            raise ConfigError("the chief has not initialised %s after %d s; is it running?"
                              % (", ".join(n.decode() for n in names[:3]), timeout))
        log.debug("waiting for the chief to initialise %d variables (%s...)", len(names),
                  names[0].decode())
        time.sleep(0.5)


def start_sync(sess, sync, info, coordinator):
    """The SyncReplicasOptimizers' per-session set-up: every worker sets its
    local step; the chief starts the threads that apply the aggregated
    gradients.

    No tokens are seeded: a worker's step ends only when every worker's
    gradient of that step has been applied, so the workers move in lock-step
    and agree on whether a step trains D or G. (Seeded tokens would let the
    first worker run ahead alone, take the others' tokens, and leave D and G
    steps out of phase across workers, which deadlocks both optimizers.)"""
    sess.run([opt.local_step_init_op for opt in sync.optimizers])
    if info.is_chief:
        for opt in sync.optimizers:
            sess.run(opt.chief_init_op)
            opt.get_chief_queue_runner().create_threads(sess, coord=coordinator, daemon=True,
                                                        start=True)
