"""The training loop: opens the session on the run's platform and steps D
and G until the stop policy ends the run:

    status = train(config, explicit)   # trainer.py's one call

startup.py resolves and checks the run, train_graph.py builds its graph,
and here each step is one session.run (TrainingSteps.train) whose log lines,
summaries and checkpoints land in the run folder (run_folder.py). Ascend
cards and a TensorFlow cluster's workers differ only behind the run's
platform (platforms.py).
"""

import collections
import contextlib
import logging
import os
import signal
import time

import h5py
import tensorflow.compat.v1 as tf

import checkpoints
import cluster
import modelarts
import run_folder
import startup
import step_log
import train_graph
from collapse import CollapseDetector
from divergence import DivergenceWatch
from errors import ConfigError
from files import atomic_path
from names import CHECKPOINT_PREFIX, generated_images_file, samples_file
from schedule import Schedule
from util import progress_bar

log = logging.getLogger("trainer")

EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_CLUSTER_LOST = 138  # 128 and over: retryable under a TFJob's restartPolicy ExitCode


def train(config, explicit, environ=None):
    """Runs a whole training; returns the exit status."""
    environ = os.environ if environ is None else environ
    workers = cluster.cluster_info(config, environ)
    if workers is not None and workers.task_type == "ps":
        cluster.serve(workers)  # until the process is stopped
        return 0
    setup = startup.resolve(config, explicit, environ, workers)
    config, platform, run_dir = setup.config, setup.platform, setup.run_dir
    if setup.start_step >= config.max_training_steps:
        log.info("%s is already trained to step %d (--max_training_steps %d)", run_dir,
                 setup.start_step, config.max_training_steps)
        return 0
    graph = train_graph.build_train_graph(config, setup.info, setup.cache, setup.start_step,
                                          setup.labeled, platform)
    _check_checkpoint_shapes(setup, graph)
    run = Run(config, graph, run_dir, platform, setup.start_step, setup.resume_from,
              setup.init_from, setup.epoch_steps)
    if not platform.is_chief:  # rank 0 / the chief alone writes the run folder
        log.info("%s", platform.start_line(run_dir, setup.resume_from))
        return _run_on(run)
    with run_folder.open_run_folder(run_dir, setup.start_step):
        run_folder.write_run_config(run_dir, config, run_facts(setup), setup.resume_from,
                                    setup.labeled_ids, setup.recipe, setup.sources)
        return _run_on(run)


def _check_checkpoint_shapes(setup, graph):
    """Before anything is written: the checkpoints a run reads fit its graph."""
    with graph.graph.as_default():
        if setup.init_from:
            checkpoints.check_shapes(setup.init_from, graph.model_variables,
                                     checkpoints.dataset_text(setup.info))
        if setup.resume_from:
            checkpoints.check_shapes(setup.resume_from, tf.global_variables(),
                                     checkpoints.dataset_text(setup.info))


def run_facts(setup):
    """What config.json records beside the flags: the dataset's shape and
    files, and where the run trained."""
    info, splits = setup.info, setup.cache.splits
    return {"image_shape": list(info.image_shape), "num_classes": info.num_classes,
            "dataset_path": os.path.abspath(info.path), "split_source": info.split_source,
            "num_train": splits["train"].num_examples, "num_test": splits["test"].num_examples,
            "tensorflow": tf.VERSION, "device_resolved": setup.platform.device,
            "rank_size": setup.platform.rank.size}


Run = collections.namedtuple(
    "Run", "config graph run_dir platform start_step resume_from init_from epoch_steps")
Run.__doc__ = """One process's training: the config, the TrainGraph, the run
folder, the platform (platforms.*), the step it starts at, the checkpoint
it resumes from (or None), the one of another run that initialises D and G
(--checkpoint, or None), and the steps of one epoch."""


def _run_on(run):
    """_run; on a cluster, a task that loses contact with a parameter server
    (which takes the training state with it) exits with EXIT_CLUSTER_LOST
    and a one-line reason, so that the launcher or the job restarts it."""
    try:
        return _run(run)
    except cluster.LOST_ERRORS as e:
        if run.platform.workers is None:
            raise
        log.error("Lost contact with the cluster (%s): a parameter server is gone, and the "
                  "training state with it. Exiting with status %d; restarted, every task "
                  "resumes from the chief's last checkpoint in %s",
                  type(e).__name__, EXIT_CLUSTER_LOST, run.run_dir)
        return EXIT_CLUSTER_LOST


def _run(run):
    """Opens the session and steps until the stop policy ends the run;
    returns the exit status. One ExitStack owns the cluster's threads, the
    session, the summary writer, the signal handlers, the progress bar and
    the cluster's watch, so that every exit closes them."""
    config, graph, platform = run.config, run.graph, run.platform
    with contextlib.ExitStack() as stack:
        stack.enter_context(graph.graph.as_default())
        sess = platform.open_session(graph.graph, config, stack)
        step = _start(sess, run)
        writer = stack.enter_context(_summary_writer(run))
        policy = stack.enter_context(StopPolicy(run))
        bar = stack.enter_context(progress_bar(config.max_training_steps, step))
        watch = stack.enter_context(platform.watch(sess, graph.together, config.wait_log_secs))
        steps = TrainingSteps(sess, run, writer, watch)
        saving = _Checkpointing(sess, run, writer, step)
        while policy.running(step):
            steps.validate(step)
            train_g, out = steps.train(step, policy.asked)
            diverged = policy.after_step("G" if train_g else "D", step, out["signs"])
            if diverged:
                _log_divergence(diverged, run.run_dir)
                return 1
            steps.record(step, train_g, out)
            step += 1
            bar.update(1)
            if step % config.output_save_step == 0 and platform.is_chief:
                steps.flush_lines()
                if not saving.save(step) and policy.ends_after_failed_save(step):
                    return 1
        policy.signal.announce()  # one that came between steps
        steps.flush_lines()
        # Within the signal handlers: a signal must not kill the last save.
        if policy.save_failed or (platform.is_chief and not saving.save_last(step)):
            return 1
        return policy.finish(step, run.run_dir)


@contextlib.contextmanager
def _summary_writer(run):
    """The run folder's event file on the writing process; elsewhere a
    writer that writes nothing."""
    if not run.platform.is_chief:
        yield _NullWriter()
        return
    writer = tf.summary.FileWriter(run.run_dir,
                                   graph=None if run.resume_from else run.graph.graph)
    try:
        yield writer
    finally:
        writer.close()


class _NullWriter(object):
    """Stands in for the summary writer on cards other than rank 0."""

    def add_summary(self, *args):
        pass

    def flush(self):
        pass


def _log_divergence(diverged, run_dir):
    keep = checkpoints.newest_up_to(run_dir, diverged.since)
    log.error("%s; stopping without saving. Keep %s: the newest checkpoint from before the "
              "trouble%s. Try lower learning rates (--learning_rate_d / --learning_rate_g)",
              diverged.reason, keep or "none (no checkpoint yet)",
              "" if keep == tf.train.latest_checkpoint(run_dir) else
              "; the ones after it hold weights of the skipped steps")


class StopPolicy(object):
    """When the loop stops, and the exit status it ends with.

    It runs to --max_training_steps (0); a signal stops it after the current
    step (130 for SIGINT, 143 for SIGTERM), with a checkpoint; a diverged
    loss stops it at once without saving (1), as does a checkpoint that
    could not be written (1). Where the processes vote (several Ascend
    cards), all stop after the step in which any of them was asked to or
    lost its loss: one alone would leave the others blocked in a collective
    until HCCL's timeout."""

    def __init__(self, run):
        self.max_steps = run.config.max_training_steps
        self.votes = run.platform.votes
        self.signal = _StopFlag()
        self.divergence = DivergenceWatch(run.platform.rank.size if self.votes else 1)
        self.voted = False  # the processes voted to stop
        self.save_failed = False  # a failed save waits for the vote it asked for

    def __enter__(self):
        self.signal.__enter__()
        return self

    def __exit__(self, *exc):
        return self.signal.__exit__(*exc)

    @property
    def asked(self):
        """Whether this process asks the others to stop after the next step."""
        return self.signal.signum is not None or self.save_failed

    def running(self, step):
        """Whether step `step` runs."""
        return step < self.max_steps and not self.voted and (
            self.votes or self.signal.signum is None)

    def after_step(self, network, step, signs):
        """A step of `network` ("D" or "G") showed `signs` (divergence signs,
        then where processes vote, how many asked to stop). Returns a
        divergence.Divergence if the run must end at once, else None."""
        self.signal.announce()
        self.voted = self.votes and signs[4] > 0
        return self.divergence.check(network, step, signs[:4])

    def ends_after_failed_save(self, step):
        """A checkpoint could not be written after `step` steps: whether to
        end at once. Where the processes vote, the others wait in the next
        step's collectives: take part in it, asking every one to stop."""
        if not self.votes or step >= self.max_steps:
            return True
        self.save_failed = True
        return False

    def finish(self, step, run_dir):
        """Logs how the run ended; returns its exit status."""
        if self.signal.signum is None and not self.voted:
            log.info("Training finished at step %d; checkpoints in %s", step, run_dir)
            return 0
        log.info("Stopped at step %d%s; resume with: python trainer.py --train_dir %s",
                 step, " with the other cards" if self.votes else "", run_dir)
        return EXIT_INTERRUPTED[self.signal.signum or signal.SIGTERM]


class TrainingSteps(object):
    """The process's training steps: each one session.run that updates one
    network (Schedule.trains_g), and the log lines, collapse warnings and
    summaries its numbers make."""

    def __init__(self, sess, run, writer, watch):
        self.sess, self.run, self.writer, self.watch = sess, run, writer, watch
        config = run.config
        self.schedule = Schedule.of(config)
        names, self.detector = step_log.NAMES[:4], None
        if config.method == "improved_gan" and config.unlabeled_weight > 0:
            self.detector = CollapseDetector(run.epoch_steps)
            names = step_log.NAMES
        self.lines = step_log.StepLog(names, g_trains=self.schedule.g_trains)
        self.summaries = step_log.OncePerNetwork(self.schedule.networks)
        self.d_train = run.platform.d_train(run.graph.train_ops)
        self.batch_size = run.platform.log_batch_size(config.batch_size)
        self.interval_time, self.interval_steps = 0.0, 0

    def validate(self, step):
        """The [val] line, every --test_sample_step steps."""
        config, graph = self.run.config, self.run.graph
        if step % config.test_sample_step:
            return
        losses = graph.eval.losses
        start = time.time()
        values = self.sess.run([losses.supervised_loss, losses.d_loss, losses.g_loss,
                                losses.accuracy])
        clear_float_status(self.sess, graph)
        log.info(step_line("val", step, *values, sec_per_batch=time.time() - start,
                           batch_size=config.batch_size))  # this worker's batch

    def train(self, step, asked_to_stop):
        """Trains `step`. Returns (whether it trained G, what it fetched:
        "signs" of divergence, "scalars" for the log lines, maybe "summary")."""
        config, graph, platform = self.run.config, self.run.graph, self.run.platform
        train_g = self.schedule.trains_g(step)
        network = "g" if train_g else "d"
        # The trained network's signs of divergence every step; its logged
        # numbers on the steps whose lines need them (step_log).
        wanted = self.lines.side(train_g) if step % config.log_step == 0 else \
            self.lines.wanted(train_g)
        fetches = {"train": graph.train_ops.g_train if train_g else self.d_train,
                   "signs": getattr(graph.signs, network),
                   "scalars": [getattr(graph.losses, name) for name in wanted]}
        if step % config.write_summary_step == 0 and platform.writes_summaries:
            self.summaries.arm()
        if self.summaries.take(network):
            fetches["summary"] = getattr(graph.summary, network)
        fetches.update(platform.step_fetches(graph.together, train_g, asked_to_stop, self.sess))
        start = time.time()
        self.watch.step(step)
        out = self.sess.run(fetches)
        self.watch.step(None)
        platform.after_step(self.sess, graph.together, train_g, step)
        self.interval_time += time.time() - start
        self.interval_steps += 1
        return train_g, out

    def record(self, step, train_g, out):
        """The summary and log lines of `step`, just run (`out`: what train fetched)."""
        if "summary" in out:
            self.writer.add_summary(out["summary"], step)
        if step % self.run.config.log_step == 0:
            self.lines.due(step + 1, self.interval_time / self.interval_steps)
            self.interval_time, self.interval_steps = 0.0, 0
        self._write(self.lines.record(train_g, out["scalars"]))

    def flush_lines(self):
        """Every due line, its missing numbers the latest (before a save, at the end)."""
        self._write(self.lines.flush())

    def _write(self, lines):
        for line in lines:
            log.info(step_line("train", line.step, *line.values[:4],
                               sec_per_batch=line.sec_per_batch, batch_size=self.batch_size))
            warning = self.detector and self.detector.update(line.step, *line.values[4:])
            if warning:
                log.warning(warning)


def _start(sess, run):
    """Everything between opening the session and the first step: the
    variables, the cards' broadcast and agreement, the input streams, the
    cluster's queue runners. Returns the step training starts at."""
    graph, platform, together = run.graph, run.platform, run.graph.together
    _initialize(sess, run)
    sess.run(tf.local_variables_initializer())
    if together.broadcast is not None:
        sess.run(together.broadcast)
        log.info("Weights broadcast from rank 0 to the %d cards", platform.rank.size)
    if together.agreement is not None:
        _check_start_agreement(sess, together.agreement, platform.rank, run.start_step,
                               run.run_dir)
    sess.run(graph.inputs.initializers)  # the cluster's streams, at the global step
    platform.start(sess, together)
    step = sess.run(graph.global_step)
    if step != run.start_step and platform.workers is None:
        raise ConfigError("the checkpoint's global step is %d, its name says %d"
                          % (step, run.start_step))
    clear_float_status(sess, graph)  # after the initialisation's runs
    return step


def _initialize(sess, run):
    """Sets every variable: rank 0 / the chief restores the run's checkpoint
    or initialises (_set_variables), unless it rejoins a cluster that kept
    running (its parameter servers' state is newer than any checkpoint); the
    platform says what the other processes do (platforms.*.join)."""
    graph, platform = run.graph, run.platform
    if not platform.is_chief:
        platform.join(sess, graph, run.resume_from, run.config.wait_log_secs)
        return
    rejoined_at = platform.rejoin(sess, graph, run.resume_from)
    if rejoined_at is None:
        _set_variables(sess, run)
    if rejoined_at is not None or run.resume_from:  # --max_to_keep counts them
        graph.saver.recover_last_checkpoints(checkpoints.saved_up_to(
            run.run_dir, run.start_step if rejoined_at is None else rejoined_at))


def _set_variables(sess, run):
    """The writer's variables: restored from the run's checkpoint, or
    initialised (from --checkpoint's D and G, or the paper's data-dependent
    initialisation)."""
    graph, resume_from = run.graph, run.resume_from
    if resume_from:  # restoring sets every variable: no window of fresh weights
        graph.saver.restore(sess, resume_from)
        log.info("Resumed from %s at step %d", resume_from, run.start_step)
        return
    sess.run(tf.global_variables_initializer())
    if run.init_from:
        tf.train.Saver(graph.model_variables).restore(sess, run.init_from)
        log.info("Initialised D and G from %s", run.init_from)
    elif graph.data_init_ops:
        sess.run(graph.data_init_ops)
        log.info("Data-dependent initialisation of %d weight-normalised layer "
                 "parameters done", len(graph.data_init_ops))
    sess.run(graph.train_ops.sync_averages)


def _check_start_agreement(sess, agreement, rank, start_step, run_dir):
    """Every card must start at rank 0's step: D and G steps alternate by
    the step, so cards that disagree run different collectives and block
    each other until HCCL's timeout. All cards learn of a disagreement and
    stop, each with this error."""
    sess.run(agreement.init)
    root, differ = sess.run(agreement.start)
    if differ:
        raise ConfigError("the cards start at different steps (rank 0 at step %d, card %d at "
                          "step %d from %s; %d of %d cards differ): every card must resume from "
                          "one run folder. Give all cards the same --train_dir "
                          "(scripts/train_full_8p.sh does), or clear every card's output for a "
                          "new run" % (root, rank.rank, start_step, run_dir, differ, rank.size))


class _Checkpointing(object):
    """Saves the run on the writing process: checkpoint and samples, then the
    summaries flushed and the folder uploaded (ModelArts)."""

    def __init__(self, sess, run, writer, step):
        self.sess, self.run, self.writer = sess, run, writer
        self.last_saved = step

    def save_last(self, step):
        """Saves at the end unless `step` is saved already; False if it failed."""
        return step == self.last_saved or self.save(step)

    def save(self, step):
        """Saves; False (after saying why, with the partial files removed)
        if the files could not be written: a full disk, a file-size limit."""
        run = self.run
        started = time.time()
        try:
            save_checkpoint(self.sess, run.graph, run.run_dir, step, run.config.dump_result)
        except (tf.errors.OpError, OSError) as e:
            checkpoints.remove_checkpoint(run.run_dir, step)
            log.error("Could not save the checkpoint of step %d in %s (%s): the disk is full "
                      "or a file-size limit was reached. Stopping; the newest usable checkpoint "
                      "is %s. Free some space, then resume with: python trainer.py --train_dir "
                      "%s", step, run.run_dir, checkpoints.error_text(e),
                      checkpoints.newest_loadable(run.run_dir)[0] or "none",
                      run.run_dir)
            return False
        self.last_saved = step
        self.writer.flush()
        modelarts.upload(run.run_dir, run.platform.upload_to)
        run.platform.after_save(time.time() - started, step)
        return True


class _StopFlag(object):
    """Turns SIGINT / SIGTERM into a request to stop after the current step."""

    def __init__(self):
        self.signum = None
        self._previous = {}
        self._announced = False

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        # Said by announce(), not here: a handler that logs can run inside the
        # write to stderr it interrupted, and Python then refuses the reentrant
        # write, which loses the line in train.log too.
        self.signum = signum

    def announce(self):
        """Logs the request, once, after the step it came in."""
        if self.signum is not None and not self._announced:
            self._announced = True
            log.warning("%s received: saving a checkpoint after this step, then stopping "
                        "(press Ctrl-C again to stop at once)", signal.Signals(self.signum).name)

    def __enter__(self):
        for signum in EXIT_INTERRUPTED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def step_line(split, step, supervised_loss, d_loss, g_loss, accuracy, sec_per_batch,
              batch_size):
    """The model card's log line (the ModelZoo scripts parse it by field)."""
    sec_per_batch = max(sec_per_batch, 1e-6)
    return (" [{split:5s} step {step:4d}] Supervised loss: {s:.5f} D loss: {d:.5f} "
            "G loss: {g:.5f} Accuracy: {a:.5f} ({t:.3f} sec/batch, {r:.3f} instances/sec) "
            ).format(split=split, step=step, s=supervised_loss, d=d_loss, g=g_loss,
                     a=accuracy, t=sec_per_batch, r=batch_size / sec_per_batch)


def save_checkpoint(sess, graph, run_dir, step, dump_result=False):
    """Writes checkpoint model-<step>, samples-<step>.png and (dump_result)
    g_img_<step>.hdf5, each whole or not at all. Returns the checkpoint path."""
    path = graph.saver.save(sess, os.path.join(run_dir, CHECKPOINT_PREFIX), global_step=step)
    png, images = sess.run([graph.eval.sample_png, graph.eval.sample_images])
    clear_float_status(sess, graph)  # an overflow in G's samples must not skip a step
    with atomic_path(os.path.join(run_dir, samples_file(step))) as tmp:
        with open(tmp, "wb") as f:
            f.write(png)
    if dump_result:
        with atomic_path(os.path.join(run_dir, generated_images_file(step))) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5["image"] = images
    log.info("Saved checkpoint %s and %s", path, samples_file(step))
    return path


def clear_float_status(sess, graph):
    """On the NPU, clears the device-wide float status after a run that was
    not a training step (graph.clear_status); elsewhere nothing."""
    if graph.clear_status is not None:
        sess.run(graph.clear_status)
