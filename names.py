"""The names several modules share: variable scopes in checkpoints, the files
of a run folder and of a dataset's TFRecord cache. Each is spelled here once;
the module that builds a thing and the modules that read it back import its
name from here. No TensorFlow (the command-line tools read some of these for
--help)."""

import os

# ---- variable scopes (checkpoints hold these names) --------------------------

D_SCOPE = "Discriminator"  # D's variables: model.py's and paper_nets.py's discriminators
G_SCOPE = "Generator"  # G's variables
EMA_NAME = "ExponentialMovingAverage"  # suffix of the moving averages of D's variables

# ---- training steps (the NPU's loss scale is read back by name) ---------------

TRAIN_SCOPE = "train"  # name scope of both optimizer steps (train_graph)
D_OPTIMIZE_SCOPE = "d_optimize"  # name scope of D's optimizer step (train_ops)
G_OPTIMIZE_SCOPE = "g_optimize"  # name scope of G's optimizer step (train_ops)
NPU_LOSS_SCALE = "loss_scale"  # the variable the Ascend adapter's loss-scale manager makes


def npu_loss_scale_variable(optimize_scope):
    """'train/d_optimize/loss_scale': where the Ascend adapter's loss scale of
    one optimizer step is checkpointed (it makes the variable in the step's
    name scope)."""
    return "/".join((TRAIN_SCOPE, optimize_scope, NPU_LOSS_SCALE))


# a checkpoint holding it was trained with the adapter's loss scaling (run_folder)
D_NPU_LOSS_SCALE = npu_loss_scale_variable(D_OPTIMIZE_SCOPE)


# ---- a run folder (trainer.py's --train_dir) ---------------------------------

RUN_ROOT = "train_dir"  # where a run folder is made when --train_dir is not given
CONFIG_FILE = "config.json"  # the run's flags and what was derived from the dataset
LOG_FILE = "train.log"  # the trainer's log lines
LOCK_FILE = ".trainer.lock"  # flock-ed by the one process that writes the run folder
LABELED_IDS_FILE = "labeled_ids.txt"  # a semi-supervised run's labeled examples, one id a line
CHECKPOINT_PREFIX = "model"  # the Saver's prefix: checkpoints model-<step>.index, .data-*...
SAMPLES_PREFIX = "samples-"  # samples-<step>.png: a grid of G's samples at each checkpoint
GENERATED_IMAGES_PREFIX = "g_img_"  # g_img_<step>.hdf5: those samples as arrays (--dump_result)


def checkpoint_name(step):
    """'model-<step>': what the Saver names a checkpoint of CHECKPOINT_PREFIX
    (it appends '-<global step>')."""
    return "%s-%d" % (CHECKPOINT_PREFIX, step)


def samples_file(step):
    """'samples-<step>.png'."""
    return "%s%d.png" % (SAMPLES_PREFIX, step)


def generated_images_file(step):
    """'g_img_<step>.hdf5'."""
    return "%s%d.hdf5" % (GENERATED_IMAGES_PREFIX, step)


# ---- a dataset's TFRecord cache (input_ops writes it; download.py asks for it) ----

TFRECORD_FOLDER = "tfrecords"  # the cache's folder, inside the dataset's folder
TFRECORD_MANIFEST = "manifest.json"  # in it: what the cache was built from, to spot a stale one
TFRECORD_FILES_PER_SPLIT = 8  # divisible by 1, 2, 4, 8 workers, so each reads whole files


def dataset_name(dataset):
    """'MNIST' for a --dataset of mnist or .../mnist/: the upper-cased last
    part of the name or path, as run folders' names and the choice of the
    paper's networks (model.ModelConfig.dataset_name) spell a dataset."""
    return os.path.basename(os.path.normpath(dataset)).upper()
