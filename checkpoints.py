"""Finding, checking and restoring checkpoints of training runs.

A run folder (trainer.py's --train_dir) holds config.json and checkpoints
model-<step>; `checkpoint` lists them, newest last, and is rewritten by
TensorFlow only after a checkpoint's files are complete.
"""

import logging
import os
import shutil

import tensorflow.compat.v1 as tf

import files
import names
from run_config import load_run_config
from errors import ConfigError

log = logging.getLogger(__name__)

_STEP_PREFIX = names.CHECKPOINT_PREFIX + "-"  # the Saver appends "-<global step>"


def shape_text(shape, num_classes):
    """'28x28x1, 10 classes'."""
    return "%s, %d classes" % ("x".join(str(d) for d in shape), num_classes)


def is_complete(prefix):
    """True if the checkpoint's index and data files are all there."""
    if not os.path.isfile(prefix + ".index"):
        return False
    folder, base = os.path.split(prefix)
    data = [n for n in os.listdir(folder or ".") if n.startswith(base + ".data-")]
    if not data:
        return False
    total = data[0].rsplit("-of-", 1)[-1]
    return len(data) == int(total) if total.isdigit() else True


def error_text(error):
    """The first line of an exception's message (TensorFlow's run on), or
    its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unreadable(prefix):
    """Why the checkpoint cannot be loaded, or None if it can: its files are
    all there and every tensor its index lists reads back (a host that died
    while writing, or a copy cut short by a full disk, leaves files that
    exist but do not read)."""
    if not is_complete(prefix):
        return "its .index or .data files are missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - TF's reader raises OpError, IndexError (a short
        # data file), ValueError...: whatever it is, this checkpoint does not load
        return error_text(e)
    return None


def _candidates(run_dir):
    """The run folder's checkpoints, newest first: those its `checkpoint`
    file lists and any other model-<step>.index beside them (the `checkpoint`
    file itself may be the damaged one)."""
    found = {}
    state = tf.train.get_checkpoint_state(run_dir)  # joins relative entries to run_dir
    if state is not None:
        for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
            found[os.path.basename(path)] = path
    if os.path.isdir(run_dir):
        for name in os.listdir(run_dir):
            if name.startswith(_STEP_PREFIX) and name.endswith(".index"):
                base = name[:-len(".index")]
                found.setdefault(base, os.path.join(run_dir, base))
    return sorted(found.values(), key=lambda p: step_of(p) or -1, reverse=True)


def newest_loadable(run_dir):
    """(the newest checkpoint of a run folder that loads or None,
    [(newer checkpoint skipped, why)]). Each skipped one is logged as a
    warning."""
    skipped = []
    for path in _candidates(run_dir):
        why = unreadable(path)
        if why is None:
            return path, skipped
        log.warning("Skipping checkpoint %s: it does not load (%s); trying the one before it",
                    path, why)
        skipped.append((path, why))
    return None, skipped


def newest_up_to(run_dir, step):
    """The newest complete checkpoint of the run folder written at or before
    `step`, or None."""
    for path in _candidates(run_dir):
        if (step_of(path) or 0) <= step and is_complete(path):
            return path
    return None


def remove_checkpoint(run_dir, step):
    """Removes model-<step>'s files and the temporary ones a save of it
    leaves (TensorFlow's model-<step>_temp folder, *.tempstate files)."""
    prefix = names.checkpoint_name(step)
    for name in os.listdir(run_dir):
        if name.startswith(prefix + ".") or name.startswith(prefix + "_temp"):
            _remove(os.path.join(run_dir, name))


# What trainer.py writes through a temporary name (files.atomic_path
# makes ".<name>.<random>.tmp"), and what TensorFlow's Saver writes before it
# renames: "model-<step>.index.tempstate<random>" (and .data-*), "model-<step>
# .meta.tmp<random>", "checkpoint.tmp<random>", "model-<step>_temp/" (sharded).
_OWN_TEMPORARIES = tuple(files.TEMPORARY_START + start for start in (
    names.SAMPLES_PREFIX, names.GENERATED_IMAGES_PREFIX, names.CONFIG_FILE + ".",
    names.LABELED_IDS_FILE + "."))


def _is_leftover(name):
    if name.startswith(_OWN_TEMPORARIES) and name.endswith(files.TEMPORARY_END):
        return True
    if name.startswith("checkpoint.tmp") or ".tempstate" in name:
        return True
    return name.startswith(_STEP_PREFIX) and ("_temp" in name or ".tmp" in name)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def remove_leftovers(run_dir, resume_step):
    """What a trainer killed mid-save left in its run folder: temporary
    files, and checkpoints newer than the one it resumes from (`resume_step`,
    0 for a new run) that do not load (the run will write them again).
    Call with the run folder's lock held. Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(run_dir)):
        if _is_leftover(name):
            _remove(os.path.join(run_dir, name))
            removed.append(name)
    for path in _candidates(run_dir):
        step = step_of(path)
        if step is not None and step > resume_step and unreadable(path) is not None:
            remove_checkpoint(run_dir, step)
            removed.append(os.path.basename(path))
    return removed


def saved_up_to(run_dir, step):
    """The run folder's checkpoints up to `step` whose files are all there,
    oldest first: what a resumed Saver takes over, so that --max_to_keep
    counts them too."""
    found = [p for p in _candidates(run_dir) if (step_of(p) or 0) <= step and is_complete(p)]
    return found[::-1]


def none_loads(run_dir, skipped):
    """The ConfigError for a run folder none of whose checkpoints loads."""
    return ConfigError("no checkpoint in %s loads: %s. Restore the run folder from a copy, "
                       "or start again in a new folder" % (run_dir, "; ".join(
                           "%s: %s" % (os.path.basename(p), why) for p, why in skipped)))


def resolve(path):
    """A run folder -> its newest checkpoint that loads (newer damaged ones
    skipped with a warning); a model-<step> prefix -> itself, if it loads.
    Raises ConfigError saying what is missing or damaged."""
    if os.path.isdir(path):
        found, skipped = newest_loadable(path)
        if found is None and skipped:
            raise none_loads(path, skipped)
        if found is None:
            raise ConfigError("%s holds no complete checkpoint (model-<step>.index and .data "
                              "files listed in its `checkpoint` file); is it a run folder?" % path)
        return found
    if not is_complete(path):
        raise ConfigError("checkpoint %s not found: expected %s.index and %s.data-* (a "
                          "run folder or a model-<step> prefix in one)" % (path, path, path))
    why = unreadable(path)
    if why is not None:
        raise ConfigError("checkpoint %s does not load (%s); give the run folder to use its "
                          "newest checkpoint that does" % (path, why))
    return path


def step_of(checkpoint):
    """model-1234 -> 1234 (None if the name has no step)."""
    tail = os.path.basename(checkpoint).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def run_config_of(checkpoint):
    """The config.json saved beside a checkpoint; raises ConfigError if absent."""
    saved = load_run_config(os.path.dirname(checkpoint))
    if saved is None:
        raise ConfigError("%s has no config.json beside it, so the network it holds is unknown; "
                          "evaluate checkpoints inside the run folders trainer.py writes"
                          % checkpoint)
    return saved


def check_fits_dataset(checkpoint, saved, info):
    """The checkpoint's run must have been trained on this image shape and
    class count."""
    if list(saved["image_shape"]) != list(info.image_shape) or \
            saved["num_classes"] != info.num_classes:
        raise ConfigError("checkpoint %s expects %s; %s is %s" % (
            checkpoint, shape_text(saved["image_shape"], saved["num_classes"]), info.name,
            shape_text(info.image_shape, info.num_classes)))


def dataset_text(info):
    """'MNIST is 28x28x1, 10 classes' for error messages."""
    return "%s is %s" % (info.name, shape_text(info.image_shape, info.num_classes))


def check_shapes(checkpoint, variables, context=""):
    """Raises ConfigError if `checkpoint` lacks one of `variables` or holds it
    with another shape (a model for another image shape or class count);
    `variables` is a list, or a {checkpoint name: variable} dict as Saver
    takes. `context` (e.g. dataset_text(info)) ends the message."""
    stored = dict(tf.train.list_variables(checkpoint))
    items = variables.items() if isinstance(variables, dict) else \
        [(v.op.name, v) for v in variables]
    for name, variable in items:
        want = variable.shape.as_list()
        if name not in stored or list(stored[name]) != want:
            saved = load_run_config(os.path.dirname(checkpoint)) or {}
            trained = ""
            if "image_shape" in saved:
                trained = " (it was trained on %s)" % shape_text(saved["image_shape"],
                                                                 saved["num_classes"])
            raise ConfigError(
                "checkpoint %s does not fit this model: %s is %s there, but %s needs %s%s%s"
                % (checkpoint, name, stored.get(name, "missing"), name, want, trained,
                   "; " + context if context else ""))


def ema_restore_map(variables, use_ema):
    """{checkpoint name: variable} restoring D's trainable variables from
    their moving averages (use_ema) and everything else as saved."""
    trainable = set(v.op.name for v in tf.trainable_variables())
    saved_as = {}
    for variable in variables:
        name = variable.op.name
        if use_ema and name in trainable and name.startswith(names.D_SCOPE + "/"):
            name += "/" + names.EMA_NAME
        saved_as[name] = variable
    return saved_as


def restore(sess, checkpoint, variables, use_ema, context=""):
    """Restores `variables` from a training checkpoint, D's trainable ones
    from their moving averages if use_ema (ema_restore_map), after checking
    that the checkpoint holds each with its shape (`context`: what the
    shapes come from, for the error)."""
    saved_as = ema_restore_map(variables, use_ema)
    check_shapes(checkpoint, saved_as, context)
    tf.train.Saver(saved_as).restore(sess, checkpoint)


def use_ema(saved, choice):
    """Whether to read D's moving-average weights: the --weights choice
    against the run's saved config (a dict)."""
    has_ema = bool(saved.get("ema_decay"))
    if choice == "ema" and not has_ema:
        raise ConfigError("--weights ema: this run kept no moving average of D's weights "
                          "(it was trained without --ema_decay); use --weights raw")
    return has_ema and choice != "raw"
