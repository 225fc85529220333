"""Recipes: what --method and --arch bring as defaults, what a flag given
explicitly overrides, and the combinations refused before any work. The
expected values are the paper's scripts' own (openai/improved-gan,
mnist_svhn_cifar10/train_*_feature_matching.py), written out here by hand."""

import subprocess
import sys

import pytest

import recipes
from errors import ConfigError
from flag_rules import check_method_flags
from flag_table import parse_train_config
from recipes import apply_recipe

MNIST = ("MNIST", (28, 28, 1), 10, 60000)
CIFAR10 = ("CIFAR10", (32, 32, 3), 10, 50000)
SVHN = ("SVHN", (32, 32, 3), 10, 73257)


def resolve(argv, dataset=MNIST):
    parsed, explicit, _ = parse_train_config(argv)
    resolved, _, from_recipe = apply_recipe(parsed, explicit, *dataset)
    check_method_flags(resolved, explicit)
    return resolved, from_recipe


def test_plain_command_is_the_model_cards_run():
    c, _ = resolve(["--dataset", "MNIST"])
    assert (c.arch, c.method, c.batch_size, c.n_z) == ("reference", "ssgan", 32, 128)
    assert (c.learning_rate_d, c.learning_rate_g, c.ema_decay) == (1e-4, 1e-4, 0.0)
    assert (c.optimizer, c.clip_norm) == ("adam", 20.0)
    assert (c.num_labeled, c.max_training_steps, c.lr_decay_start) == (0, 40000, 0)


@pytest.mark.parametrize("argv", [["--method", "improved_gan"], ["--arch", "paper"]])
def test_method_or_arch_brings_the_papers_mnist_script(argv):
    c, from_recipe = resolve(argv)
    assert (c.arch, c.method, c.batch_size, c.n_z) == ("paper", "improved_gan", 100, 100)
    assert (c.learning_rate_d, c.learning_rate_g, c.ema_decay) == (0.003, 0.003, 0.9999)
    assert (c.optimizer, c.clip_norm) == ("paper_adam", 0.0)
    # 10 labels per class; 300 epochs of 600 iterations, each a D and a G step
    assert (c.num_labeled, c.max_training_steps, c.lr_decay_start) == (100, 360000, 0)
    assert "batch_size" in from_recipe and argv[0].lstrip("-") not in from_recipe


def test_supervised_baseline_has_the_same_recipe_in_d_steps():
    c, _ = resolve(["--method", "supervised"])
    assert (c.arch, c.batch_size, c.learning_rate_d, c.num_labeled) == ("paper", 100, 0.003, 100)
    assert c.max_training_steps == 300 * 600  # every step a D step


@pytest.mark.parametrize("dataset, lr, labels, steps, decay_start", [
    (CIFAR10, 0.0003, 4000, 1200 * 500 * 2, 800 * 500 * 2),
    (SVHN, 0.0003, 1000, 900 * 732 * 2, 600 * 732 * 2),
])
def test_colour_datasets_follow_their_scripts(dataset, lr, labels, steps, decay_start):
    c, _ = resolve(["--method", "improved_gan"], dataset)
    assert (c.learning_rate_d, c.learning_rate_g, c.num_labeled) == (lr, lr, labels)
    assert (c.max_training_steps, c.lr_decay_start) == (steps, decay_start)


def test_explicit_flags_win_and_derived_ones_follow_them():
    c, from_recipe = resolve(["--method", "improved_gan", "--batch_size", "50",
                              "--learning_rate_d", "0.001", "--optimizer", "adam",
                              "--clip_norm", "5", "--num_labeled", "0"])
    assert (c.batch_size, c.learning_rate_d, c.learning_rate_g) == (50, 0.001, 0.003)
    assert (c.optimizer, c.clip_norm, c.num_labeled) == ("adam", 5.0, 0)
    assert c.max_training_steps == 300 * 1200 * 2  # 300 epochs at batch 50
    assert not {"batch_size", "learning_rate_d", "optimizer", "clip_norm",
                "num_labeled"} & set(from_recipe)
    c, _ = resolve(["--method", "improved_gan", "--max_training_steps", "3000"], CIFAR10)
    assert c.lr_decay_start == 2000  # the last third of the length given


def test_ssgan_with_labels_keeps_the_references_settings():
    c, _ = resolve(["--num_labeled", "100"])
    assert (c.arch, c.batch_size, c.learning_rate_d, c.optimizer) == ("reference", 32, 1e-4,
                                                                      "adam")


@pytest.mark.parametrize("argv, message", [
    (["--arch", "paper", "--method", "ssgan"], "--arch paper with --method ssgan cannot train G"),
    (["--method", "supervised", "--learning_rate_g", "0.1"], "--learning_rate_g would be ignored"),
    (["--method", "supervised", "--update_rate", "2"], "--update_rate would be ignored"),
    (["--arch", "paper", "--norm_type", "instance"], "--norm_type would be ignored"),
    (["--feature_matching", "l1"], "--feature_matching would be ignored"),
    (["--data_seed", "3"], "--data_seed would be ignored"),
    (["--unlabeled_weight", "2"], "--unlabeled_weight would be ignored"),
])
def test_combinations_that_cannot_do_what_they_say_are_refused(argv, message):
    with pytest.raises(ConfigError, match="^" + message.replace("-", r"\-")):
        resolve(argv)


def test_flags_that_apply_are_accepted():
    # No ConfigError, and each flag given reaches the resolved config with its
    # value (the recipe does not overwrite it).
    c, from_recipe = resolve(["--method", "improved_gan", "--feature_matching", "l1",
                              "--data_seed", "3", "--unlabeled_weight", "2", "--update_rate",
                              "2"])
    assert (c.method, c.arch, c.num_labeled) == ("improved_gan", "paper", 100)  # MNIST recipe
    assert (c.feature_matching, c.data_seed, c.unlabeled_weight, c.update_rate) == \
        ("l1", 3, 2.0, 2)
    assert not {"feature_matching", "data_seed", "unlabeled_weight",
                "update_rate"} & set(from_recipe)
    c, _ = resolve(["--num_labeled", "100", "--data_seed", "3", "--unlabeled_weight", "2"])
    assert (c.method, c.arch) == ("ssgan", "reference")
    assert (c.num_labeled, c.data_seed, c.unlabeled_weight) == (100, 3, 2.0)
    c, _ = resolve(["--norm_type", "instance", "--deconv_type", "nn", "--bn_decay", "0.99"])
    assert (c.arch, c.norm_type, c.deconv_type, c.bn_decay) == ("reference", "instance", "nn",
                                                                0.99)


def test_help_shows_each_recipes_defaults():
    out = subprocess.run([sys.executable, "trainer.py", "--help"], capture_output=True,
                         text=True, check=True).stdout
    flat = " ".join(out.split())
    assert "(default: 32; paper recipe: 100)" in flat
    assert "paper recipe: MNIST 0.003, SVHN 0.0003, CIFAR10 0.0003" in flat
    assert "paper recipe: MNIST 10 per class, SVHN 100 per class, CIFAR10 400 per class" in flat
    assert "Recipes:" in out and recipes.PAPER_SCRIPTS["MNIST"].script in flat
