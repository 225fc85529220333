"""The training flags: one table of defaults, grouped, each with its reason.

Parsed once by trainer.py into an immutable TrainConfig that is passed down;
no other module reads sys.argv. The run folder keeps it as config.json.
"""

import argparse
import collections
import json
import os
import textwrap

from datasets import DATA_DIR
from errors import ConfigError
from files import write_json_atomic
from names import CONFIG_FILE


def _str2bool(value):
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % value)


def _positive_int(value):
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer, got %s" % value)
    return number


def _non_negative_int(value):
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, got %s" % value)
    return number


def _positive_float(value):
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be positive, got %s" % value)
    return number


# Every choice a flag offers, and the defaults other modules share: the
# modules that implement them import them from here.
ARCHS = ("reference", "paper")  # --arch; model.py builds them
NORM_TYPES = ("batch", "instance", "None")  # --norm_type; ops.py implements them
DECONV_TYPES = ("bilinear", "nn", "transpose")  # --deconv_type; ops.py implements them
BN_DECAY = 0.9  # --bn_decay
METHODS = ("ssgan", "improved_gan", "supervised")  # --method; losses.py
FEATURE_NORMS = ("l2", "l1")  # --feature_matching; losses.py
OPTIMIZERS = ("adam", "paper_adam")  # --optimizer; train_ops.py builds them
ADAM_BETA1 = 0.5  # --beta1: the reference's and the paper's
REFERENCE_CLIP_NORM = 20.0  # the reference's global-norm clip of both networks' gradients
DEVICES = ("auto", "cpu", "gpu", "npu")  # --device; device.py resolves them
PRECISIONS = ("fp32", "bf16", "fp16")  # --precision; precision.py maps them to dtypes
JOB_NAMES = ("chief", "worker", "ps")  # --job_name; cluster.py


def _clip_norm(value):
    if value == "auto":
        return value
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 (no clipping) or more, got %s" % value)
    return number


# (group, flag, keyword arguments). Defaults are the reference's unless the
# help says otherwise.
FLAGS = [
    ("data", "--dataset", dict(
        default="MNIST",
        help="MNIST, FASHION_MNIST, SVHN, CIFAR10 (prepared by download.py under --data_dir), "
             "or the path of a folder in the reference layout (data.hdf5 + id.txt)")),
    ("data", "--data_dir", dict(
        default=DATA_DIR, help="folder holding the prepared datasets")),
    ("data", "--num_labeled", dict(
        type=_non_negative_int, default=0,
        help="semi-supervised training: keep this many labels (a multiple of the class count, "
             "the same number per class; the paper: 100 for MNIST, 1000 SVHN, 4000 CIFAR-10). "
             "Every training image also feeds the unlabeled stream. The labeled ids go to "
             "labeled_ids.txt in the run folder. 0: every label, as the reference")),
    ("data", "--data_seed", dict(
        type=int, default=1,
        help="chooses the labeled subset as the paper's code does (permute the training "
             "split with this seed, take the first N/K of each class); the paper's default")),
    ("model", "--arch", dict(
        default="reference", choices=ARCHS,
        help="reference: the SSGAN conv nets. paper: the Improved-GAN paper's networks "
             "(grayscale: weight-normalised MLPs with Gaussian noise; 32x32x3: the CIFAR-10 / "
             "SVHN conv nets with weight norm, dropout and NIN layers); --norm_type, "
             "--deconv_type and --bn_decay do not apply to them. Chooses the paper's recipe "
             "(see Recipes below)")),
    ("model", "--minibatch_kernels", dict(
        type=_non_negative_int, default=0,
        help="minibatch discrimination kernels before D's last layer (the paper: 100); "
             "0: none. D's outputs then depend on the whole batch, evaluation included")),
    ("model", "--batch_size", dict(
        type=_positive_int, default=32, help="examples per step, for D and G alike")),
    ("model", "--n_z", dict(
        type=_positive_int, default=128, help="size of G's uniform noise input")),
    ("model", "--norm_type", dict(
        default="batch", choices=NORM_TYPES,
        help="normalisation after each hidden conv of D and G")),
    ("model", "--deconv_type", dict(
        default="bilinear", choices=DECONV_TYPES,
        help="G's upsampling: bilinear or nearest-neighbour resize then a 3x3 conv, or a "
             "3x3 transposed conv")),
    ("model", "--bn_decay", dict(
        type=float, default=BN_DECAY,
        help="batch-norm moving-average decay per step. D's weights change fast in "
             "adversarial training; averages with 0.9 follow them, while the old contrib "
             "0.999 leaves evaluation far behind for thousands of steps")),
    ("training", "--max_training_steps", dict(
        type=_positive_int, default=40000,
        help="total steps (D and G steps together), as the model card trains; a resumed "
             "run continues up to it")),
    ("training", "--method", dict(
        default="ssgan", choices=METHODS,
        help="ssgan: the reference's losses (K+1-way cross-entropy, G's GAN loss plus an "
             "annealed reconstruction term). improved_gan: the paper's (labeled cross-entropy "
             "+ --unlabeled_weight x real-vs-fake loss for D, feature matching for G). "
             "supervised: D on the labeled loss alone, every step a D step and G untrained: "
             "the baseline to compare a semi-supervised run with. improved_gan and supervised "
             "choose the paper's recipe, ssgan the reference's (see Recipes below)")),
    ("training", "--unlabeled_weight", dict(
        type=float, default=1.0,
        help="weight of D's unlabeled (real vs generated) loss; the paper uses 1")),
    ("training", "--feature_matching", dict(
        default="auto", choices=("auto",) + FEATURE_NORMS,
        help="G's feature-matching distance for improved_gan: mean squared (the paper's "
             "MNIST) or mean absolute (its CIFAR-10/SVHN) difference of D's mean features; "
             "auto: l1 for the paper's conv nets, else l2")),
    ("training", "--label_smoothing", dict(
        type=float, default=0.0,
        help="one-sided label smoothing for improved_gan: D's target for real images "
             "becomes 1 - this (generated images keep 0); the paper suggests 0.1")),
    ("training", "--historical_averaging", dict(
        type=float, default=0.0,
        help="weight of the paper's historical-averaging penalty ||theta - mean of past "
             "theta||^2, added to both D's and G's loss; 0: off")),
    ("training", "--ema_decay", dict(
        type=float, default=0.0,
        help="keep an exponential moving average of D's weights with this decay (the "
             "paper's code: 0.9999) and use it for validation lines and evaluation; 0: off")),
    ("training", "--lr_decay_start", dict(
        type=_non_negative_int, default=0,
        help="step from which both learning rates fall linearly to 0 at "
             "--max_training_steps (the paper's CIFAR/SVHN schedule: the last third); "
             "0: constant")),
    ("training", "--optimizer", dict(
        default="auto", choices=("auto",) + OPTIMIZERS,
        help="adam: TensorFlow's Adam, epsilon 1e-8 added to sqrt(v) (the reference's). "
             "paper_adam: the Improved-GAN paper's, epsilon 1e-8 inside the square root, "
             "which floors the denominator at 1e-4 so that parameters with tiny gradients "
             "barely move (with TensorFlow's, they move by about the learning rate whatever "
             "their gradients, and the paper's MNIST-100 recipe collapses). auto: adam for "
             "--method ssgan, paper_adam otherwise")),
    ("training", "--beta1", dict(
        type=float, default=ADAM_BETA1,
        help="Adam's beta1 (the decay of its gradient average) for D and G, both "
             "optimizers; the reference's and the paper's 0.5")),
    ("training", "--clip_norm", dict(
        type=_clip_norm, default="auto",
        help="clip each network's gradients to this global norm; 0: no clipping. auto: 20 "
             "for --method ssgan (the reference), 0 otherwise (the paper has no clipping)")),
    ("training", "--learning_rate_g", dict(type=_positive_float, default=1e-4,
                                           help="Adam learning rate of G")),
    ("training", "--learning_rate_d", dict(type=_positive_float, default=1e-4,
                                           help="Adam learning rate of D")),
    ("training", "--update_rate", dict(
        type=_positive_int, default=1,
        help="G steps per D step: step s trains G when s %% (update_rate + 1) > 0, else D")),
    ("training", "--seed", dict(
        type=int, default=0, help="seeds TensorFlow's random ops and the data order")),
    ("logging", "--log_step", dict(
        type=_positive_int, default=10, help="steps between [train step] log lines")),
    ("logging", "--test_sample_step", dict(
        type=_positive_int, default=100,
        help="steps between [val   step] lines, each on one batch of the test split")),
    ("logging", "--write_summary_step", dict(
        type=_positive_int, default=100, help="steps between TensorBoard summaries")),
    ("logging", "--output_save_step", dict(
        type=_positive_int, default=1000,
        help="steps between checkpoints (and sample grids); one is also saved at the end")),
    ("logging", "--max_to_keep", dict(
        type=_positive_int, default=5,
        help="checkpoints kept (about 85 MB each for MNIST); the oldest are deleted")),
    ("logging", "--dump_result", dict(
        type=_str2bool, nargs="?", const=True, default=False,
        help="also write each checkpoint's generated batch to g_img_<step>.hdf5, as the "
             "reference did")),
    ("run", "--prefix", dict(
        default="default", help="first part of a new run folder's name")),
    ("run", "--train_dir", dict(
        default=None,
        help="run folder. Default: a new folder train_dir/<prefix>-<DATASET>_lr_g_<lr>_d_<lr>"
             "_update_G<r>D1-<time>. An existing run folder is resumed from its latest "
             "checkpoint")),
    ("run", "--checkpoint", dict(
        default=None,
        help="initialise D and G (weights and batch-norm statistics) from this checkpoint "
             "of another run; the step count starts at 0")),
    ("run", "--device", dict(
        default="auto", choices=DEVICES,
        help="auto: the NPU when the Ascend adapter imports and a device is there, else a "
             "GPU if TensorFlow sees one, else the CPU")),
    ("run", "--precision", dict(
        default="fp32", choices=PRECISIONS,
        help="what the networks compute in; variables, optimizer state and losses stay "
             "float32. bf16: CPUs with AVX-512 BF16 / AMX and recent GPUs (no loss scaling "
             "needed). fp16: GPUs, with dynamic loss scaling. On an Ascend 910 the graph stays "
             "float32 and this picks the adapter's precision_mode: fp32 -> force_fp32 "
             "(convolutions and matmuls still take float16 inputs there, with float32 "
             "outputs) on CANN 6.2 and later, else allow_fp32_to_fp16, with a warning; "
             "fp16 -> allow_mix_precision; all with the adapter's loss scaling. "
             "A resumed run keeps its precision")),
    ("run", "--precision_mode", dict(
        default=None,
        help="on the NPU, the Ascend adapter's precision_mode instead of the one --precision "
             "picks: force_fp32 (CANN 6.2 and later), allow_mix_precision, allow_fp32_to_fp16 "
             "(the adapter's default, the model card's runs), force_fp16, "
             "must_keep_origin_dtype (fails on the 910: no float32 convolution); "
             "docs/distributed.md ('Ascend 910 and ModelArts') says what each computes in "
             "float16")),
    ("run", "--debug", dict(action="store_true", help="log debugging detail")),
    ("platform", "--data_url", dict(
        default=None,
        help="ModelArts: the folder holding the dataset folders (replaces --data_dir); an "
             "obs:// URL is first copied to --cache_dir")),
    ("platform", "--train_url", dict(
        default=None,
        help="ModelArts: where run folders go (replaces train_dir/); with an obs:// URL the "
             "run is kept under --cache_dir and copied there at each checkpoint and at the end")),
    ("platform", "--cache_dir", dict(
        default="/cache", help="local copy of obs:// data and runs")),
    ("cluster", "--job_name", dict(
        default=None, choices=JOB_NAMES,
        help="multi-worker training without TF_CONFIG: this task's job (the environment "
             "variable TF_CONFIG, when set, describes the cluster instead)")),
    ("cluster", "--task_index", dict(type=int, default=0, help="this task's index in its job")),
    ("cluster", "--ps_hosts", dict(default=None, help="host:port,... of the parameter servers")),
    ("cluster", "--worker_hosts", dict(
        default=None, help="host:port,... of the workers; the first is the chief")),
    ("cluster", "--wait_log_secs", dict(
        type=_positive_float, default=60.0,
        help="a worker whose step has waited this long for the others (one killed, or "
             "restarting) logs whom it waits for, and again every as many seconds")),
]

# Flags that shape the networks: a resumed run must keep them.
MODEL_FLAGS = ("n_z", "norm_type", "deconv_type", "batch_size", "arch", "minibatch_kernels",
               "num_labeled", "data_seed", "method", "historical_averaging", "ema_decay",
               "precision")


# Flags that do nothing in some runs: (flags, when, why). Given explicitly
# there, they are refused: the run would not do what the command says.
IGNORED_FLAGS = [
    (("norm_type", "deconv_type", "bn_decay"), lambda c: c.arch == "paper",
     "the paper's networks (--arch paper) have their own normalisation and upsampling; "
     "these shape the reference's (--arch reference)"),
    (("learning_rate_g", "update_rate", "feature_matching", "unlabeled_weight"),
     lambda c: c.method == "supervised",
     "--method supervised trains D alone on the labeled images: G, its steps and the "
     "unlabeled loss are not used (--method improved_gan uses them)"),
    (("feature_matching",), lambda c: c.method == "ssgan",
     "feature matching is G's loss in --method improved_gan; the reference's G loss "
     "(--method ssgan) is the GAN loss plus reconstruction"),
    (("unlabeled_weight",), lambda c: c.method == "ssgan" and not c.num_labeled,
     "with every label kept (--num_labeled 0) --method ssgan has no unlabeled batch to weight"),
    (("data_seed",), lambda c: not c.num_labeled,
     "--data_seed chooses the labeled subset of --num_labeled; with every label kept there is "
     "none"),
]


def check_method_flags(config, explicit=()):
    """Raises ConfigError for flag combinations that cannot work, and for
    flags given explicitly that the run would ignore."""
    if config.arch == "paper" and config.method == "ssgan":
        raise ConfigError(
            "--arch paper with --method ssgan cannot train G: the paper's networks fix D's fake "
            "logit at 0, so the reference's G loss is a constant and G gets no gradient once "
            "the reconstruction term has faded (step 1,500). Use --method improved_gan (the "
            "default with --arch paper) or --method supervised, or --arch reference for the "
            "reference's losses")
    for flags, applies, why in IGNORED_FLAGS:
        ignored = [name for name in flags if name in explicit]
        if ignored and applies(config):
            raise ConfigError("%s would be ignored: %s. Leave %s out" % (
                " ".join("--%s" % n for n in ignored), why,
                "it" if len(ignored) == 1 else "them"))
    if config.label_smoothing and config.method != "improved_gan":
        raise ConfigError("--label_smoothing applies to --method improved_gan (the reference's "
                          "D loss already puts 0.1 of the fake target on the classes)")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ConfigError("--label_smoothing must lie in [0, 1), got %s" % config.label_smoothing)
    if not 0.0 <= config.ema_decay < 1.0:
        raise ConfigError("--ema_decay must lie in [0, 1), got %s" % config.ema_decay)
    if config.unlabeled_weight < 0 or config.historical_averaging < 0:
        raise ConfigError("--unlabeled_weight and --historical_averaging cannot be negative")
    if config.lr_decay_start and config.lr_decay_start >= config.max_training_steps:
        raise ConfigError("--lr_decay_start %d is not before --max_training_steps %d"
                          % (config.lr_decay_start, config.max_training_steps))


TrainConfig = collections.namedtuple(
    "TrainConfig", [flag.lstrip("-") for _, flag, _ in FLAGS])

# What runs saved before a flag existed were trained with, when that differs
# from what the flag's default means now.
LEGACY_VALUES = {"optimizer": "adam", "clip_norm": REFERENCE_CLIP_NORM}

# ---- Recipes: the defaults of a whole experiment ----------------------------
#
# The flag table's defaults are the reference's (the model card's run). The
# paper's semi-supervised experiments use other settings throughout; --method
# improved_gan or supervised, or --arch paper, bring them all as defaults,
# per dataset as the paper's scripts set them, and any flag given explicitly
# wins.

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


def steps_per_epoch(config, num_train):
    """Steps of one pass over the training images at config's batch size: the
    paper's epoch is num_train // batch D updates, and each D step is
    followed by --update_rate G steps (none for --method supervised)."""
    iterations = num_train // config.batch_size
    return iterations if config.method == "supervised" else iterations * (config.update_rate + 1)


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
            derived["max_training_steps"] = script.epochs * steps_per_epoch(config, num_train)
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


def _paper_default_text(name):
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


def build_parser(description=None, epilog=None):
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = collections.OrderedDict()
    for group, flag, kwargs in FLAGS:
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        kwargs = dict(kwargs)
        if "default" in kwargs and kwargs.get("action") != "store_true":
            kwargs["help"] = kwargs["help"] + " (default: %(default)s" + (
                "; paper recipe: %s)" % _paper_default_text(flag.lstrip("-")).replace("%", "%%")
                if flag.lstrip("-") in RECIPE_FLAGS else ")")
        groups[group].add_argument(flag, **kwargs)
    return parser


def explicit_flags(parser, argv):
    """Names of the flags given on the command line (not left at defaults)."""
    sentinel = object()
    saved = {a.dest: a.default for a in parser._actions}
    try:
        for action in parser._actions:
            action.default = sentinel
        given, _ = parser.parse_known_args(argv)
    finally:
        for action in parser._actions:
            action.default = saved[action.dest]
    return {k for k, v in vars(given).items() if v is not sentinel}


def parse_train_config(argv, description=None, epilog=None):
    """(TrainConfig, names of the flags given explicitly, arguments not
    understood). Platforms such as ModelArts add arguments of their own, so
    unknown ones are returned, not fatal."""
    parser = build_parser(description, epilog)
    args, unknown = parser.parse_known_args(argv)
    return TrainConfig(**vars(args)), explicit_flags(parser, argv), unknown


# ---- Flags of the commands that read a trained run (evaler.py, export.py) ----

def add_checkpoint_flag(parser):
    """The --checkpoint flag of the commands that read a trained run."""
    parser.add_argument("--checkpoint", required=True,
                        help="a run folder (its newest complete checkpoint) or a model-<step> "
                             "prefix inside one")


WEIGHTS_CHOICES = ("auto", "ema", "raw")  # --weights; checkpoints.use_ema reads them


def add_weights_flag(parser):
    parser.add_argument(
        "--weights", default="auto", choices=WEIGHTS_CHOICES,
        help="which discriminator weights to use: ema, the moving average a run trained "
             "with --ema_decay keeps (the paper evaluates those); raw, the trained weights; "
             "auto: ema when the run has it (default: %(default)s)")


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
