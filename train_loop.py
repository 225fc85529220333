"""The training loop: places a run on its device, opens the session, and
steps D and G until --max_training_steps, a signal or a lost loss:

    status = train(config, explicit)   # trainer.py's one call

It logs the model card's lines, writes summaries and saves checkpoints with
sample grids in the run folder (run_folder.py); several Ascend cards or a
TensorFlow cluster's workers step together (ascend.py, cluster.py).
"""

import collections
import logging
import os
import signal
import time

import h5py
import tensorflow.compat.v1 as tf

import ascend
import cann
import checkpoints
import cluster
import input_ops
import model as model_lib
import modelarts
import precision
import run_folder
import step_log
import train_graph
from collapse import CollapseDetector
from config import check_method_flags
from datasets import store
from device import resolve_device, session_config
from divergence import DivergenceWatch
from errors import ConfigError
from files import atomic_path
from names import CHECKPOINT_PREFIX, RUN_ROOT, generated_images_file, samples_file
from util import progress_bar

log = logging.getLogger("trainer")

EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


def step_line(split, step, supervised_loss, d_loss, g_loss, accuracy, sec_per_batch,
              batch_size):
    """The model card's log line (the ModelZoo scripts parse it by field)."""
    sec_per_batch = max(sec_per_batch, 1e-6)
    return (" [{split:5s} step {step:4d}] Supervised loss: {s:.5f} D loss: {d:.5f} "
            "G loss: {g:.5f} Accuracy: {a:.5f} ({t:.3f} sec/batch, {r:.3f} instances/sec) "
            ).format(split=split, step=step, s=supervised_loss, d=d_loss, g=g_loss,
                     a=accuracy, t=sec_per_batch, r=batch_size / sec_per_batch)


class _NullWriter(object):
    """Stands in for the summary writer on cards other than rank 0."""

    def add_summary(self, *args):
        pass

    def flush(self):
        pass

    def close(self):
        pass


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


def trains_g(config, step):
    """Whether `step` updates G (else D): the reference's schedule, G on the
    steps with step % (update_rate + 1) > 0, so with --update_rate 1 one D
    step then one G step, the paper's iteration; never in the supervised
    baseline."""
    return config.method != "supervised" and step % (config.update_rate + 1) > 0


Placement = collections.namedtuple("Placement", "device rank is_chief upload_to workers")
Placement.__doc__ = """Where this process trains: the resolved device, its RankInfo,
whether it writes the run folder (rank 0, the cluster's chief), an obs:// URL
to copy the run folder to (None for local runs), and its cluster.ClusterInfo
(None on one machine)."""


def check_device_precision(config, device, cpuinfo="/proc/cpuinfo", environ=None, root="/"):
    """--precision on the resolved device: on the NPU it becomes the adapter's
    precision_mode, one the installed CANN takes (found from `environ`,
    default os.environ, and the file system under `root`: cann.lookup);
    float16 is refused on the CPU (TensorFlow runs it there without oneDNN,
    an order of magnitude slower than float32). Returns the config
    (precision_mode set on the NPU)."""
    precision.check_precision(config.precision)
    if device == "npu":
        installed = cann.lookup(os.environ if environ is None else environ, root)
        return config._replace(precision_mode=precision.npu_precision_mode(
            config.precision, config.precision_mode, installed))
    if config.precision == "fp16" and device == "cpu":
        raise ConfigError("--precision fp16 is for GPUs (and the NPU): on the CPU TensorFlow "
                          "runs float16 convolutions without oneDNN, ~10x slower than float32. "
                          "Use --precision bf16 on CPUs with AVX-512 BF16 / AMX, else fp32")
    if config.precision == "bf16" and device == "cpu" and \
            precision.cpu_has_native_bf16(cpuinfo) is False:
        log.warning("--precision bf16: this CPU has no bfloat16 arithmetic (no AVX-512 BF16 or "
                    "AMX-BF16 in its flags), so bfloat16 is emulated and likely slower than "
                    "float32; scripts/benchmark.py measures both")
    return config


def check_precision_kernels(config, device, info):
    """On the CPU and GPU, runs the run's networks once at batch 2 in the
    run's dtype (one gradient of D's and G's variables), so that a
    TensorFlow build without bfloat16 / float16 kernels for some op (TF
    1.15's stock CPU build, for one) fails here with a clear message
    instead of mid-run or silently in float32."""
    dtype = precision.compute_dtype(config.precision, device)
    model_config = model_lib.config_from_flags(config._asdict(), info.image_shape,
                                               info.num_classes)

    def probe():
        images = tf.random_uniform([2] + list(info.image_shape), -1.0, 1.0)
        model = model_lib.build_model(images, tf.constant([0, 1]), model_config, training=True,
                                      dtype=dtype)
        loss = tf.reduce_sum(model.unlabeled_logits) + tf.reduce_sum(model.fake_logits)
        return tf.gradients(loss, tf.trainable_variables())
    precision.check_kernels(dtype, device, probe)


def device_text(config, placement):
    """What the 'Device:' log line says (the ModelZoo scripts read its first word)."""
    if placement.device != "npu":
        return "%s (%s)" % (placement.device, config.precision)
    mode = config.precision_mode
    return "npu (card %d of %d; precision_mode %s: %s; %s)" % (
        placement.rank.rank, placement.rank.size, mode, precision.NPU_MODE_MEANING[mode],
        "loss scaling by the adapter's float status" if precision.npu_loss_scaling(mode)
        else "no loss scaling")


def place(config, environ, workers=None):
    """Resolves the device, the card's rank, and the ModelArts data and run
    locations. Returns (config with data_dir set, Placement, run folder root)."""
    device = resolve_device(config.device, environ=environ)
    config = check_device_precision(config, device, environ=environ)
    if device == "npu":
        rank = ascend.rank_info(environ)
        ascend.check_adapter_environment(rank, os.environ)
    else:
        rank = ascend.RankInfo(1, 0, 0)
        if environ.get("RANK_SIZE", "1") not in ("", "1"):
            raise ConfigError("RANK_SIZE=%s: multi-card training runs on Ascend NPUs over HCCL, "
                              "and this process trains on the %s; unset RANK_SIZE"
                              % (environ["RANK_SIZE"], device.upper()))
    if config.data_url:
        cache = config.cache_dir if rank.size == 1 else os.path.join(
            config.cache_dir, "rank%d" % rank.rank)  # cards do not copy over each other
        config = config._replace(data_dir=modelarts.fetch_data(config.data_url, cache))
    root, upload_to = RUN_ROOT, None
    if config.train_url:
        if modelarts.is_obs(config.train_url):
            root, upload_to = os.path.join(config.cache_dir, RUN_ROOT), config.train_url
        else:
            root = config.train_url
    if workers is not None:
        if rank.size > 1:
            raise ConfigError("both RANK_SIZE (Ascend cards over HCCL) and a TensorFlow cluster "
                              "(TF_CONFIG or --job_name) are set; use one")
        if not config.train_dir:
            raise ConfigError("a multi-worker run needs --train_dir: every worker must name the "
                              "same run folder")
        if device == "npu":
            raise ConfigError("a TensorFlow cluster (TF_CONFIG or --job_name) trains on CPUs and "
                              "GPUs; Ascend cards train together over HCCL (RANK_SIZE, "
                              "scripts/train_full_8p.sh)")
        if config.precision == "fp16":
            raise ConfigError("--precision fp16 on a TensorFlow cluster: its loss scaling skips "
                              "overflowing steps, which the cluster's gradient aggregation "
                              "cannot; use --precision fp32 or bf16")
    chief = rank.rank == 0 and (workers is None or workers.is_chief)
    return config, Placement(device, rank, chief, upload_to, workers), root


def train(config, explicit, environ=None):
    """Runs a whole training; returns the exit status."""
    environ = os.environ if environ is None else environ
    workers = cluster.cluster_info(config, environ)
    if workers is not None and workers.task_type == "ps":
        cluster.serve(workers)  # until the process is stopped
        return 0
    config, placement, root = place(config, environ, workers)
    job_id = environ.get("JOB_ID") if placement.rank.size > 1 else None
    config, resume_from, kept = run_folder.resolve_run(config, explicit)
    if placement.device == "npu" and "precision_mode" in kept and config.precision_mode:
        # The run folder's mode may come from a newer CANN than this one.
        precision.check_npu_mode(config.precision_mode, cann.lookup(environ),
                                 "resuming %s" % config.train_dir)
    if resume_from:
        run_folder.check_resumed_device(config.train_dir, resume_from, placement.device,
                                        config.precision_mode)
    log.info("Device: %s", device_text(config, placement))
    info = store.open_dataset(config.dataset, config.data_dir)
    config, recipe, sources = run_folder.resolve_settings(config, explicit, kept, info)
    run_dir = config.train_dir or run_folder.default_run_dir(config, root, job_id)
    config = config._replace(train_dir=run_dir)
    if resume_from:
        run_folder.check_resumed_dataset(run_dir, resume_from, info)
    check_method_flags(config, explicit)
    train_graph.check_image_shape(config, info)
    cache = input_ops.prepare_tfrecords(info)
    train_graph.check_batch_size(config, cache)
    init_from = checkpoints.resolve(config.checkpoint) if config.checkpoint else None
    if placement.device != "npu":
        check_precision_kernels(config, placement.device, info)
    labeled, labeled_ids = train_graph.labeled_subset(config, info, cache)
    if resume_from and labeled is not None:
        run_folder.check_labeled_ids(run_dir, labeled_ids)
    start_step = run_folder.start_step_of(resume_from)
    if start_step >= config.max_training_steps:
        log.info("%s is already trained to step %d (--max_training_steps %d)", run_dir,
                 start_step, config.max_training_steps)
        return 0

    graph = train_graph.build_train_graph(config, info, cache, start_step, placement.rank,
                                          workers, labeled, placement.device)
    with graph.graph.as_default():  # before anything is written
        if init_from:
            checkpoints.check_shapes(init_from, graph.model_variables,
                                     checkpoints.dataset_text(info))
        if resume_from:
            checkpoints.check_shapes(resume_from, tf.global_variables(),
                                     checkpoints.dataset_text(info))
    # D and G steps that go through the training images once (the paper's epoch)
    epoch_steps = cache.splits["train"].num_examples // config.batch_size * (
        1 if config.method == "supervised" else config.update_rate + 1)
    run = Run(config, graph, run_dir, placement, start_step, resume_from, init_from,
              epoch_steps)
    if not placement.is_chief:  # rank 0 / the chief alone writes the run folder
        if workers is not None:
            log.info("Worker %d of %d (reads data shard %d); the chief writes %s",
                     workers.worker_index, workers.num_workers, workers.worker_index, run_dir)
        else:
            log.info("Card %d of %d (%s); rank 0 writes %s", placement.rank.rank,
                     placement.rank.size, "resuming from %s" % resume_from if resume_from
                     else "a new run", run_dir)
        return _run_on(run)

    with run_folder.open_run_folder(run_dir, start_step):
        extra = {"image_shape": list(info.image_shape), "num_classes": info.num_classes,
                 "dataset_path": os.path.abspath(info.path), "split_source": info.split_source,
                 "num_train": cache.splits["train"].num_examples,
                 "num_test": cache.splits["test"].num_examples,
                 "tensorflow": tf.VERSION, "device_resolved": placement.device,
                 "rank_size": placement.rank.size}
        run_folder.write_run_config(run_dir, config, extra, resume_from, labeled_ids, recipe,
                                    sources)
        return _run_on(run)


EXIT_CLUSTER_LOST = 138  # 128 and over: retryable under a TFJob's restartPolicy ExitCode

Run = collections.namedtuple(
    "Run", "config graph run_dir placement start_step resume_from init_from epoch_steps")
Run.__doc__ = """One process's training, as train() resolved it: the config, the
TrainGraph, the run folder, the Placement, the step it starts at, the
checkpoint it resumes from (or None), the one of another run that
initialises D and G (--checkpoint, or None), and the steps of one epoch."""


def _run_on(run):
    """_run; on a cluster, a task that loses contact with a parameter server
    (which takes the training state with it) exits with EXIT_CLUSTER_LOST
    and a one-line reason, so that the launcher or the job restarts it."""
    try:
        return _run(run)
    except cluster.LOST_ERRORS as e:
        if run.placement.workers is None:
            raise
        log.error("Lost contact with the cluster (%s): a parameter server is gone, and the "
                  "training state with it. Exiting with status %d; restarted, every task "
                  "resumes from the chief's last checkpoint in %s",
                  type(e).__name__, EXIT_CLUSTER_LOST, run.run_dir)
        return EXIT_CLUSTER_LOST


def _initialize(sess, run):
    """Sets every variable: rank 0 / the chief restores the run's checkpoint or
    initialises; on a cluster the others wait for it, and a chief restarted
    into a running cluster takes the parameter servers' state as it is (it
    is newer than any checkpoint)."""
    graph, placement, resume_from = run.graph, run.placement, run.resume_from
    workers, progress = placement.workers, graph.together.progress
    start_step = run.start_step
    rejoined = placement.is_chief and workers is not None and not len(
        sess.run(tf.report_uninitialized_variables(tf.global_variables())))
    if rejoined:
        start_step = sess.run(graph.global_step)
        log.info("Rejoined the running cluster at step %d: the parameter servers kept the "
                 "training state (the newest checkpoint is %s)", start_step,
                 resume_from or "none")
    elif placement.is_chief:
        if resume_from:  # restoring sets every variable: no window of fresh weights
            graph.saver.restore(sess, resume_from)
            log.info("Resumed from %s at step %d", resume_from, start_step)
        else:
            sess.run(tf.global_variables_initializer())
            if run.init_from:
                tf.train.Saver(graph.model_variables).restore(sess, run.init_from)
                log.info("Initialised D and G from %s", run.init_from)
            elif graph.data_init_ops:
                sess.run(graph.data_init_ops)
                log.info("Data-dependent initialisation of %d weight-normalised layer "
                         "parameters done", len(graph.data_init_ops))
            sess.run(graph.train_ops.sync_averages)
    elif workers is not None:
        cluster.wait_until_initialized(sess, tf.global_variables() + progress.variables,
                                       cluster.task_names(workers)[0],
                                       run.config.wait_log_secs)
    else:
        sess.run(tf.global_variables_initializer())
        if resume_from:
            graph.saver.restore(sess, resume_from)
    if placement.is_chief and (rejoined or resume_from):  # --max_to_keep counts them
        graph.saver.recover_last_checkpoints(checkpoints.saved_up_to(run.run_dir, start_step))
    if placement.is_chief and progress is not None and not sess.run(progress.initialized):
        sess.run(progress.initializer)


HCCL_EXEC_TIMEOUT = 1836  # seconds: HCCL's default wait in a collective on the 910


def _warn_if_near_hccl_timeout(seconds, step, environ=os.environ):
    """The other cards wait in their next collective while rank 0 saves and
    uploads; HCCL fails them after HCCL_EXEC_TIMEOUT seconds."""
    timeout = float(environ.get("HCCL_EXEC_TIMEOUT") or HCCL_EXEC_TIMEOUT)
    if seconds > timeout / 2:
        log.warning("Saving step %d took %.0f s while the other cards waited; HCCL stops them "
                    "after HCCL_EXEC_TIMEOUT=%.0f s. Raise it (export HCCL_EXEC_TIMEOUT=%d on "
                    "every card) or save less often (--output_save_step)",
                    step, seconds, timeout, int(4 * seconds))


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


def _start(sess, run, sync_threads):
    """Everything between opening the session and the first step: the
    variables, the cards' broadcast and agreement, the input streams, the
    cluster's queue runners. Returns the step training starts at."""
    graph, placement, together = run.graph, run.placement, run.graph.together
    _initialize(sess, run)
    sess.run(tf.local_variables_initializer())
    if together.broadcast is not None:
        sess.run(together.broadcast)
        log.info("Weights broadcast from rank 0 to the %d cards", placement.rank.size)
    if together.agreement is not None:
        _check_start_agreement(sess, together.agreement, placement.rank, run.start_step,
                               run.run_dir)
    sess.run(graph.inputs.initializers)  # the cluster's streams, at the global step
    if together.sync is not None:
        sync_threads.start(sess, together.sync, placement.workers)
    step = sess.run(graph.global_step)
    if step != run.start_step and placement.workers is None:
        raise ConfigError("the checkpoint's global step is %d, its name says %d"
                          % (step, run.start_step))
    return step


class _Checkpointing(object):
    """Saves the run on the writing process: checkpoint and samples, then the
    summaries flushed and the folder uploaded (ModelArts)."""

    def __init__(self, sess, run, writer):
        self.sess, self.run, self.writer = sess, run, writer

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
        self.writer.flush()
        modelarts.upload(run.run_dir, run.placement.upload_to)
        if run.placement.rank.size > 1:
            _warn_if_near_hccl_timeout(time.time() - started, step)
        return True


def _run(run):
    config, graph, run_dir, placement = run.config, run.graph, run.run_dir, run.placement
    chief, workers, together = placement.is_chief, placement.workers, graph.together
    agreement = together.agreement
    batch_size = config.batch_size
    session_conf = session_config(placement.device, config.precision_mode)
    target = ""
    if workers is not None:
        target = cluster.start_server(workers).target
        session_conf = cluster.session_filters(workers, session_conf)
        batch_size = config.batch_size * workers.num_workers  # the log shows global instances/sec
    session = tf.Session(target, graph=graph.graph, config=session_conf)
    # SyncThreads outside the session: the session closes first (with a time
    # limit after losing the cluster), which releases the threads SyncThreads joins.
    with cluster.SyncThreads() as sync_threads, graph.graph.as_default(), \
            cluster.closing_session(session, workers is not None) as sess:
        step = _start(sess, run, sync_threads)
        writer = _NullWriter()
        if chief:
            writer = tf.summary.FileWriter(run_dir, graph=None if run.resume_from else graph.graph)
        checkpointing = _Checkpointing(sess, run, writer)
        losses, eval_losses = graph.losses, graph.eval.losses
        eval_scalars = [eval_losses.supervised_loss, eval_losses.d_loss, eval_losses.g_loss,
                        eval_losses.accuracy]
        divergence_watch = DivergenceWatch(placement.rank.size if agreement is not None else 1)
        clear_float_status(sess, graph)  # after the initialisation's runs
        names = step_log.NAMES[:4]
        detector = None
        if config.method == "improved_gan" and config.unlabeled_weight > 0:
            detector = CollapseDetector(run.epoch_steps)
            names = step_log.NAMES
        trained = train_graph.trained_networks(config)
        lines = step_log.StepLog(names, g_trains="g" in trained)
        summaries_due = set()

        def write_lines(done):
            for line in done:
                log.info(step_line("train", line.step, *line.values[:4],
                                   sec_per_batch=line.sec_per_batch, batch_size=batch_size))
                warning = detector and detector.update(line.step, *line.values[4:])
                if warning:
                    log.warning(warning)
        d_train = graph.train_ops.d_train
        if workers is not None and not chief:  # the chief alone moves the average
            d_train = graph.train_ops.d_train_without_ema
        last_saved = step
        interval_time, interval_steps = 0.0, 0
        status = 0
        # Several cards stop together, after the step in which any of them was
        # asked to (or lost its loss): one alone would leave the others blocked
        # in a collective until HCCL's timeout.
        stopping = raised = save_failed = False
        watch = cluster.Watch(sess, together.progress, config.wait_log_secs)
        with _StopFlag() as stop, progress_bar(config.max_training_steps, step) as bar, watch:
            while step < config.max_training_steps and not stopping and (
                    agreement is not None or stop.signum is None):
                if step % config.test_sample_step == 0:
                    start = time.time()
                    values = sess.run(eval_scalars)
                    clear_float_status(sess, graph)
                    log.info(step_line("val", step, *values, sec_per_batch=time.time() - start,
                                       batch_size=config.batch_size))  # this worker's batch
                train_g = trains_g(config, step)
                # The trained network's signs of divergence every step; its logged
                # numbers on the steps whose lines need them (step_log).
                logged = step % config.log_step == 0
                wanted = lines.side(train_g) if logged else lines.wanted(train_g)
                fetches = {"train": graph.train_ops.g_train if train_g else d_train,
                           "signs": graph.signs.g if train_g else graph.signs.d,
                           "scalars": [getattr(losses, n) for n in wanted]}
                if step % config.write_summary_step == 0 and (chief or agreement is not None):
                    summaries_due = set(trained)  # on every card: one graph everywhere
                side = "g" if train_g else "d"
                if side in summaries_due:  # each network's in its first step from here
                    fetches["summary"] = getattr(graph.summary, side)
                    summaries_due.discard(side)
                if together.progress is not None:
                    fetches["mark"] = together.progress.mark  # tells the others this step began
                if agreement is not None:
                    if stop.signum is not None and not raised:
                        sess.run(agreement.raise_stop)
                        raised = True
                    fetches["signs"] = agreement.stop_g if train_g else agreement.stop_d
                start = time.time()
                watch.step(step)
                out = sess.run(fetches)
                watch.step(None)
                stop.announce()
                if together.sync is not None:
                    together.sync.catch_up(sess, 1 if train_g else 0, step)
                interval_time += time.time() - start
                interval_steps += 1
                diverged = divergence_watch.check("G" if train_g else "D", step,
                                                  out["signs"][:4])
                if diverged:
                    keep = checkpoints.newest_up_to(run_dir, diverged.since)
                    log.error("%s; stopping without saving. Keep %s: the newest checkpoint "
                              "from before the trouble%s. Try lower learning rates "
                              "(--learning_rate_d / --learning_rate_g)",
                              diverged.reason, keep or "none (no checkpoint yet)",
                              "" if keep == tf.train.latest_checkpoint(run_dir) else
                              "; the ones after it hold weights of the skipped steps")
                    return 1
                stopping = agreement is not None and out["signs"][4] > 0
                if "summary" in out:
                    writer.add_summary(out["summary"], step)
                step += 1
                bar.update(1)
                if logged:
                    lines.due(step, interval_time / interval_steps)
                    interval_time, interval_steps = 0.0, 0
                write_lines(lines.record(train_g, out["scalars"]))
                if step % config.output_save_step == 0 and chief:
                    write_lines(lines.flush())
                    if checkpointing.save(step):
                        last_saved = step
                    elif agreement is None or step >= config.max_training_steps:
                        writer.close()
                        return 1
                    else:  # the other cards wait in the next step's collectives: take part
                        save_failed = True  # in it, and ask every card to stop after it
                        sess.run(agreement.raise_stop)
                        raised = True
            stop.announce()  # one that came between steps
            write_lines(lines.flush())
            # Within the signal handler: a signal must not kill the last save.
            if save_failed or (step != last_saved and chief and not checkpointing.save(step)):
                writer.close()
                return 1
        writer.close()
        if stop.signum is not None or stopping:
            log.info("Stopped at step %d%s; resume with: python trainer.py --train_dir %s",
                     step, " with the other cards" if agreement is not None else "", run_dir)
            status = EXIT_INTERRUPTED[stop.signum or signal.SIGTERM]
        else:
            log.info("Training finished at step %d; checkpoints in %s", step, run_dir)
    return status
