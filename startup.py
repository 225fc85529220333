"""Start-up: from the parsed flags to a run that is checked before any work.

    setup = resolve(config, explicit, environ, workers)   # a Setup, or ConfigError

reads, in this order: where the process trains (device, card, cluster,
ModelArts locations), the run folder to resume (its config.json read once),
the dataset, the recipe's defaults, the rules between flags, the TFRecord
cache, the batch size and labeled subset, and whether the float kernels of
--precision exist. Every problem is a ConfigError (or DatasetError) naming
the flag or the file, raised before the graph is built.
"""

import collections
import logging
import os

import tensorflow.compat.v1 as tf

import ascend
import cann
import checkpoints
import input_ops
import model as model_lib
import modelarts
import paper_nets
import platforms
import precision
import run_folder
from flag_rules import check_method_flags
from datasets import store
from device import resolve_device
from errors import ConfigError
from names import RUN_ROOT
from schedule import Schedule

log = logging.getLogger("trainer")

Setup = collections.namedtuple(
    "Setup", "config platform run_dir resume_from init_from start_step info cache labeled "
             "labeled_ids recipe sources epoch_steps")
Setup.__doc__ = """A resolved run: the finished config, the platforms.* it trains
on, its run folder, the checkpoint it resumes from (or None), the one of
another run that initialises D and G (--checkpoint, or None), the step it
starts at, the dataset (store.DatasetInfo) and its TFRecord cache, the
labeled positions and ids (None for every label), the recipe text and where
each flag's value came from, and the steps of one epoch."""


def resolve(config, explicit, environ, workers=None):
    """The run the flags (`explicit`: those given on the command line) ask
    for in `environ`, checked; `workers`: the cluster.ClusterInfo of a
    cluster's worker, else None."""
    config, platform, root = place(config, environ, workers)
    config, resume_from, kept, saved = run_folder.resolve_run(config, explicit)
    if platform.device == "npu" and "precision_mode" in kept and config.precision_mode:
        # The run folder's mode may come from a newer CANN than this one.
        precision.check_npu_mode(config.precision_mode, cann.lookup(environ),
                                 "resuming %s" % config.train_dir)
    if resume_from:
        run_folder.check_resumed_device(config.train_dir, saved, resume_from, platform.device,
                                        config.precision_mode)
    log.info("Device: %s", device_text(config, platform))
    info = store.open_dataset(config.dataset, config.data_dir)
    config, recipe, sources = run_folder.resolve_settings(config, explicit, kept, info)
    job_id = environ.get("JOB_ID") if platform.rank.size > 1 else None
    run_dir = config.train_dir or run_folder.default_run_dir(config, root, job_id)
    config = config._replace(train_dir=run_dir)
    if resume_from:
        run_folder.check_resumed_dataset(run_dir, saved, resume_from, info)
    check_method_flags(config, explicit)
    check_image_shape(config, info)
    cache = input_ops.prepare_tfrecords(info)
    check_batch_size(config, cache)
    init_from = checkpoints.resolve(config.checkpoint) if config.checkpoint else None
    if platform.device != "npu":
        check_precision_kernels(config, platform.device, info)
    labeled, labeled_ids = labeled_subset(config, info, cache)
    if resume_from and labeled is not None:
        run_folder.check_labeled_ids(run_dir, labeled_ids)
    epoch_steps = Schedule.of(config).epoch_steps(cache.splits["train"].num_examples,
                                                  config.batch_size)
    return Setup(config, platform, run_dir, resume_from, init_from,
                 run_folder.start_step_of(resume_from), info, cache, labeled, labeled_ids,
                 recipe, sources, epoch_steps)


def place(config, environ, workers=None):
    """Resolves the device, the card's rank, and the ModelArts data and run
    locations. Returns (config with data_dir set, the platform, the run
    folders' root)."""
    device = resolve_device(config.device, environ=environ)
    config = check_device_precision(config, device, environ=environ)
    rank = ascend.RankInfo(1, 0, 0)
    if device == "npu":
        rank = ascend.rank_info(environ)
        ascend.check_adapter_environment(rank, os.environ)
    elif environ.get("RANK_SIZE", "1") not in ("", "1"):
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
        check_cluster(config, device, rank)
        return config, platforms.Cluster(device, workers, upload_to), root
    if device == "npu":
        return config, platforms.Ascend(rank, upload_to, environ), root
    return config, platforms.Local(device, upload_to), root


def check_cluster(config, device, rank):
    """What a TensorFlow cluster's worker cannot combine with."""
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


def check_device_precision(config, device, cpuinfo="/proc/cpuinfo", environ=None, root="/"):
    """--precision on the resolved device: on the NPU it becomes the adapter's
    precision_mode, one the installed CANN takes (found from `environ`,
    default os.environ, and the file system under `root`: cann.lookup);
    float16 is refused on the CPU (TensorFlow runs it there without oneDNN,
    an order of magnitude slower than float32). Returns the config
    (precision_mode set on the NPU)."""
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


def device_text(config, platform):
    """What the 'Device:' log line says (the ModelZoo scripts read its first word)."""
    if platform.device != "npu":
        return "%s (%s)" % (platform.device, config.precision)
    mode = config.precision_mode
    return "npu (card %d of %d; precision_mode %s: %s; %s)" % (
        platform.rank.rank, platform.rank.size, mode, precision.NPU_MODE_MEANING[mode],
        "loss scaling by the adapter's float status" if precision.npu_loss_scaling(mode)
        else "no loss scaling")


def check_image_shape(config, info):
    """The paper's networks take 28x28x1 or 32x32x3 images only."""
    if config.arch != "paper":
        return
    try:
        paper_nets.check_image_shape(info.image_shape)
    except ValueError as e:
        raise ConfigError("%s: %s" % (info.name, e))


def check_batch_size(config, cache):
    """Every batch has config.batch_size examples: both splits must hold as many."""
    for split in ("train", "test"):
        if cache.splits[split].num_examples < config.batch_size:
            raise ConfigError("--batch_size %d is larger than the %d examples of the %s split"
                              % (config.batch_size, cache.splits[split].num_examples, split))


def labeled_subset(config, info, cache):
    """Positions (in the training split) and ids of the labeled examples for
    --num_labeled, or (None, None) when every label is used."""
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
