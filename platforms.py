"""Where a process trains, as the graph and the loop see it:

    Local     one process on a CPU or GPU
    Ascend    one or several Ascend cards over HCCL (RANK_SIZE), through the adapter
    Cluster   a worker of a TensorFlow cluster (TF_CONFIG or --job_name)

train_graph.py and train_loop.py call a platform at named points (the
shard a process reads, the optimizer wrapper, the ops that keep processes
together, the session, what a step adds to its fetches) and hold no branch
of their own on the device or the cluster, as compare_gan keeps its TPU
details inside its optimizer factories.
"""

import collections
import contextlib
import logging

import tensorflow.compat.v1 as tf

import ascend
import cluster
import precision
from device import session_config

log = logging.getLogger("trainer")

Together = collections.namedtuple("Together", "broadcast agreement sync progress")
Together.__doc__ = """What keeps several processes in step, each None when unused.
Ascend cards: broadcast (rank 0's weights to every card), agreement
(ascend.agreement_ops: the start step and the per-step stop votes). A
TensorFlow cluster: sync (cluster.SyncWrapper aggregating the workers'
gradients), progress (cluster.Progress: which step each worker is at)."""

HCCL_EXEC_TIMEOUT = 1836  # seconds: HCCL's default wait in a collective on the 910


def warn_if_near_hccl_timeout(seconds, step, environ):
    """The other cards wait in their next collective while rank 0 saves and
    uploads; HCCL fails them after HCCL_EXEC_TIMEOUT seconds."""
    timeout = float(environ.get("HCCL_EXEC_TIMEOUT") or HCCL_EXEC_TIMEOUT)
    if seconds > timeout / 2:
        log.warning("Saving step %d took %.0f s while the other cards waited; HCCL stops them "
                    "after HCCL_EXEC_TIMEOUT=%.0f s. Raise it (export HCCL_EXEC_TIMEOUT=%d on "
                    "every card) or save less often (--output_save_step)",
                    step, seconds, timeout, int(4 * seconds))


class Local(object):
    """One process on a CPU or GPU. The other platforms differ from it at the
    points below; what is not overridden there is this.

    device: "cpu" or "gpu" ("npu" for Ascend). rank: ascend.RankInfo (one
    card here). is_chief: whether this process writes the run folder.
    upload_to: an obs:// URL the run folder is copied to, or None."""

    workers = None  # a cluster.ClusterInfo on a cluster
    votes = False  # whether the processes vote on stopping after every step

    def __init__(self, device, upload_to=None):
        self.device = device
        self.rank = ascend.RankInfo(1, 0, 0)
        self.is_chief = True
        self.upload_to = upload_to

    # ---- the graph ----

    @property
    def shard(self):
        """(number of shards, this process's): the part of each stream it reads."""
        return 1, 0

    def variable_placement(self):
        """The device scope variables are created in."""
        return contextlib.nullcontext()

    def stream_start(self, start_step, global_step):
        """Where the input streams start: the resumed step, known at build time."""
        return start_step

    def optimizer_wrapper(self, config):
        """(a function wrapping each optimizer or None, whether train_ops
        scales the loss itself)."""
        return None, precision.needs_loss_scale(config.precision)

    def link_steps(self, global_step, signs, wrapper):
        """Together's agreement, sync and progress, built after the train ops
        (`signs`: divergence sign vectors of D's and G's step; `wrapper`:
        what optimizer_wrapper returned)."""
        return Together(None, None, None, None)

    def broadcast(self, variables):
        """The op setting every process to the writer's `variables`, or None."""
        return None

    def summary_health(self, health):
        """The health scalars ({tag: tensor}) a summary may compute."""
        return health

    def clear_status_op(self):
        """The op to run after a run that was not a training step, or None."""
        return None

    # ---- the loop ----

    def open_session(self, graph, config, stack):
        """The training session, entered into `stack` (contextlib.ExitStack)."""
        session = tf.Session(graph=graph, config=session_config(self.device,
                                                                config.precision_mode))
        return stack.enter_context(cluster.closing_session(session, on_cluster=False))

    def rejoin(self, sess, graph, resume_from):
        """On the writer: the global step of a running training it rejoins
        (its variables are set already), else None."""
        return None

    def join(self, sess, graph, resume_from, wait_log_secs):
        """Sets the variables of a process that does not write the run
        folder: as the writer's start (each card restores the checkpoint;
        rank 0's weights are then broadcast)."""
        sess.run(tf.global_variables_initializer())
        if resume_from:
            graph.saver.restore(sess, resume_from)

    def start(self, sess, together):
        """Runs once the variables are set, before the first step."""

    def log_batch_size(self, batch_size):
        """The batch the log's instances/sec counts."""
        return batch_size

    def d_train(self, train_ops):
        """D's training op on this process."""
        return train_ops.d_train

    @property
    def writes_summaries(self):
        """Whether this process computes the training summaries."""
        return self.is_chief

    def step_fetches(self, together, train_g, asked_to_stop, sess):
        """What a step fetches beyond its own ops ({name: tensor}); "signs"
        replaces the step's divergence signs."""
        return {}

    def after_step(self, sess, together, train_g, step):
        """Runs after each step's session.run."""

    def after_save(self, seconds, step):
        """Runs after the writer saved a checkpoint in `seconds`."""

    def start_line(self, run_dir, resume_from):
        """The log line of a process that does not write the run folder."""
        return None

    def watch(self, sess, together, wait_log_secs):
        """A context around the steps that reports a stalled one (a cluster's)."""
        return contextlib.nullcontext(_NoWatch())


class _NoWatch(object):
    def step(self, step):
        pass


class Ascend(Local):
    """Ascend cards through the adapter: one card, or several over HCCL
    (rank.size > 1), each reading its shard, with gradients all-reduced,
    rank 0's weights broadcast at the start, and a vote after every step so
    that every card stops after the same one. The adapter's loss scaling
    follows the run's --precision_mode (config.precision_mode)."""

    def __init__(self, rank, upload_to=None, environ=None):
        Local.__init__(self, "npu", upload_to)
        self.rank = rank
        self.is_chief = rank.rank == 0
        self.votes = rank.size > 1
        self.environ = environ or {}

    @property
    def shard(self):
        return (self.rank.size, self.rank.rank) if self.rank.size > 1 else (1, 0)

    def optimizer_wrapper(self, config):
        wrapper = ascend.optimizer_wrapper(
            self.rank.size, precision.npu_loss_scaling(config.precision_mode),
            precision.LOSS_SCALE_INITIAL, precision.LOSS_SCALE_PERIOD)
        return wrapper, False  # the adapter scales the loss

    def link_steps(self, global_step, signs, wrapper):
        agreement = ascend.agreement_ops(global_step, *signs) if self.votes else None
        return Together(None, agreement, None, None)

    def broadcast(self, variables):
        return ascend.broadcast_variables_op(variables) if self.rank.size > 1 else None

    def summary_health(self, health):
        # A gradient norm in a summary runs that network's loss-scaled backward pass
        # inside the other network's step: on the 910 an overflow there raises the
        # device-wide float status and skips the other step. (On several cards,
        # rank 0 alone would also all-reduce those gradients, and the cards hang.)
        return dict((tag, v) for tag, v in health.items() if "grad_norm" not in tag)

    def clear_status_op(self):
        return ascend.clear_float_status_op()

    @property
    def writes_summaries(self):
        return self.is_chief or self.votes  # one graph on every card: the same collectives

    def step_fetches(self, together, train_g, asked_to_stop, sess):
        if not self.votes:
            return {}
        if asked_to_stop:
            sess.run(together.agreement.raise_stop)
        return {"signs": together.agreement.stop_g if train_g else together.agreement.stop_d}

    def after_save(self, seconds, step):
        if self.rank.size > 1:
            warn_if_near_hccl_timeout(seconds, step, self.environ)

    def start_line(self, run_dir, resume_from):
        return "Card %d of %d (%s); rank 0 writes %s" % (
            self.rank.rank, self.rank.size,
            "resuming from %s" % resume_from if resume_from else "a new run", run_dir)


class Cluster(Local):
    """A worker of a TensorFlow cluster: variables on the parameter servers,
    gradients aggregated by SyncReplicasOptimizers (the workers move in
    lock-step), each worker reading its shard, and a watch that says whom a
    stalled step waits for. `workers`: its cluster.ClusterInfo."""

    def __init__(self, device, workers, upload_to=None):
        Local.__init__(self, device, upload_to)
        self.workers = workers
        self.is_chief = workers.is_chief

    @property
    def shard(self):
        return self.workers.num_workers, self.workers.worker_index

    def variable_placement(self):
        return tf.device(cluster.device_setter(self.workers))

    def stream_start(self, start_step, global_step):
        # A task may join a run in progress (a restarted worker or chief): its
        # streams start at the global step the iterators read when initialised,
        # after the chief has restored or initialised it.
        return global_step

    def optimizer_wrapper(self, config):
        return cluster.SyncWrapper(self.workers.num_workers), \
            precision.needs_loss_scale(config.precision)

    def link_steps(self, global_step, signs, wrapper):
        with tf.name_scope("cluster"):
            wrapper.build_catch_up()
            progress = cluster.Progress(self.workers, global_step)
        return Together(None, None, wrapper, progress)

    def open_session(self, graph, config, stack):
        # The session closes first (with a time limit after losing the
        # cluster), which releases the threads SyncThreads joins.
        self.sync_threads = stack.enter_context(cluster.SyncThreads())
        session = tf.Session(cluster.start_server(self.workers).target, graph=graph,
                             config=cluster.session_filters(
                                 self.workers, session_config(self.device,
                                                              config.precision_mode)))
        return stack.enter_context(cluster.closing_session(session, on_cluster=True))

    def rejoin(self, sess, graph, resume_from):
        # A chief restarted into a running cluster finds every variable set.
        if len(sess.run(tf.report_uninitialized_variables(tf.global_variables()))):
            return None
        step = sess.run(graph.global_step)
        log.info("Rejoined the running cluster at step %d: the parameter servers kept the "
                 "training state (the newest checkpoint is %s)", step, resume_from or "none")
        return step

    def join(self, sess, graph, resume_from, wait_log_secs):
        # The chief sets the variables on the parameter servers.
        cluster.wait_until_initialized(
            sess, tf.global_variables() + graph.together.progress.variables,
            cluster.task_names(self.workers)[0], wait_log_secs)

    def start(self, sess, together):
        progress = together.progress
        if self.is_chief and not sess.run(progress.initialized):
            sess.run(progress.initializer)
        self.sync_threads.start(sess, together.sync, self.workers)

    def log_batch_size(self, batch_size):
        return batch_size * self.workers.num_workers  # global instances/sec

    def d_train(self, train_ops):
        # The chief alone moves the moving average: once per aggregated step.
        return train_ops.d_train if self.is_chief else train_ops.d_train_without_ema

    def step_fetches(self, together, train_g, asked_to_stop, sess):
        return {"mark": together.progress.mark}  # tells the others this step began

    def after_step(self, sess, together, train_g, step):
        together.sync.catch_up(sess, 1 if train_g else 0, step)

    def start_line(self, run_dir, resume_from):
        return "Worker %d of %d (reads data shard %d); the chief writes %s" % (
            self.workers.worker_index, self.workers.num_workers, self.workers.worker_index,
            run_dir)

    def watch(self, sess, together, wait_log_secs):
        return cluster.Watch(sess, together.progress, wait_log_secs)
