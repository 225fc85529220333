import logging
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402


def load_script(module_name, file_name):
    """scripts/ is not a package; loads one of its files as the module
    `module_name` (importable by that name afterwards) and returns it."""
    spec = importlib.util.spec_from_file_location(
        module_name, os.path.join(ROOT, "scripts", file_name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


load_script("check_compat_module", "check_compat.py")
load_script("benchmark_script", "benchmark.py")
load_script("scripts_launch", "launch_local_cluster.py")

import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_v2_behavior()  # what the entry points do


@pytest.fixture(autouse=True)
def _restore_logging():
    """Entry points replace the root handlers; put them back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def standins(monkeypatch):
    """Stand-in npu_bridge and moxing packages (tests/standins, which record
    how they are called) importable, their records empty; removed afterwards."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "tests", "standins"))
    yield
    for name in list(sys.modules):
        if name.split(".")[0] in ("npu_bridge", "moxing"):
            del sys.modules[name]


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """Two small datasets whose classes are easy to tell apart."""
    from easydata import make_easy_dataset
    root = tmp_path_factory.mktemp("data")
    return {"easy": make_easy_dataset(str(root / "easy")),
            "rgb": make_easy_dataset(str(root / "rgb"), 96, 40, size=8, channels=3)}


@pytest.fixture(scope="session")
def trained(data, tmp_path_factory):
    """A 300-step run on the easy dataset (16x16x1, 10 classes, 200 test
    examples), checkpoints at 100, 200, 300: (run folder, exit status)."""
    import trainer
    run_dir = str(tmp_path_factory.mktemp("runs") / "easy")
    status = trainer.main(["--dataset", data["easy"], "--train_dir", run_dir,
                           "--max_training_steps", "300", "--output_save_step", "100",
                           "--dump_result", "--log_step", "10", "--test_sample_step", "25",
                           "--write_summary_step", "50"])
    return run_dir, status


# Recipes a run stopped and resumed must repeat bit for bit (weights and log
# lines): the paper's (noise layers, G's z, the moving average), the
# reference's (G's z, batch norm) and the supervised baseline (no random op);
# a checkpoint every other step.
RESUMABLE_COMMON = ["--num_labeled", "50", "--seed", "3", "--batch_size", "30",
                    "--output_save_step", "2", "--max_to_keep", "1000", "--log_step", "1",
                    "--test_sample_step", "1000"]
RESUMABLE_RUNS = {
    "paper": ["--method", "improved_gan", "--arch", "paper", "--n_z", "16"] + RESUMABLE_COMMON,
    "reference": ["--method", "ssgan", "--arch", "reference"] + RESUMABLE_COMMON,
    "supervised": ["--method", "supervised", "--arch", "reference", "--ema_decay", "0.9"]
    + RESUMABLE_COMMON}
SUPERVISED_RUN = RESUMABLE_RUNS["supervised"]
RESUMABLE_STEPS = 30


@pytest.fixture(scope="session")
def uninterrupted(data, tmp_path_factory):
    """uninterrupted(recipe): the run folder of RESUMABLE_RUNS[recipe] on the
    easy dataset for RESUMABLE_STEPS steps, never stopped (trained once per
    session), which test_kill's and test_semi_supervised's resumed runs must
    end equal to."""
    import trainer
    folders = {}

    def run(recipe):
        if recipe not in folders:
            run_dir = str(tmp_path_factory.mktemp("uninterrupted") / recipe)
            assert trainer.main(["--dataset", data["easy"], "--train_dir", run_dir,
                                 "--max_training_steps", str(RESUMABLE_STEPS)]
                                + RESUMABLE_RUNS[recipe]) == 0
            folders[recipe] = run_dir
        return folders[recipe]
    return run


def train_lines(run_dir):
    """The [train] and [val] lines of a run folder's train.log, without the
    time stamps and speeds, keyed by (split, step)."""
    with open(os.path.join(run_dir, "train.log")) as f:
        found = re.findall(r"\[(train|val) +step +(\d+)\] (.*Accuracy: [0-9.]+)", f.read())
    return dict(((split, int(step)), text) for split, step, text in found)


def checkpoint_values(checkpoint):
    """Every tensor a checkpoint holds, by name."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.load_checkpoint(checkpoint)
    return dict((name, reader.get_tensor(name)) for name in reader.get_variable_to_shape_map())


def fake_cann(folder, version, arch="aarch64"):
    """A CANN toolkit's latest/ folder as far as its release goes: the
    installer's <arch>-linux/ascend_toolkit_install.info in `folder`.
    Returns the environment set_env.sh gives ({"ASCEND_HOME_PATH": folder}),
    which cann.lookup and the stand-in adapter read."""
    info_dir = os.path.join(str(folder), "%s-linux" % arch)
    os.makedirs(info_dir, exist_ok=True)
    with open(os.path.join(info_dir, "ascend_toolkit_install.info"), "w") as f:
        f.write("package_name=Ascend-cann-toolkit\nversion=%s\ninnerversion=V100R001C29\n"
                "arch=%s\nos=linux\npath=%s\n" % (version, arch, info_dir))
    return {"ASCEND_HOME_PATH": str(folder)}


def network_weights(checkpoint):
    """D's and G's weights in a checkpoint (no Adam slots, batch-norm
    statistics or moving averages): what a training step changes."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.NewCheckpointReader(checkpoint)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith(("Discriminator/", "Generator/")) and "adam" not in n.lower()
            and "moving" not in n.lower()}
