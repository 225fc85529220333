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
import contextlib
import json
import logging
import threading
import time

import tensorflow.compat.v1 as tf

from errors import ConfigError

log = logging.getLogger(__name__)

ClusterInfo = collections.namedtuple(
    "ClusterInfo", "cluster task_type task_index worker_index num_workers is_chief")
ClusterInfo.__doc__ = """cluster: {job: [host:port]}; worker_index: this task's place among
the workers (chief first), which is also its data shard."""


def _parse_hosts(text):
    return [h.strip() for h in text.split(",") if h.strip()] if text else []


def _workers(cluster):
    """[(job, task index)] of the cluster's workers, chief first: a task's
    place in it is its worker index."""
    return [("chief", i) for i in range(len(cluster.get("chief", [])))] + \
           [("worker", i) for i in range(len(cluster.get("worker", [])))]


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
    workers = _workers(cluster)
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


def local_step(sync_optimizer):
    """The worker's local step of a SyncReplicasOptimizer (a variable on this
    worker): the token its train op last took from the token queue, which
    tells a token left over from a killed worker from the current one.

    SyncReplicasOptimizer (TensorFlow 1.15's and 2.x's compat.v1) keeps it in
    the private `_local_step` and has no public accessor (only
    `local_step_init_op`, which sets it, and `variables()`, which leaves it
    out), so this is the one place that reads the private attribute."""
    return sync_optimizer._local_step


class SyncWrapper(object):
    """Wraps each optimizer in a SyncReplicasOptimizer aggregating all workers'
    gradients, and remembers them for the session set-up: D's first, then
    G's, in the order train_ops.build_train_ops creates them."""

    def __init__(self, num_workers):
        self.num_workers = num_workers
        self.optimizers = []
        self._next_token = []

    def __call__(self, optimizer):
        sync = tf.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=self.num_workers,
            total_num_replicas=self.num_workers, name=optimizer.get_name() + "_sync")
        self.optimizers.append(sync)
        return sync

    def build_catch_up(self):
        """After the train ops: one op per optimizer that takes the next token
        of its queue as the worker's local step (what its train op ends with).

        Each optimizer's readiness check is marked used: the session set-up
        here does not run it, and TensorFlow would log it as an error ("Object
        was never used") when it is collected."""
        for opt in self.optimizers:
            getattr(opt.ready_for_local_init_op, "mark_used", lambda: None)()
        self._next_token = [
            tf.assign(local_step(opt), opt.get_chief_queue_runner().queue.dequeue())
            for opt in self.optimizers]

    def catch_up(self, sess, which, step):
        """After worker step `step` of optimizer `which` (0: D, 1: G): its
        token must be step + 1, the global step the aggregated update made.
        A smaller one was left in the queue for a worker that was killed
        after sending its gradients; taking it would let this worker run a
        step ahead of the others, so it is dropped and the real one awaited."""
        local = local_step(self.optimizers[which])
        token = sess.run(local)
        while token < step + 1:
            log.info("Dropped a token of step %d left by a worker that stopped", token)
            token = sess.run(self._next_token[which])


def session_filters(info, config):
    """Each worker talks to the parameter servers and itself only."""
    config.device_filters.extend(["/job:ps", "/job:%s/task:%d" % (info.task_type,
                                                                  info.task_index)])
    return config


def wait_until_initialized(sess, variables, chief, wait_log_secs):
    """Non-chief workers: block until the chief (its name, for the log) has
    initialised or restored `variables`, saying so every `wait_log_secs`."""
    pending = tf.report_uninitialized_variables(variables)
    start = last_log = time.time()
    while True:
        names = sess.run(pending)
        if not len(names):
            return
        if time.time() - last_log >= wait_log_secs:
            log.warning("Waited %d s for %s to initialise or restore the variables (%d left, "
                        "%s...)", time.time() - start, chief, len(names), names[0].decode())
            last_log = time.time()
        time.sleep(0.5)


LOST_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError)
CLOSE_SECONDS_AFTER_AN_ERROR = 30  # tf.Session's own limit when it exits on an error
CLOSE_SECONDS_AFTER_LOSS = 2


@contextlib.contextmanager
def closing_session(session, on_cluster):
    """`session` as the default session, closed on the way out; after an
    error, within a time limit, as tf.Session's own exit does (closing a
    session whose parameter server is gone waits on the dead server). A task
    that lost its cluster is about to be restarted, so it waits only
    CLOSE_SECONDS_AFTER_LOSS."""
    try:
        with session.as_default():
            yield session
    except BaseException as e:
        lost = on_cluster and isinstance(e, LOST_ERRORS)
        closer = threading.Thread(target=session.close, name="SessionCloseThread", daemon=True)
        closer.start()
        closer.join(CLOSE_SECONDS_AFTER_LOSS if lost else CLOSE_SECONDS_AFTER_AN_ERROR)
        raise
    session.close()


class SyncThreads(object):
    """The SyncReplicasOptimizers' per-session set-up and tear-down, as a
    context around the session (enter it before the session, so that it exits
    after the session has closed).

    `start` sets every worker's local step, and on the chief starts the
    threads that apply the aggregated gradients. No tokens are seeded: a
    worker's step ends only when every worker's gradient of that step has been
    applied, so the workers move in lock-step and agree on whether a step
    trains D or G. (Seeded tokens would let the first worker run ahead alone,
    take the others' tokens, and leave D and G steps out of phase across
    workers, which deadlocks both optimizers.)

    On exit the threads are asked to stop and joined, because a daemon
    thread still inside TensorFlow when Python exits aborts the process
    (status -6, "terminate called after throwing an instance of ''"), which
    would turn a run that finished well into a failure. They stop promptly:
    the session's close has cancelled the gradient take they block in. After
    an error (a parameter server gone) the session's close is time-limited
    and may not reach them, so the wait is short."""

    GRACE_SECONDS = 30
    GRACE_SECONDS_AFTER_AN_ERROR = 2

    def __init__(self):
        self._coordinator = tf.train.Coordinator()
        self._threads = []

    def start(self, sess, sync, info):
        sess.run([opt.local_step_init_op for opt in sync.optimizers])
        if info.is_chief:
            for opt in sync.optimizers:
                sess.run(opt.chief_init_op)
                self._threads += opt.get_chief_queue_runner().create_threads(
                    sess, coord=self._coordinator, daemon=True, start=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self._coordinator.request_stop()
        if not self._threads:
            return
        grace = self.GRACE_SECONDS if exc_type is None else self.GRACE_SECONDS_AFTER_AN_ERROR
        try:
            self._coordinator.join(self._threads, stop_grace_period_secs=grace,
                                   ignore_live_threads=True)
        except Exception as e:  # an error a thread met earlier, re-raised by join
            log.warning("A thread applying the aggregated gradients stopped with: %s", e)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive and exc_type is None:
            log.warning("%d gradient-applying threads did not stop within %d s: %s",
                        len(alive), grace, ", ".join(alive))


def task_names(info):
    """'chief 0 (host:port)', 'worker 0 (host:port)', ... by worker index."""
    return ["%s %d (%s)" % (job, i, info.cluster[job][i]) for job, i in _workers(info.cluster)]


class Progress(object):
    """Where each worker is, kept on the first parameter server: the step
    each worker last started and a heartbeat count it raises every
    HEARTBEAT_SECONDS. A worker whose step waits long reads them to say whom
    it waits for: workers not yet at its step, or silent ones (dead, or
    restarting)."""

    HEARTBEAT_SECONDS = 1.0

    def __init__(self, info, global_step):
        self.info = info
        self.names = task_names(info)
        with tf.device("/job:ps/task:0"):
            # Not in the checkpoint (collections=[]): it describes the processes
            # of this cluster, not the model.
            self.steps = tf.Variable(tf.fill([info.num_workers], tf.constant(-1, tf.int64)),
                                     trainable=False, collections=[], name="cluster_steps")
            self.beats = tf.Variable(tf.zeros([info.num_workers], tf.int64), trainable=False,
                                     collections=[], name="cluster_heartbeats")
        index = [info.worker_index]
        self.mark = tf.scatter_update(self.steps, index,
                                      tf.reshape(tf.cast(global_step, tf.int64), [1]))
        self.beat = tf.scatter_add(self.beats, index, tf.ones([1], tf.int64))
        self.initializer = tf.variables_initializer([self.steps, self.beats])
        self.initialized = tf.logical_and(tf.is_variable_initialized(self.steps),
                                          tf.is_variable_initialized(self.beats))
        self.variables = [self.steps, self.beats]


class Watch(object):
    """A thread beside the training loop: raises this worker's heartbeat, and
    while a step waits longer than `wait_log_secs` for the other workers,
    logs whom it waits for (again every `wait_log_secs`)."""

    def __init__(self, sess, progress, wait_log_secs):
        self._sess, self._progress, self._wait = sess, progress, wait_log_secs
        self._lock = threading.Lock()
        self._step = self._started = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cluster-watch")
        self._thread.daemon = True

    def __enter__(self):
        if self._progress is not None:  # None: not on a cluster, nothing to watch
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def step(self, step):
        """The training loop starts step `step` (None: between steps)."""
        with self._lock:
            self._step, self._started = step, time.time()

    def _loop(self):
        last_beat = last_log = 0.0
        heard = None  # while a step waits: when each worker's heartbeat last moved
        beats_before = None
        while not self._stop.wait(0.25):
            now = time.time()
            try:
                if now - last_beat >= Progress.HEARTBEAT_SECONDS:
                    self._sess.run(self._progress.beat)
                    last_beat = now
                with self._lock:
                    step, started = self._step, self._started
                if step is None or now - started < self._wait / 2:
                    heard = None
                    continue
                steps, beats = self._sess.run([self._progress.steps, self._progress.beats])
                if heard is None:
                    heard = [now] * len(beats)
                else:
                    heard = [now if b != old else t for b, old, t in zip(beats, beats_before,
                                                                         heard)]
                beats_before = beats
                if now - started >= self._wait and now - last_log >= self._wait:
                    log.warning(self.waiting_line(step, now - started, steps,
                                                  [now - t for t in heard]))
                    last_log = now
            except (tf.errors.OpError, RuntimeError) as e:  # a parameter server is gone, or
                log.debug("cluster watch: %s", e)             # the session closed
                if self._stop.wait(Progress.HEARTBEAT_SECONDS):
                    return

    def waiting_line(self, step, waited, steps, silent_for):
        """Whom a step waits for, from the progress table: the workers not at
        this step yet, and those whose heartbeat has stopped (killed, or
        restarting); `silent_for`: seconds since each one's last heartbeat
        was seen."""
        names, me = self._progress.names, self._progress.info.worker_index
        waiting_for = []
        for i, name in enumerate(names):
            reasons = []
            if i != me and steps[i] < step:
                reasons.append("at step %d" % steps[i] if steps[i] >= 0 else "not started")
            if i != me and silent_for[i] > 2.5 * Progress.HEARTBEAT_SECONDS:
                reasons.append("no heartbeat for %d s" % silent_for[i])
            if reasons:
                waiting_for.append("%s, %s" % (name, " and ".join(reasons)))
        if waiting_for:
            return "Step %d has waited %d s for %s" % (step, waited, "; ".join(waiting_for))
        return ("Step %d has waited %d s: every worker has started it; waiting for their "
                "gradients and for %s to apply them" % (step, waited, names[0]))
