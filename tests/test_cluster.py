"""Multi-worker training on TensorFlow's runtime: TF_CONFIG parsing, and a
real cluster (one parameter server, two workers as processes on loopback)."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import cluster
import trainer
from config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTS = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"],
         "ps": ["127.0.0.1:4"]}


def config_of(args):
    return trainer.parse_train_config(args)[0]


def test_tf_config_and_flags():
    environ = {"TF_CONFIG": json.dumps({"cluster": HOSTS, "task": {"type": "worker",
                                                                   "index": 1}})}
    info = cluster.cluster_info(config_of([]), environ)
    assert (info.task_type, info.task_index, info.worker_index, info.num_workers) == \
        ("worker", 1, 2, 3)
    assert not info.is_chief
    chief = cluster.cluster_info(config_of([]), {"TF_CONFIG": json.dumps(
        {"cluster": HOSTS, "task": {"type": "chief", "index": 0}})})
    assert chief.is_chief and chief.worker_index == 0
    flags = cluster.cluster_info(config_of(
        ["--job_name", "worker", "--task_index", "0", "--ps_hosts", "a:1",
         "--worker_hosts", "b:1,c:1"]), {})
    assert flags.is_chief and flags.num_workers == 2 and flags.cluster["ps"] == ["a:1"]
    assert cluster.cluster_info(config_of([]), {}) is None


@pytest.mark.parametrize("tf_config, message", [
    ("{not json", "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}),
     "needs at least one parameter server"),
    (json.dumps({"cluster": HOSTS, "task": {"type": "worker", "index": 5}}),
     "task worker:5 is not in the cluster"),
])
def test_bad_cluster_descriptions(tf_config, message):
    with pytest.raises(ConfigError, match=message):
        cluster.cluster_info(config_of([]), {"TF_CONFIG": tf_config})


def test_cluster_needs_a_train_dir_and_no_hccl(data):
    environ = {"TF_CONFIG": json.dumps({"cluster": HOSTS, "task": {"type": "chief",
                                                                   "index": 0}})}
    config, explicit, _ = trainer.parse_train_config(["--dataset", data["easy"]])
    with pytest.raises(ConfigError, match="needs --train_dir"):
        trainer.train(config, explicit, environ=environ)


def launch(num_workers, log_dir, args):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "launch_local_cluster", os.path.join(ROOT, "scripts", "launch_local_cluster.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(num_workers), "--log_dir", log_dir, "--timeout", "400"] + args)


def train_steps(log_path):
    with open(log_path) as f:
        return [int(m.group(1)) for m in re.finditer(r"\[train step +(\d+)\]", f.read())]


def trainable_values(checkpoint):
    reader = tf.train.NewCheckpointReader(checkpoint)
    names = [n for n in reader.get_variable_to_shape_map()
             if n.startswith(("Discriminator/", "Generator/")) and "adam" not in n
             and "moving" not in n]
    return {n: reader.get_tensor(n) for n in names}


def changed(before, after, prefix):
    return [n for n in before if n.startswith(prefix) and not np.array_equal(before[n], after[n])]


def own_processes(marker):
    """Live processes whose command line mentions `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except (IOError, OSError):
            pass
    return found


def test_two_workers_train_in_lock_step_and_resume(data, tmp_path):
    run_dir = str(tmp_path / "run")
    logs = str(tmp_path / "logs")
    common = ["--dataset", data["easy"], "--train_dir", run_dir, "--log_step", "1"]
    assert launch(2, logs, common + ["--max_training_steps", "4", "--output_save_step", "1",
                                     "--max_to_keep", "10"]) == 0
    chief_log, worker_log = (os.path.join(logs, n) for n in ("chief0.log", "worker0.log"))
    # Both took part, step for step; the worker read its own shard.
    assert train_steps(chief_log) == train_steps(worker_log) == [1, 2, 3, 4]
    assert "Worker 1 of 2 (reads data shard 1)" in open(worker_log).read()
    assert tf.train.latest_checkpoint(run_dir).endswith("model-4")
    reader = tf.train.NewCheckpointReader(os.path.join(run_dir, "model-4"))
    assert reader.get_tensor("global_step") == 4
    # Step 0 trains D, step 1 G, ...: each changes only its own network.
    values = [trainable_values(os.path.join(run_dir, "model-%d" % s)) for s in (1, 2, 3)]
    assert changed(values[0], values[1], "Generator/") and \
        not changed(values[0], values[1], "Discriminator/")
    assert changed(values[1], values[2], "Discriminator/") and \
        not changed(values[1], values[2], "Generator/")
    # The global batch: instances/sec counts both workers' examples.
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["batch_size"] == 32
    # Resuming the distributed run continues from its checkpoint.
    assert launch(2, logs, common + ["--max_training_steps", "8"]) == 0
    assert "Resumed from %s at step 4" % os.path.join(run_dir, "model-4") in open(chief_log).read()
    assert train_steps(worker_log) == [5, 6, 7, 8]
    assert tf.train.latest_checkpoint(run_dir).endswith("model-8")
    assert own_processes(run_dir) == []  # the parameter server and workers are gone
