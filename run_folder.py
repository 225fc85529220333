"""Run folders: where a run's checkpoints, config.json, train.log, events
and samples live, and what a resumed run must match.

    config, resume_from, kept, saved = resolve_run(config, explicit)   # resume --train_dir?
    with open_run_folder(run_dir, start_step):                  # the lock, train.log
        write_run_config(run_dir, config, extra, ...)

One process writes a run folder (a single trainer, rank 0 of several cards,
or a cluster's chief); the lock refuses a second.
"""

import collections
import contextlib
import fcntl
import json
import logging
import os
import time

import tensorflow.compat.v1 as tf

import checkpoints
import precision
from flag_table import TrainConfig
from recipes import apply_recipe
from run_config import FIXED_FLAGS, LEGACY_VALUES, load_run_config, save_run_config
from errors import ConfigError
from files import atomic_path
from names import (D_NPU_LOSS_SCALE, LABELED_IDS_FILE, LOCK_FILE, LOG_FILE, RUN_ROOT,
                   dataset_name)
from util import add_log_file

log = logging.getLogger("trainer")

def default_run_dir(config, root=RUN_ROOT, job_id=None):
    """The reference's run folder name under `root`. Cards of one multi-card
    job must agree on it without talking, so they use the job id instead of
    the time."""
    name = "%s-%s_lr_g_%s_d_%s_update_G%dD1-%s" % (
        config.prefix, dataset_name(config.dataset),
        config.learning_rate_g, config.learning_rate_d, config.update_rate,
        "job%s" % job_id if job_id else time.strftime("%Y%m%d-%H%M%S"))
    return os.path.join(root, name)


def resolve_run(config, explicit):
    """Whether --train_dir is a run to resume (from its newest checkpoint that
    loads); a resumed run keeps its saved flags except those given now.
    Returns (config, resume_from, kept, saved): kept maps the flags taken
    from the run folder to where they first came from; saved is its
    config.json (None for a new run), read here once for every check of a
    resumed run."""
    run_dir = config.train_dir
    latest, skipped = None, []
    if run_dir and os.path.isdir(run_dir):
        latest, skipped = checkpoints.newest_loadable(run_dir)
    if latest is None and skipped:
        raise checkpoints.none_loads(run_dir, skipped)
    if latest is None:
        return config, None, {}, None
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
            if name in FIXED_FLAGS and name in saved and saved[name] != merged[name]:
                raise ConfigError("%s was trained with --%s %s; resume it with the same value "
                                  "or start a new --train_dir" % (run_dir, name, saved[name]))
        else:
            merged[name] = saved[name]
            kept[name] = sources.get(name, "the run folder")
    merged["train_dir"] = run_dir
    return TrainConfig(**merged), latest, kept, saved


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


def start_step_of(resume_from):
    """The step a run resumes at: its checkpoint's (0 for a new run)."""
    return checkpoints.step_of(resume_from) if resume_from else 0


def check_resumed_dataset(run_dir, saved, resume_from, info):
    """A resumed run must see images of the shape and classes it was trained
    on (`saved`: its config.json)."""
    try:
        checkpoints.check_fits_dataset(resume_from, saved, info)
    except ConfigError:
        raise ConfigError("%s was trained on %s (%s); %s is %s" % (
            run_dir, saved["dataset"],
            checkpoints.shape_text(saved["image_shape"], saved["num_classes"]), info.name,
            checkpoints.shape_text(info.image_shape, info.num_classes)))


def check_resumed_device(run_dir, saved, checkpoint, device, precision_mode):
    """A run resumes on the kind of device it started on (`saved`: its
    config.json): on the NPU the adapter's loss scaling keeps its own
    variables (and Adam's powers under other names), which a CPU/GPU
    checkpoint, or an NPU one from before that loss scaling, does not hold."""
    saved = saved.get("device_resolved")
    scaled = tf.train.load_checkpoint(checkpoint).has_tensor(D_NPU_LOSS_SCALE)
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


def lock_run_dir(run_dir):
    """Takes the run folder's lock: two trainers writing one run folder
    (say, a script started twice) would interleave checkpoints and logs. The
    lock is an flock on a file inside it, released when the process ends,
    however it ends. Returns the open lock file; raises ConfigError if
    another process holds it."""
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


@contextlib.contextmanager
def open_run_folder(run_dir, start_step):
    """The writer's hold on a run folder for the whole run: creates it, takes
    its lock, logs to its train.log, and removes what a killed save left
    (temporary files, checkpoints newer than `start_step` that do not load)."""
    if not os.path.isdir(run_dir):
        os.makedirs(run_dir)
    lock = lock_run_dir(run_dir)
    log_file = add_log_file(os.path.join(run_dir, LOG_FILE))
    try:
        removed = checkpoints.remove_leftovers(run_dir, start_step)
        if removed:
            log.warning("Removed what an interrupted save left in %s: %s", run_dir,
                        ", ".join(removed))
        yield
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
        lock.close()


def write_run_config(run_dir, config, extra, resume_from, labeled_ids, recipe, sources):
    """Writes config.json (the flags, `extra` facts and where each value came
    from) and, for a new semi-supervised run, labeled_ids.txt; then logs the
    run's first lines: the folder, the recipe, the settings, the config."""
    extra = dict(extra)
    if labeled_ids is not None:
        extra.update(labeled_ids_file=LABELED_IDS_FILE,
                     labels_per_class=config.num_labeled // extra["num_classes"])
        if not resume_from:
            with atomic_path(os.path.join(run_dir, LABELED_IDS_FILE)) as tmp:
                with open(tmp, "w") as f:
                    f.write("".join("%s\n" % i for i in labeled_ids))
    extra.update(recipe=recipe, flag_sources=sources)
    save_run_config(run_dir, config, extra)
    log.info("Run folder: %s (%s)", run_dir,
             "resuming from %s" % resume_from if resume_from else "new run")
    log_settings(recipe, sources, config)
    log.info("Config: %s", json.dumps(dict(config._asdict(), **extra), sort_keys=True))
