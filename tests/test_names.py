"""names.py: the names on disk stay those old run folders and caches hold
(so they resume, evaluate and export), and it loads without TensorFlow."""

import os
import subprocess
import sys

import names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_names_on_disk_are_those_old_run_folders_hold():
    assert (names.checkpoint_name(120), names.samples_file(120),
            names.generated_images_file(120)) == ("model-120", "samples-120.png",
                                                  "g_img_120.hdf5")
    assert (names.RUN_ROOT, names.CONFIG_FILE, names.LOG_FILE, names.LOCK_FILE,
            names.LABELED_IDS_FILE) == ("train_dir", "config.json", "train.log", ".trainer.lock",
                                        "labeled_ids.txt")
    assert (names.D_SCOPE, names.G_SCOPE, names.EMA_NAME) == (
        "Discriminator", "Generator", "ExponentialMovingAverage")
    assert names.D_NPU_LOSS_SCALE == "train/d_optimize/loss_scale"
    assert names.npu_loss_scale_variable(names.G_OPTIMIZE_SCOPE) == "train/g_optimize/loss_scale"
    assert (names.TFRECORD_FOLDER, names.TFRECORD_MANIFEST) == ("tfrecords", "manifest.json")


def test_a_dataset_is_named_by_its_upper_cased_last_part():
    assert names.dataset_name("mnist") == "MNIST"
    assert names.dataset_name("data/fashion_mnist/") == "FASHION_MNIST"


def test_names_and_the_modules_the_commands_parse_flags_with_load_no_tensorflow():
    code = "import sys, names, flag_table, recipes, flag_rules, run_config, files; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"
