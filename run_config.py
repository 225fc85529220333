"""A run folder's config.json: the finished config (every flag, where each
value came from, and facts such as the dataset's shape), written when a run
starts and read when it resumes, is evaluated or exported. No TensorFlow here.
"""

import json
import os

from files import write_json_atomic
from names import CONFIG_FILE
from recipes import REFERENCE_CLIP_NORM

# Flags a run keeps for life (the networks' shapes, the labels, the losses,
# the precision): a resumed run must use the saved value.
FIXED_FLAGS = ("n_z", "norm_type", "deconv_type", "batch_size", "arch", "minibatch_kernels",
               "num_labeled", "data_seed", "method", "historical_averaging", "ema_decay",
               "precision")

# What runs saved before a flag existed were trained with, when that differs
# from what the flag's default means now.
LEGACY_VALUES = {"optimizer": "adam", "clip_norm": REFERENCE_CLIP_NORM}


def save_run_config(run_dir, config, extra):
    """Writes config.json: the flags plus what was derived (dataset shape...)."""
    value = dict(config._asdict())
    value.update(extra)
    write_json_atomic(os.path.join(run_dir, CONFIG_FILE), value)


def load_run_config(run_dir):
    """The saved config.json of a run folder, or None."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
