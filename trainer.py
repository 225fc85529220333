#!/usr/bin/env python
"""Trains the semi-supervised GAN (SSGAN) of the reference implementation.

    python trainer.py --dataset MNIST
    python trainer.py --dataset CIFAR10 --deconv_type nn --max_training_steps 100000
    python trainer.py --train_dir train_dir/my-run        # resume it
    tensorboard --logdir train_dir

Every --log_step steps a line as the model card prints it:
  [train step 44871] Supervised loss: 0.10064 D loss: 0.55640 G loss: -0.00838
  Accuracy: 1.00000 (0.021 sec/batch, 1546.661 instances/sec)
and every --test_sample_step a `[val   step N]` line on a test batch. The run
folder gets config.json, train.log, checkpoints model-<step>, TensorBoard
events and samples-<step>.png. Ctrl-C (or SIGTERM) saves a checkpoint before
exiting; pointing --train_dir at the folder resumes it.
"""

import collections
import json
import logging
import math
import os
import signal
import sys
import time

import numpy as np

import checkpoints
from config import (LEGACY_VALUES, MODEL_FLAGS, ConfigError, TrainConfig, apply_recipe,
                    check_method_flags, load_run_config, parse_train_config, recipe_help,
                    save_run_config)
from collapse import CollapseDetector
from util import add_log_file, progress_bar, run_tf_command, setup_logging

log = logging.getLogger("trainer")

RUN_ROOT = "train_dir"
NUM_SAMPLES = 64  # the sample grid: 8 x 8 generated images from fixed noise
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


def step_line(split, step, supervised_loss, d_loss, g_loss, accuracy, sec_per_batch,
              batch_size):
    """The model card's log line (the ModelZoo scripts parse it by field)."""
    sec_per_batch = max(sec_per_batch, 1e-6)
    return (" [{split:5s} step {step:4d}] Supervised loss: {s:.5f} D loss: {d:.5f} "
            "G loss: {g:.5f} Accuracy: {a:.5f} ({t:.3f} sec/batch, {r:.3f} instances/sec) "
            ).format(split=split, step=step, s=supervised_loss, d=d_loss, g=g_loss,
                     a=accuracy, t=sec_per_batch, r=batch_size / sec_per_batch)


def default_run_dir(config, root=RUN_ROOT, job_id=None):
    """The reference's run folder name under `root`. Cards of one multi-card
    job must agree on it without talking, so they use the job id instead of
    the time."""
    name = "%s-%s_lr_g_%s_d_%s_update_G%dD1-%s" % (
        config.prefix, os.path.basename(os.path.normpath(config.dataset)).upper(),
        config.learning_rate_g, config.learning_rate_d, config.update_rate,
        "job%s" % job_id if job_id else time.strftime("%Y%m%d-%H%M%S"))
    return os.path.join(root, name)


def resolve_run(config, explicit):
    """Whether --train_dir is a run to resume (from its newest checkpoint that
    loads); a resumed run keeps its saved flags except those given now.
    Returns (config, resume_from, kept): kept maps the flags taken from the
    run folder to where they first came from."""
    run_dir = config.train_dir
    latest, skipped = None, []
    if run_dir and os.path.isdir(run_dir):
        latest, skipped = checkpoints.newest_loadable(run_dir)
    if latest is None and skipped:
        raise checkpoints.none_loads(run_dir, skipped)
    if latest is None:
        return config, None, {}
    saved = load_run_config(run_dir)
    if saved is None:
        raise ConfigError("%s holds checkpoints but no config.json, so it cannot be resumed "
                          "safely; give a new --train_dir" % run_dir)
    if config.checkpoint and "checkpoint" in explicit:
        raise ConfigError("%s already holds checkpoints and would resume from %s; "
                          "--checkpoint only initialises a new run" % (run_dir, latest))
    merged, kept = {}, {}
    sources = saved.get("flag_sources", {})
    for name in TrainConfig._fields:
        if name not in explicit and name not in saved and name in LEGACY_VALUES:
            merged[name] = LEGACY_VALUES[name]
            kept[name] = "what runs before this flag were trained with"
        elif name in explicit or name not in saved:
            merged[name] = getattr(config, name)
            if name in MODEL_FLAGS and name in saved and saved[name] != merged[name]:
                raise ConfigError("%s was trained with --%s %s; resume it with the same value "
                                  "or start a new --train_dir" % (run_dir, name, saved[name]))
        else:
            merged[name] = saved[name]
            kept[name] = sources.get(name, "the run folder")
    merged["train_dir"] = run_dir
    return TrainConfig(**merged), latest, kept


def resolve_settings(config, explicit, kept, info):
    """The run's recipe applied to every flag neither given nor kept from a
    resumed run. Returns (config, recipe text, {flag: where its value came
    from}) for the flags not at their plain defaults."""
    given = set(explicit) | set(kept)
    config, recipe, from_recipe = apply_recipe(
        config, given, info.name, info.image_shape, info.num_classes,
        len(info.splits["train"]))
    sources = {}
    for name in explicit:
        if name in TrainConfig._fields:
            sources[name] = "command line"
    sources.update(kept)
    for name in from_recipe:
        sources[name] = "recipe: " + recipe
    return config, recipe, sources


def log_settings(recipe, sources, config):
    """The first log lines: the recipe and where each value not at its flag
    default came from."""
    log.info("Recipe: %s", recipe)
    by_source = collections.OrderedDict()
    for name in sorted(sources):
        by_source.setdefault(sources[name], []).append(
            "--%s %s" % (name, getattr(config, name)))
    for source, flags in by_source.items():
        log.info("From %s: %s", source, " ".join(flags))


def check_resumed_dataset(run_dir, resume_from, info):
    """A resumed run must see images of the shape and classes it was trained on."""
    saved = load_run_config(run_dir)
    try:
        checkpoints.check_fits_dataset(resume_from, saved, info)
    except ConfigError:
        raise ConfigError("%s was trained on %s (%s); %s is %s" % (
            run_dir, saved["dataset"],
            checkpoints.shape_text(saved["image_shape"], saved["num_classes"]), info.name,
            checkpoints.shape_text(info.image_shape, info.num_classes)))


LOCK_FILE = ".trainer.lock"


def lock_run_dir(run_dir):
    """Takes the run folder's lock: two trainers writing one run folder
    (say, a script started twice) would interleave checkpoints and logs. The
    lock is an flock on a file inside it, released when the process ends,
    however it ends. Returns the open lock file; raises ConfigError if
    another process holds it."""
    import fcntl
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError("%s is being trained by %s; wait for it to finish or stop it "
                          "(Ctrl-C saves) before starting another trainer there"
                          % (run_dir, holder))
    handle.seek(0)
    handle.truncate()
    handle.write("process %d" % os.getpid())
    handle.flush()
    return handle


def check_config(config, cache):
    train, test = cache.splits["train"], cache.splits["test"]
    for split, entry in (("train", train), ("test", test)):
        if entry.num_examples < config.batch_size:
            raise ConfigError("--batch_size %d is larger than the %d examples of the %s split"
                              % (config.batch_size, entry.num_examples, split))
    if config.checkpoint:
        return checkpoints.resolve(config.checkpoint)
    return None


Graph = collections.namedtuple(
    "Graph", "graph global_step losses eval_losses train_ops summary sample_images sample_png "
             "model_variables saver broadcast sync init_ops input_init progress agreement")

INIT_BATCH = 500  # the paper's data-dependent initialisation batch (trainx[:500])


def feature_norm(config, image_shape):
    """The feature-matching distance: the flag, or the paper's per network."""
    if config.feature_matching != "auto":
        return config.feature_matching
    return "l1" if config.arch == "paper" and image_shape[-1] == 3 else "l2"


def build_losses(config, model, global_step, image_shape):
    """The losses of config.method for a model.SSGANModel."""
    import improved_gan
    import model as ssgan
    if config.method == "ssgan":
        return ssgan.build_losses(model, global_step, config.unlabeled_weight)
    weight = config.unlabeled_weight if config.method == "improved_gan" else 0.0
    return improved_gan.build_losses(model, weight, 1.0 - config.label_smoothing,
                                     feature_norm(config, image_shape))


def build_graph(config, info, cache, start_step, rank=None, workers=None, labeled=None,
                device="cpu"):
    """Builds the whole training graph: inputs, model, losses, train ops,
    summaries, samples, saver. `labeled`: positions of the labeled training
    examples (semi-supervised), or None for every label. With rank.size > 1
    (Ascend cards over HCCL) each card reads its shard, gradients are
    all-reduced, and `broadcast` sets every card to rank 0's weights. With a
    TensorFlow cluster (`workers`, a cluster.ClusterInfo) variables live on
    the parameter servers, each worker reads its shard, and `sync`
    aggregates gradients. `device` decides the networks' dtype with
    --precision (the NPU's adapter converts a float32 graph itself)."""
    import contextlib
    import tensorflow.compat.v1 as tf
    import cluster
    import input_ops
    import model as ssgan
    import optimizers
    import precision
    import summaries
    dtype = precision.compute_dtype(config.precision, device)
    num_shards, shard_index = 1, 0
    if rank is not None and rank.size > 1:
        num_shards, shard_index = rank.size, rank.rank
    if workers is not None:
        num_shards, shard_index = workers.num_workers, workers.worker_index
    cfg = ssgan.config_from_flags(config._asdict(), info.image_shape, info.num_classes)
    graph = tf.Graph()
    with graph.as_default(), (tf.device(cluster.device_setter(workers)) if workers
                              else contextlib.nullcontext()):
        tf.set_random_seed(config.seed)
        global_step = tf.train.get_or_create_global_step()
        input_init = []
        with tf.name_scope("inputs"):
            # On a cluster a task may join a run in progress (a restarted worker or
            # chief): its streams start at the global step the iterators read when
            # initialised, after the chief has restored or initialised it.
            skip = start_step if workers is None else global_step

            def stream(batch_size, seed, **kwargs):
                dataset = input_ops.train_dataset(
                    cache, batch_size, seed=seed, num_shards=num_shards,
                    shard_index=shard_index, skip_batches=skip, **kwargs)
                if workers is None:
                    return tf.data.make_one_shot_iterator(dataset).get_next()
                iterator = tf.data.make_initializable_iterator(dataset)
                input_init.append(iterator.initializer)
                return iterator.get_next()
            train_batch = stream(config.batch_size, config.seed)
            labeled_batch = None
            if labeled is not None:
                labeled_batch = stream(config.batch_size, config.seed + 2, subset=labeled)
            matching_batch = None
            if config.method == "improved_gan":  # G's own unlabeled batches, as the paper's
                matching_batch = stream(config.batch_size, config.seed + 4)
            test_batch = tf.data.make_one_shot_iterator(input_ops.train_dataset(
                cache, config.batch_size, split="test", seed=config.seed + 1)).get_next()
        with tf.name_scope("model"):
            matching_images = None if matching_batch is None else matching_batch["image"]
            # The supervised baseline trains on the labeled batch alone: its D
            # passes stay apart so that a step computes neither G nor the others.
            concat_d = config.method != "supervised"
            if labeled_batch is None:
                model = ssgan.build_model(train_batch["image"], train_batch["label"], cfg,
                                          training=True, matching_images=matching_images,
                                          dtype=dtype, concat_d=concat_d)
            else:
                model = ssgan.build_model(labeled_batch["image"], labeled_batch["label"], cfg,
                                          training=True, unlabeled_images=train_batch["image"],
                                          matching_images=matching_images, dtype=dtype,
                                          concat_d=concat_d)
        init_ops = []
        if start_step == 0 and (config.arch == "paper" or config.minibatch_kernels):
            with tf.name_scope("data_init"):
                # One batch: a finite dataset, so its iterator winds down at once.
                init_images = tf.data.make_one_shot_iterator(input_ops.train_dataset(
                    cache, min(INIT_BATCH, cache.splits["train"].num_examples),
                    seed=config.seed + 3).take(1)).get_next()["image"]
                init_ops = ssgan.data_init_ops(
                    cfg, init_images, ssgan.sample_noise(config.batch_size, config.n_z), dtype)
        with tf.name_scope("loss"):
            losses = build_losses(config, model, global_step, info.image_shape)
        distributed = rank is not None and rank.size > 1
        wrap = sync = None
        loss_scaling = precision.needs_loss_scale(config.precision)
        if device == "npu":  # the adapter's all-reduce and loss scaling
            import ascend
            wrap = ascend.optimizer_wrapper(
                rank.size if rank else 1, precision.npu_loss_scaling(config.precision_mode),
                precision.LOSS_SCALE_INITIAL, precision.LOSS_SCALE_PERIOD)
            loss_scaling = False
        progress = agreement = None
        if workers is not None:
            wrap = sync = cluster.SyncWrapper(workers.num_workers)
        with tf.name_scope("train"):
            train_ops = ssgan.build_train_ops(losses, global_step, ssgan.OptimConfig(
                config.learning_rate_d, config.learning_rate_g, optimizers.ADAM_BETA1,
                config.clip_norm, config.lr_decay_start, config.max_training_steps,
                config.historical_averaging, config.ema_decay, loss_scaling, config.optimizer),
                wrap)
        if distributed:
            agreement = ascend.agreement_ops(global_step, losses.d_loss, losses.g_loss,
                                             train_ops.d_train, train_ops.g_train)
        if workers is not None:
            with tf.name_scope("cluster"):
                sync.build_catch_up()
                progress = cluster.Progress(workers, global_step)
        # Validation and samples compute in float32, as evaler.py does.
        with tf.name_scope("eval"):  # D's moving-average weights when kept
            eval_model = ssgan.build_model(test_batch["image"], test_batch["label"], cfg,
                                           training=False,
                                           d_getter=ssgan.ema_getter(train_ops.ema))
            eval_losses = build_losses(config, eval_model, global_step, info.image_shape)
            fixed_z = np.random.RandomState(config.seed).uniform(
                -1, 1, (NUM_SAMPLES, config.n_z)).astype(np.float32)
            sample_images = ssgan.networks(cfg)[1](tf.constant(fixed_z), training=False)
        model_variables = [v for v in tf.global_variables()
                           if v.op.name.startswith((ssgan.D_SCOPE + "/", ssgan.G_SCOPE + "/"))
                           and not v.op.name.endswith("/" + ssgan.EMA_NAME)]
        broadcast = ascend.broadcast_variables_op(tf.global_variables()) if distributed else None
        # At the root name scope: summary tags are the scope plus the name.
        health = summaries.health_scalars(model, train_ops)
        if distributed:  # rank 0 alone writes summaries: the other network's gradient norm
            # would all-reduce its gradients on rank 0 alone, and the cards would hang
            health = dict((tag, v) for tag, v in health.items() if "grad_norm" not in tag)
        summary = summaries.training_summaries(losses, model, train_ops.learning_rate, health)
        sample_png = summaries.encode_grid_png(sample_images)
        # Relative paths in the `checkpoint` file keep a run folder movable.
        saver = tf.train.Saver(max_to_keep=config.max_to_keep, save_relative_paths=True)
    return Graph(graph, global_step, losses, eval_losses, train_ops, summary, sample_images,
                 sample_png, model_variables, saver, broadcast, sync, init_ops, input_init,
                 progress, agreement)


LABELED_IDS_FILE = "labeled_ids.txt"


def labeled_subset(config, info, cache):
    """Positions (in the training split) and ids of the labeled examples for
    --num_labeled, or (None, None) when every label is used."""
    import input_ops
    if not config.num_labeled:
        return None, None
    train = cache.splits["train"]
    if config.num_labeled > train.num_examples:
        raise ConfigError("--num_labeled %d is more than the %d training examples of %s"
                          % (config.num_labeled, train.num_examples, info.name))
    try:
        positions = input_ops.select_labeled(train.labels, config.num_labeled,
                                             info.num_classes, config.data_seed)
    except ValueError as e:
        raise ConfigError("--num_labeled %d on %s: %s" % (config.num_labeled, info.name, e))
    ids = [info.splits["train"][p] for p in positions]
    return positions, ids


def check_labeled_ids(run_dir, ids):
    """A resumed run must train on the labels it started with."""
    path = os.path.join(run_dir, LABELED_IDS_FILE)
    if not os.path.isfile(path):
        raise ConfigError("%s has no %s, so its labeled subset is unknown; start a new "
                          "--train_dir" % (run_dir, LABELED_IDS_FILE))
    with open(path) as f:
        saved = [line.strip() for line in f if line.strip()]
    if saved != list(ids):
        raise ConfigError("%s lists other labeled examples than --data_seed chooses now (has "
                          "the dataset changed?); start a new --train_dir" % path)


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

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: saving a checkpoint after this step, then stopping "
                    "(press Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __enter__(self):
        for signum in EXIT_INTERRUPTED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _save(sess, g, run_dir, step, config):
    from datasets.files import atomic_path
    path = g.saver.save(sess, os.path.join(run_dir, "model"), global_step=step)
    png, images = sess.run([g.sample_png, g.sample_images])
    with atomic_path(os.path.join(run_dir, "samples-%d.png" % step)) as tmp:
        with open(tmp, "wb") as f:
            f.write(png)
    if config.dump_result:
        import h5py
        with atomic_path(os.path.join(run_dir, "g_img_%d.hdf5" % step)) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5["image"] = images
    log.info("Saved checkpoint %s and samples-%d.png", path, step)
    return path


Placement = collections.namedtuple("Placement", "device rank is_chief upload_to workers")
Placement.__doc__ = """Where this process trains: the resolved device, its RankInfo,
whether it writes the run folder (rank 0, the cluster's chief), an obs:// URL
to copy the run folder to (None for local runs), and its cluster.ClusterInfo
(None on one machine)."""


def check_precision(config, device, cpuinfo="/proc/cpuinfo"):
    """--precision on the resolved device: on the NPU it becomes the adapter's
    precision_mode; float16 is refused on the CPU (TensorFlow runs it there
    without oneDNN, an order of magnitude slower than float32). Returns the
    config (precision_mode set on the NPU)."""
    import precision
    precision.check_precision(config.precision)
    if device == "npu":
        return config._replace(precision_mode=precision.npu_precision_mode(
            config.precision, config.precision_mode))
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
    import tensorflow.compat.v1 as tf
    import model as ssgan
    import precision
    dtype = precision.compute_dtype(config.precision, device)
    cfg = ssgan.config_from_flags(config._asdict(), info.image_shape, info.num_classes)

    def probe():
        images = tf.random_uniform([2] + list(info.image_shape), -1.0, 1.0)
        model = ssgan.build_model(images, tf.constant([0, 1]), cfg, training=True, dtype=dtype)
        loss = tf.reduce_sum(model.real_logits) + tf.reduce_sum(model.fake_logits)
        return tf.gradients(loss, tf.trainable_variables())
    precision.check_kernels(dtype, device, probe)


def check_resumed_device(run_dir, checkpoint, device, precision_mode):
    """A run resumes on the kind of device it started on: on the NPU the
    adapter's loss scaling keeps its own variables (and Adam's powers under
    other names), which a CPU/GPU checkpoint, or an NPU one from before that
    loss scaling, does not hold."""
    import tensorflow.compat.v1 as tf
    import precision
    saved = (load_run_config(run_dir) or {}).get("device_resolved")
    scaled = tf.train.load_checkpoint(checkpoint).has_tensor("train/d_optimize/loss_scale")
    if saved and (saved == "npu") != (device == "npu"):
        problem = "was trained on the %s and this process trains on the %s" % (
            saved.upper(), device.upper())
    elif device == "npu" and precision.npu_loss_scaling(precision_mode) and not scaled:
        problem = "was trained without the Ascend adapter's loss scaling this version uses"
    else:
        return
    raise ConfigError("%s %s: the optimizer state does not carry over. Resume it where it was "
                      "trained, or start a new run from its weights: --train_dir <new folder> "
                      "--checkpoint %s" % (run_dir, problem, checkpoint))


def device_text(config, placement):
    """What the 'Device:' log line says (the ModelZoo scripts read its first word)."""
    import precision
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
    import ascend
    import modelarts
    from device import resolve_device
    device = resolve_device(config.device, environ=environ)
    config = check_precision(config, device)
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
    import tensorflow.compat.v1 as tf
    import cluster
    import input_ops
    from datasets import store
    environ = os.environ if environ is None else environ
    workers = cluster.cluster_info(config, environ)
    if workers is not None and workers.task_type == "ps":
        cluster.serve(workers)  # until the process is stopped
        return 0
    config, placement, root = place(config, environ, workers)
    job_id = environ.get("JOB_ID") if placement.rank.size > 1 else None
    config, resume_from, kept = resolve_run(config, explicit)
    if resume_from:
        check_resumed_device(config.train_dir, resume_from, placement.device,
                             config.precision_mode)
    log.info("Device: %s", device_text(config, placement))
    info = store.open_dataset(config.dataset, config.data_dir)
    config, recipe, sources = resolve_settings(config, explicit, kept, info)
    run_dir = config.train_dir or default_run_dir(config, root, job_id)
    config = config._replace(train_dir=run_dir)
    if resume_from:
        check_resumed_dataset(run_dir, resume_from, info)
    check_method_flags(config, explicit)
    if config.arch == "paper":
        import paper_nets
        try:
            paper_nets.check_image_shape(info.image_shape)
        except ValueError as e:
            raise ConfigError("%s: %s" % (info.name, e))
    cache = input_ops.prepare_tfrecords(info)
    init_from = check_config(config, cache)
    if placement.device != "npu":
        check_precision_kernels(config, placement.device, info)
    labeled, labeled_ids = labeled_subset(config, info, cache)
    if resume_from and labeled is not None:
        check_labeled_ids(run_dir, labeled_ids)
    start_step = 0
    if resume_from:
        start_step = int(resume_from.rsplit("-", 1)[1])
    if start_step >= config.max_training_steps:
        log.info("%s is already trained to step %d (--max_training_steps %d)", run_dir,
                 start_step, config.max_training_steps)
        return 0

    g = build_graph(config, info, cache, start_step, placement.rank, workers, labeled,
                    placement.device)
    with g.graph.as_default():  # before anything is written
        if init_from:
            checkpoints.check_shapes(init_from, g.model_variables, checkpoints.dataset_text(info))
        if resume_from:
            checkpoints.check_shapes(resume_from, tf.global_variables(),
                                     checkpoints.dataset_text(info))
    if not placement.is_chief:  # rank 0 / the chief alone writes the run folder
        if workers is not None:
            log.info("Worker %d of %d (reads data shard %d); the chief writes %s",
                     workers.worker_index, workers.num_workers, workers.worker_index, run_dir)
        else:
            log.info("Card %d of %d (%s); rank 0 writes %s", placement.rank.rank,
                     placement.rank.size, "resuming from %s" % resume_from if resume_from
                     else "a new run", run_dir)
        return _run_on(config, g, run_dir, placement, start_step, resume_from, init_from)

    if not os.path.isdir(run_dir):
        os.makedirs(run_dir)
    lock = lock_run_dir(run_dir)
    log_file = add_log_file(os.path.join(run_dir, "train.log"))
    try:
        removed = checkpoints.remove_leftovers(run_dir, start_step)
        if removed:
            log.warning("Removed what an interrupted save left in %s: %s", run_dir,
                        ", ".join(removed))
        extra = {"image_shape": list(info.image_shape), "num_classes": info.num_classes,
                 "dataset_path": os.path.abspath(info.path), "split_source": info.split_source,
                 "num_train": cache.splits["train"].num_examples,
                 "num_test": cache.splits["test"].num_examples,
                 "tensorflow": tf.VERSION, "device_resolved": placement.device,
                 "rank_size": placement.rank.size}
        if labeled is not None:
            extra.update(labeled_ids_file=LABELED_IDS_FILE,
                         labels_per_class=config.num_labeled // info.num_classes)
            if not resume_from:
                from datasets.files import atomic_path
                with atomic_path(os.path.join(run_dir, LABELED_IDS_FILE)) as tmp:
                    with open(tmp, "w") as f:
                        f.write("".join("%s\n" % i for i in labeled_ids))
        extra.update(recipe=recipe, flag_sources=sources)
        save_run_config(run_dir, config, extra)
        log.info("Run folder: %s (%s)", run_dir,
                 "resuming from %s" % resume_from if resume_from else "new run")
        log_settings(recipe, sources, config)
        log.info("Config: %s", json.dumps(dict(config._asdict(), **extra), sort_keys=True))
        return _run_on(config, g, run_dir, placement, start_step, resume_from, init_from)
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
        lock.close()


EXIT_CLUSTER_LOST = 138  # 128 and over: retryable under a TFJob's restartPolicy ExitCode


def _run_on(config, g, run_dir, placement, *args):
    """_run; on a cluster, a task that loses contact with a parameter server
    (which takes the training state with it) exits with EXIT_CLUSTER_LOST
    and a one-line reason, so that the launcher or the job restarts it."""
    import tensorflow.compat.v1 as tf
    try:
        return _run(config, g, run_dir, placement, *args)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as e:
        if placement.workers is None:
            raise
        log.error("Lost contact with the cluster (%s): a parameter server is gone, and the "
                  "training state with it. Exiting with status %d; restarted, every task "
                  "resumes from the chief's last checkpoint in %s",
                  type(e).__name__, EXIT_CLUSTER_LOST, run_dir)
        return EXIT_CLUSTER_LOST


def _initialize(sess, g, run_dir, placement, wait_log_secs, start_step, resume_from, init_from):
    """Sets every variable: rank 0 / the chief restores the run's checkpoint or
    initialises; on a cluster the others wait for it, and a chief restarted
    into a running cluster takes the parameter servers' state as it is (it
    is newer than any checkpoint)."""
    import tensorflow.compat.v1 as tf
    import cluster
    workers, progress = placement.workers, g.progress
    rejoined = placement.is_chief and workers is not None and not len(
        sess.run(tf.report_uninitialized_variables(tf.global_variables())))
    if rejoined:
        start_step = sess.run(g.global_step)
        log.info("Rejoined the running cluster at step %d: the parameter servers kept the "
                 "training state (the newest checkpoint is %s)", start_step,
                 resume_from or "none")
    elif placement.is_chief:
        if resume_from:  # restoring sets every variable: no window of fresh weights
            g.saver.restore(sess, resume_from)
            log.info("Resumed from %s at step %d", resume_from, start_step)
        else:
            sess.run(tf.global_variables_initializer())
            if init_from:
                tf.train.Saver(g.model_variables).restore(sess, init_from)
                log.info("Initialised D and G from %s", init_from)
            elif g.init_ops:
                sess.run(g.init_ops)
                log.info("Data-dependent initialisation of %d weight-normalised layer "
                         "parameters done", len(g.init_ops))
            sess.run(g.train_ops.sync_averages)
    elif workers is not None:
        cluster.wait_until_initialized(sess, tf.global_variables() + progress.variables,
                                       cluster.task_names(workers)[0], wait_log_secs)
    else:
        sess.run(tf.global_variables_initializer())
        if resume_from:
            g.saver.restore(sess, resume_from)
    if placement.is_chief and (rejoined or resume_from):  # --max_to_keep counts them
        g.saver.recover_last_checkpoints(checkpoints.saved_up_to(run_dir, start_step))
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


def _run(config, g, run_dir, placement, start_step, resume_from, init_from):
    import tensorflow.compat.v1 as tf
    import cluster
    import modelarts
    from device import session_config
    bs = config.batch_size
    chief = placement.is_chief

    def save(step):
        """Saves; False (after saying why, with the partial files removed)
        if the files could not be written: a full disk, a file-size limit."""
        started = time.time()
        try:
            _save(sess, g, run_dir, step, config)
        except (tf.errors.OpError, OSError) as e:
            checkpoints.remove_checkpoint(run_dir, step)
            log.error("Could not save the checkpoint of step %d in %s (%s): the disk is full "
                      "or a file-size limit was reached. Stopping; the newest usable checkpoint "
                      "is %s. Free some space, then resume with: python trainer.py --train_dir "
                      "%s", step, run_dir, checkpoints.error_text(e),
                      checkpoints.newest_loadable(run_dir)[0] or "none",
                      run_dir)
            return False
        writer.flush()
        modelarts.upload(run_dir, placement.upload_to)
        if placement.rank.size > 1:
            _warn_if_near_hccl_timeout(time.time() - started, step)
        return True

    workers = placement.workers
    session_conf = session_config(placement.device, config.precision_mode)
    target = ""
    if workers is not None:
        target = cluster.start_server(workers).target
        session_conf = cluster.session_filters(workers, session_conf)
        bs = config.batch_size * workers.num_workers  # the log shows global instances/sec
    session = tf.Session(target, graph=g.graph, config=session_conf)
    # SyncThreads outside the session: tf.Session's exit closes it first (with a
    # time limit after an error), which releases the threads SyncThreads joins.
    with cluster.SyncThreads() as sync_threads, g.graph.as_default(), session as sess:
        _initialize(sess, g, run_dir, placement, config.wait_log_secs, start_step, resume_from,
                    init_from)
        sess.run(tf.local_variables_initializer())
        if g.broadcast is not None:
            sess.run(g.broadcast)
            log.info("Weights broadcast from rank 0 to the %d cards", placement.rank.size)
        agreement = g.agreement
        if agreement is not None:
            _check_start_agreement(sess, agreement, placement.rank, start_step, run_dir)
        sess.run(g.input_init)  # the cluster's streams, at the global step
        if g.sync is not None:
            sync_threads.start(sess, g.sync, workers)
        writer = _NullWriter()
        if chief:
            writer = tf.summary.FileWriter(run_dir, graph=None if resume_from else g.graph)
        step = sess.run(g.global_step)
        if step != start_step and workers is None:
            raise ConfigError("the checkpoint's global step is %d, its name says %d"
                              % (step, start_step))
        losses, eval_losses = g.losses, g.eval_losses
        scalars = [losses.supervised_loss, losses.d_loss, losses.g_loss, losses.accuracy]
        eval_scalars = [eval_losses.supervised_loss, eval_losses.d_loss, eval_losses.g_loss,
                        eval_losses.accuracy]
        detector = None
        if config.method == "improved_gan" and config.unlabeled_weight > 0:
            detector = CollapseDetector()
            scalars = scalars + [losses.loss_unl, losses.feature_matching]
        d_train = g.train_ops.d_train
        if workers is not None and not chief:  # the chief alone moves the average
            d_train = g.train_ops.d_train_without_ema
        last_saved = step
        interval_time, interval_steps = 0.0, 0
        status = 0
        # Several cards stop together, after the step in which any of them was
        # asked to (or lost its loss): one alone would leave the others blocked
        # in a collective until HCCL's timeout.
        stopping = raised = save_failed = False
        watch = cluster.Watch(sess, g.progress, config.wait_log_secs)
        with _StopFlag() as stop, progress_bar(config.max_training_steps, step) as bar, watch:
            while step < config.max_training_steps and not stopping and (
                    agreement is not None or stop.signum is None):
                if step % config.test_sample_step == 0:
                    start = time.time()
                    values = sess.run(eval_scalars)
                    log.info(step_line("val", step, *values, sec_per_batch=time.time() - start,
                                       batch_size=config.batch_size))  # this worker's batch
                train_g = (config.method != "supervised"
                           and step % (config.update_rate + 1) > 0)
                # The trained network's loss every step (to stop on NaN); all four
                # logged values only on the steps that print them.
                logged = step % config.log_step == 0
                fetches = {"train": g.train_ops.g_train if train_g else d_train,
                           "loss": losses.g_loss if train_g else losses.d_loss}
                if logged:
                    fetches["scalars"] = scalars
                if step % config.write_summary_step == 0 and (chief or agreement is not None):
                    fetches["summary"] = g.summary  # on every card: one graph everywhere
                if g.progress is not None:
                    fetches["mark"] = g.progress.mark  # tells the others this step began
                if agreement is not None:
                    if stop.signum is not None and not raised:
                        sess.run(agreement.raise_stop)
                        raised = True
                    fetches["votes"] = agreement.stop_g if train_g else agreement.stop_d
                start = time.time()
                watch.step(step)
                out = sess.run(fetches)
                watch.step(None)
                if g.sync is not None:
                    g.sync.catch_up(sess, 1 if train_g else 0, step)
                interval_time += time.time() - start
                interval_steps += 1
                where, lost = "", not math.isfinite(out["loss"])
                if "votes" in out:
                    lost = out["votes"][0] > 0
                    where = " on %d of the %d cards" % (out["votes"][0], placement.rank.size)
                if lost:
                    log.error("the %s loss became %s at step %d%s; stopping without saving. "
                              "The last good checkpoint is %s. Try lower learning rates "
                              "(--learning_rate_d / --learning_rate_g)",
                              "G" if train_g else "D", "NaN or Inf" if where else out["loss"],
                              step, where,
                              tf.train.latest_checkpoint(run_dir) or "none (no checkpoint yet)")
                    return 1
                stopping = "votes" in out and out["votes"][1] > 0
                if "summary" in out:
                    writer.add_summary(out["summary"], step)
                step += 1
                bar.update(1)
                if logged:
                    log.info(step_line("train", step, *out["scalars"][:4],
                                       sec_per_batch=interval_time / interval_steps,
                                       batch_size=bs))
                    interval_time, interval_steps = 0.0, 0
                    warning = detector and detector.update(step, *out["scalars"][4:])
                    if warning:
                        log.warning(warning)
                if step % config.output_save_step == 0 and chief:
                    if save(step):
                        last_saved = step
                    elif agreement is None or step >= config.max_training_steps:
                        writer.close()
                        return 1
                    else:  # the other cards wait in the next step's collectives: take part
                        save_failed = True  # in it, and ask every card to stop after it
                        sess.run(agreement.raise_stop)
                        raised = True
            # Within the signal handler: a signal must not kill the last save.
            if save_failed or (step != last_saved and chief and not save(step)):
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


def main(argv=None):
    config, explicit, unknown = parse_train_config(
        sys.argv[1:] if argv is None else argv, description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1] + "\n" + recipe_help())
    setup_logging(config.debug)
    if unknown:
        log.warning("Ignoring arguments this trainer does not know (a platform may add its "
                    "own): %s", " ".join(unknown))
    return run_tf_command(lambda: train(config, explicit), config.debug)


if __name__ == "__main__":
    sys.exit(main())
