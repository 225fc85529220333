"""The training flags: one table of defaults, grouped, each with its reason,
and the flags the other commands share with it.

    config, explicit, unknown = parse_train_config(argv)   # trainer.py

parses once into an immutable TrainConfig that is passed down; no other
module reads sys.argv. The recipes (recipes.py) change some defaults per
experiment; flag_rules.py refuses combinations that cannot work;
run_config.py keeps the finished config as the run folder's config.json.
No TensorFlow here, so --help is instant.
"""

import argparse
import collections

from datasets import DATA_DIR
from recipes import RECIPE_FLAGS, paper_default_text

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
# help says otherwise; --help adds the paper recipe's (recipes.py).
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
             "adversarial training; averages with 0.9 follow them, while 0.999 (tf.contrib's "
             "default) leaves evaluation far behind for thousands of steps")),
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
        help="adam: TensorFlow's Adam (the reference's). paper_adam: the paper's, epsilon "
             "inside the square root, without which the paper's MNIST-100 recipe collapses "
             "(docs/reproducing.md, 'The epsilon decides'). auto: adam for --method ssgan, "
             "paper_adam otherwise")),
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
             "float32. bf16: CPUs with AVX-512 BF16 / AMX and recent GPUs. fp16: GPUs, with "
             "dynamic loss scaling. On an Ascend 910 it picks the adapter's precision_mode "
             "(docs/distributed.md, 'Ascend 910 and ModelArts'). A resumed run keeps its "
             "precision")),
    ("run", "--precision_mode", dict(
        default=None,
        help="on the NPU, the Ascend adapter's precision_mode instead of the one --precision "
             "picks: force_fp32 (CANN 6.2 and later), allow_mix_precision, allow_fp32_to_fp16, "
             "force_fp16, must_keep_origin_dtype; docs/distributed.md says what each computes "
             "in float16")),
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

TrainConfig = collections.namedtuple(
    "TrainConfig", [flag.lstrip("-") for _, flag, _ in FLAGS])


def _help_with_defaults(flag, kwargs):
    """A flag's help with its default and, for the flags a recipe sets, the
    paper recipe's."""
    name = flag.lstrip("-")
    if "default" not in kwargs or kwargs.get("action") == "store_true":
        return kwargs["help"]
    paper = ""
    if name in RECIPE_FLAGS:
        paper = "; paper recipe: %s" % paper_default_text(name).replace("%", "%%")
    return kwargs["help"] + " (default: %(default)s" + paper + ")"


def build_parser(description=None, epilog=None, defaults=True):
    """The trainer's parser, its flags grouped as in FLAGS. defaults=False
    leaves a flag not given out of the parsed namespace (explicit_flags)."""
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = collections.OrderedDict()
    for group, flag, kwargs in FLAGS:
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        kwargs = dict(kwargs, help=_help_with_defaults(flag, kwargs))
        if not defaults:
            kwargs["default"] = argparse.SUPPRESS
        groups[group].add_argument(flag, **kwargs)
    return parser


def explicit_flags(argv):
    """Names of the flags given on the command line (not left at defaults)."""
    given, _ = build_parser(defaults=False).parse_known_args(argv)
    return set(vars(given))


def parse_train_config(argv, description=None, epilog=None):
    """(TrainConfig, names of the flags given explicitly, arguments not
    understood). Platforms such as ModelArts add arguments of their own, so
    unknown ones are returned, not fatal."""
    args, unknown = build_parser(description, epilog).parse_known_args(argv)
    return TrainConfig(**vars(args)), explicit_flags(argv), unknown


# ---- Flags the other commands share ----

def add_flags(parser, names):
    """The trainer's flags `names` (say "device", "debug"), as FLAGS defines
    them, on another command's parser."""
    table = dict((flag.lstrip("-"), (flag, kwargs)) for _, flag, kwargs in FLAGS)
    for name in names:
        flag, kwargs = table[name]
        parser.add_argument(flag, **dict(kwargs, help=_help_with_defaults(flag, kwargs)))


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
