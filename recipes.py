"""Recipes: the defaults of a whole experiment.

The flag table's defaults (flag_table.py) are the reference's (the model
card's run). The paper's semi-supervised experiments use other settings
throughout; --method improved_gan or supervised, or --arch paper, bring them
all as defaults, per dataset as the paper's scripts set them, and any flag
given explicitly wins. No TensorFlow here.
"""

import collections
import textwrap

from schedule import Schedule

REFERENCE_CLIP_NORM = 20.0  # the reference's global-norm clip of both networks' gradients

# openai/improved-gan, mnist_svhn_cifar10/train_<name>_feature_matching.py:
# labeled examples per class (--count), Adam's rate, epochs, and the epochs at
# the end over which the rate falls linearly to 0.
PaperScript = collections.namedtuple(
    "PaperScript", "script labels_per_class learning_rate epochs decay_epochs")
PAPER_SCRIPTS = collections.OrderedDict([
    ("MNIST", PaperScript("train_mnist_feature_matching.py", 10, 0.003, 300, 0)),
    ("SVHN", PaperScript("train_svhn_feature_matching.py", 100, 0.0003, 900, 300)),
    ("CIFAR10", PaperScript("train_cifar_feature_matching.py", 400, 0.0003, 1200, 400)),
])
# What every one of those scripts shares.
PAPER_COMMON = collections.OrderedDict([
    ("arch", "paper"), ("method", "improved_gan"), ("batch_size", 100), ("n_z", 100),
    ("ema_decay", 0.9999), ("optimizer", "paper_adam"), ("clip_norm", 0.0)])
REFERENCE_RECIPE = collections.OrderedDict([
    ("arch", "reference"), ("method", "ssgan"), ("optimizer", "adam"),
    ("clip_norm", REFERENCE_CLIP_NORM)])
# The flags a recipe may set; the others keep the flag table's defaults.
RECIPE_FLAGS = ("arch", "method", "batch_size", "n_z", "learning_rate_d", "learning_rate_g",
                "ema_decay", "optimizer", "clip_norm", "num_labeled", "max_training_steps",
                "lr_decay_start")


def recipe_of(config, given):
    """'paper' or 'reference': the experiment the flags in `given` (the
    command line's and a resumed run's) ask for. --method decides; without
    it, --arch."""
    if "method" in given:
        return "reference" if config.method == "ssgan" else "paper"
    if "arch" in given and config.arch == "paper":
        return "paper"
    return "reference"


def paper_script(dataset_name, image_shape):
    """Which of the paper's scripts a dataset follows: MNIST's for grayscale
    images (its MLPs), SVHN's for SVHN, CIFAR-10's for other colour images."""
    if image_shape[-1] == 1:
        return "MNIST"
    return "SVHN" if dataset_name.upper() == "SVHN" else "CIFAR10"

def apply_recipe(config, given, dataset_name, image_shape, num_classes, num_train):
    """config with every flag not in `given` set by the run's recipe.
    Returns (config, recipe text, {flag: value} the recipe set)."""
    recipe = recipe_of(config, given)
    if recipe == "reference":
        values = dict(REFERENCE_RECIPE)
        text = "the reference's (clvrai/SSGAN-Tensorflow, the model card)"
    else:
        name = paper_script(dataset_name, image_shape)
        script = PAPER_SCRIPTS[name]
        values = dict(PAPER_COMMON, learning_rate_d=script.learning_rate,
                      learning_rate_g=script.learning_rate,
                      num_labeled=script.labels_per_class * num_classes)
        text = "the paper's (openai/improved-gan %s)" % script.script
    set_here = {k: v for k, v in values.items() if k not in given}
    config = config._replace(**set_here)
    if recipe == "paper":  # in steps of the resolved batch size and method
        derived = {}
        if "max_training_steps" not in given:
            derived["max_training_steps"] = script.epochs * Schedule.of(config).epoch_steps(
                num_train, config.batch_size)
        if script.decay_epochs and "lr_decay_start" not in given:
            maximum = derived.get("max_training_steps", config.max_training_steps)
            derived["lr_decay_start"] = \
                maximum * (script.epochs - script.decay_epochs) // script.epochs
        config = config._replace(**derived)
        set_here.update(derived)
    for name in ("optimizer", "clip_norm"):  # 'auto' given explicitly
        if getattr(config, name) == "auto":
            set_here[name] = values[name]
    config = config._replace(optimizer=set_here.get("optimizer", config.optimizer),
                             clip_norm=float(set_here.get("clip_norm", config.clip_norm)))
    return config, text, set_here


def paper_default_text(name):
    """The paper recipe's default of one flag, for its --help."""
    if name in PAPER_COMMON:
        return str(PAPER_COMMON[name])
    per_script = {
        "learning_rate_d": lambda s: str(s.learning_rate),
        "learning_rate_g": lambda s: str(s.learning_rate),
        "num_labeled": lambda s: "%d per class" % s.labels_per_class,
        "max_training_steps": lambda s: "%d epochs" % s.epochs,
        "lr_decay_start": lambda s: ("the last %d epochs" % s.decay_epochs
                                     if s.decay_epochs else "0"),
    }[name]
    return ", ".join("%s %s" % (key, per_script(script))
                     for key, script in PAPER_SCRIPTS.items())


def recipe_help():
    """The --help section on recipes, from the tables above."""
    text = ("Recipes: the defaults shown with each flag are the reference's (the model card's "
            "run, --method ssgan). --method improved_gan or supervised, or --arch paper, bring "
            "the paper's settings as the defaults instead ('paper recipe' in each flag's help), "
            "as its scripts (openai/improved-gan, mnist_svhn_cifar10/train_*_feature_matching"
            ".py) set them: grayscale images follow the MNIST script, SVHN its own, other "
            "colour images CIFAR-10's. An epoch is (training images / batch) D steps, each "
            "followed by --update_rate G steps. A flag given explicitly always wins; the first "
            "log lines and config.json say where each value came from.")
    text += " The scripts: " + ", ".join(
        "%s %s" % (name, script.script) for name, script in PAPER_SCRIPTS.items()) + "."
    return textwrap.fill(text, 90)
