"""Rules between the training flags: combinations that cannot work, and
flags given explicitly that the run would ignore, refused before any work.
No TensorFlow here.
"""

from errors import ConfigError


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
