"""run_folder.py: what a run folder is called, which flags a resumed run
keeps, what it must match, the lock, and what the writer leaves in it.
Real checkpoints, config.json files and locks in temporary folders."""

import json
import logging
import os

import pytest
import tensorflow.compat.v1 as tf

import run_folder
from flag_table import parse_train_config
from run_config import LEGACY_VALUES, save_run_config
from errors import ConfigError
from names import CONFIG_FILE, LABELED_IDS_FILE, LOG_FILE


def flags(*argv):
    """(TrainConfig, explicit flag names) of a command line."""
    config, explicit, _ = parse_train_config(list(argv))
    return config, explicit


def save_checkpoint(run_dir, step):
    """A real checkpoint model-<step> (one variable) in run_dir."""
    with tf.Graph().as_default():
        tf.get_variable("v", [2], initializer=tf.ones_initializer())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, os.path.join(run_dir, "model"), global_step=step)


def trained_folder(tmp_path, *argv):
    """A run folder with a checkpoint at step 5 and the config.json of a run
    started with `argv`."""
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    config, explicit = flags("--train_dir", run_dir, *argv)
    save_run_config(run_dir, config, {"flag_sources": {n: "command line" for n in explicit}})
    save_checkpoint(run_dir, 5)
    return run_dir


def test_default_names_follow_the_reference_and_cards_agree_by_job_id():
    config, _ = flags("--dataset", "path/to/mnist/", "--prefix", "p", "--learning_rate_g",
                      "0.001", "--update_rate", "2")
    name = os.path.basename(run_folder.default_run_dir(config))
    assert name.startswith("p-MNIST_lr_g_0.001_d_0.0001_update_G2D1-")
    assert run_folder.default_run_dir(config, "root", job_id="77") == \
        os.path.join("root", "p-MNIST_lr_g_0.001_d_0.0001_update_G2D1-job77")


def test_a_new_folder_is_not_resumed(tmp_path):
    config, explicit = flags("--train_dir", str(tmp_path / "new"))
    assert run_folder.resolve_run(config, explicit) == (config, None, {}, None)


def test_a_resumed_run_keeps_its_flags_unless_given_again(tmp_path):
    run_dir = trained_folder(tmp_path, "--learning_rate_d", "0.003", "--log_step", "7")
    config, explicit = flags("--train_dir", run_dir, "--log_step", "3")
    resumed, resume_from, kept, _ = run_folder.resolve_run(config, explicit)
    assert resume_from == os.path.join(run_dir, "model-5")
    assert resumed.learning_rate_d == 0.003 and kept["learning_rate_d"] == "command line"
    assert resumed.log_step == 3 and "log_step" not in kept  # given now: it wins
    assert run_folder.start_step_of(resume_from) == 5 and run_folder.start_step_of(None) == 0


def test_a_resumed_run_refuses_other_network_flags(tmp_path):
    run_dir = trained_folder(tmp_path, "--n_z", "64")
    config, explicit = flags("--train_dir", run_dir, "--n_z", "128")
    with pytest.raises(ConfigError, match="trained with --n_z 64; resume it with the same value"):
        run_folder.resolve_run(config, explicit)


def test_flags_a_run_predates_take_what_it_was_trained_with(tmp_path):
    run_dir = trained_folder(tmp_path)
    path = os.path.join(run_dir, CONFIG_FILE)
    saved = json.load(open(path))
    for name in LEGACY_VALUES:
        del saved[name]
    json.dump(saved, open(path, "w"))
    config, explicit = flags("--train_dir", run_dir)
    resumed, _, kept, _ = run_folder.resolve_run(config, explicit)
    for name, value in LEGACY_VALUES.items():
        assert getattr(resumed, name) == value and getattr(config, name) != value
        assert kept[name] == "what runs before this flag were trained with"


def test_checkpoints_without_config_or_with_checkpoint_flag_are_refused(tmp_path):
    run_dir = trained_folder(tmp_path)
    config, explicit = flags("--train_dir", run_dir, "--checkpoint", "other/model-3")
    with pytest.raises(ConfigError, match="--checkpoint only initialises a new run"):
        run_folder.resolve_run(config, explicit)
    os.remove(os.path.join(run_dir, CONFIG_FILE))
    config, explicit = flags("--train_dir", run_dir)
    with pytest.raises(ConfigError, match="holds checkpoints but no config.json"):
        run_folder.resolve_run(config, explicit)


def test_the_lock_refuses_a_second_writer_until_released(tmp_path):
    run_dir = str(tmp_path)
    held = run_folder.lock_run_dir(run_dir)
    with pytest.raises(ConfigError, match="is being trained by process %d" % os.getpid()):
        run_folder.lock_run_dir(run_dir)
    held.close()
    run_folder.lock_run_dir(run_dir).close()


def test_the_writer_holds_the_lock_logs_to_train_log_and_removes_leftovers(tmp_path, caplog):
    caplog.set_level(logging.INFO)  # as util.setup_logging sets it
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    save_checkpoint(run_dir, 5)
    leftovers = ["model-10.index.tempstate123", ".samples-10.png.abc.tmp", "checkpoint.tmp9"]
    for name in leftovers:
        open(os.path.join(run_dir, name), "w").close()
    with run_folder.open_run_folder(run_dir, 5):
        with pytest.raises(ConfigError, match="is being trained by"):
            run_folder.lock_run_dir(run_dir)
        logging.getLogger("trainer").info("a line for the run's log")
    assert not set(leftovers) & set(os.listdir(run_dir))
    assert os.path.isfile(os.path.join(run_dir, "model-5.index"))  # the checkpoint stays
    assert "Removed what an interrupted save left in %s" % run_dir in caplog.text
    with open(os.path.join(run_dir, LOG_FILE)) as f:
        assert "a line for the run's log" in f.read()
    run_folder.lock_run_dir(run_dir).close()  # released
    with run_folder.open_run_folder(str(tmp_path / "made"), 0):
        assert os.path.isdir(str(tmp_path / "made"))


def test_config_and_labeled_ids_are_written_for_a_new_run_only(tmp_path):
    run_dir = str(tmp_path)
    config, _ = flags("--num_labeled", "20")
    extra = {"num_classes": 10, "image_shape": [16, 16, 1]}
    run_folder.write_run_config(run_dir, config, extra, None, ["a", "b"], "recipe",
                                {"num_labeled": "command line"})
    saved = json.load(open(os.path.join(run_dir, CONFIG_FILE)))
    assert saved["num_labeled"] == 20 and saved["labels_per_class"] == 2
    assert saved["labeled_ids_file"] == LABELED_IDS_FILE
    assert saved["flag_sources"] == {"num_labeled": "command line"}
    run_folder.check_labeled_ids(run_dir, ["a", "b"])
    # resuming rewrites config.json but keeps the labels the run started with
    run_folder.write_run_config(run_dir, config, extra, "x/model-5", ["c", "d"], "recipe", {})
    run_folder.check_labeled_ids(run_dir, ["a", "b"])
    with pytest.raises(ConfigError, match="lists other labeled examples"):
        run_folder.check_labeled_ids(run_dir, ["c", "d"])
    os.remove(os.path.join(run_dir, LABELED_IDS_FILE))
    with pytest.raises(ConfigError, match="has no labeled_ids.txt"):
        run_folder.check_labeled_ids(run_dir, ["a", "b"])
