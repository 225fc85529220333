"""The Ascend / ModelArts paths, against stand-in npu_bridge and moxing
packages (tests/standins) that record what they were asked to do; and the
ModelZoo scripts, which must also work on the CPU."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

import device
import trainer
from config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI = {"RANK_SIZE": "2", "RANK_TABLE_FILE": "/tmp/rank_table.json", "JOB_ID": "77",
         "ASCEND_DEVICE_ID": "0"}


def records():
    import npu_bridge
    return npu_bridge.CALLS, npu_bridge.EXECUTED


def test_npu_session_config(standins):
    config = device.session_config("npu", "allow_mix_precision")
    RewriterConfig = type(config.graph_options.rewrite_options)
    rewrite = config.graph_options.rewrite_options
    assert [o.name for o in rewrite.custom_optimizers] == ["NpuOptimizer"]
    params = rewrite.custom_optimizers[0].parameter_map
    assert params["use_off_line"].b is True
    assert params["precision_mode"].s == b"allow_mix_precision"
    assert rewrite.remapping == RewriterConfig.OFF
    assert rewrite.memory_optimization == RewriterConfig.OFF
    assert config.allow_soft_placement and not config.log_device_placement
    default = device.session_config("npu").graph_options.rewrite_options.custom_optimizers[0]
    assert "precision_mode" not in default.parameter_map  # the adapter's default
    with pytest.raises(ConfigError, match="--precision_mode must be one of"):
        device.session_config("npu", "fp8")
    with pytest.raises(ConfigError, match="no meaning on the CPU"):
        device.session_config("cpu", "allow_mix_precision")


def test_auto_picks_the_npu_only_when_adapter_and_device_are_there():
    pick = device.resolve_device
    assert pick("auto", environ={}, nodes=["/dev/davinci0"], npu_importable=True) == "npu"
    assert pick("auto", environ={"ASCEND_DEVICE_ID": "3"}, nodes=[], npu_importable=True) == "npu"
    assert pick("auto", environ={"DEVICE_ID": "3"}, nodes=[], npu_importable=True) == "npu"
    assert pick("auto", environ={}, nodes=[], npu_importable=True, gpus=[]) == "cpu"
    assert pick("auto", environ={"ASCEND_DEVICE_ID": "0"}, nodes=["/dev/davinci0"],
                npu_importable=False, gpus=[]) == "cpu"
    assert pick("auto", environ={}, nodes=[], npu_importable=False, gpus=["gpu0"]) == "gpu"
    with pytest.raises(ConfigError, match="no Ascend NPU is usable here"):
        pick("npu", environ={}, nodes=[], npu_importable=False)


def test_rank_environment():
    import ascend
    assert ascend.rank_info({}) == (1, 0, 0)
    info = ascend.rank_info(dict(MULTI, RANK_ID="1", DEVICE_ID="5", ASCEND_DEVICE_ID="4"))
    assert info == (2, 1, 4)  # ASCEND_DEVICE_ID wins over DEVICE_ID
    assert ascend.rank_info({"DEVICE_ID": "5"}).device_id == 5
    for missing in ("RANK_TABLE_FILE", "JOB_ID"):
        environ = dict(MULTI)
        del environ[missing]
        with pytest.raises(ConfigError, match="needs %s set" % missing):
            ascend.rank_info(environ)
    with pytest.raises(ConfigError, match="RANK_ID must lie"):
        ascend.rank_info(dict(MULTI, RANK_ID="2"))


def train(args, environ):
    config, explicit, _ = trainer.parse_train_config(args)
    return trainer.train(config, explicit, environ=environ)


def test_two_cards_wrap_both_optimizers_and_broadcast_once(standins, data, tmp_path):
    calls, executed = records()
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--train_dir", run_dir, "--max_training_steps", "4",
            "--device", "npu", "--output_save_step", "2"]
    assert train(args, dict(MULTI, RANK_ID="0")) == 0
    wrapped = [c[1] for c in calls if c[0] == "NPUDistributedOptimizer"]
    assert sorted(wrapped) == ["d_optimize_adam", "g_optimize_adam"]
    assert ("NPUDistributedOptimizer.compute_gradients", "d_optimize_adam") in calls
    with tf.Graph().as_default():
        tf.train.import_meta_graph(os.path.join(run_dir, "model-4.meta"))
        float_vars = [v for v in tf.global_variables() if v.dtype.base_dtype.is_floating]
    broadcast = [c for c in calls if c[0] == "hccl_ops.broadcast"]
    assert len(broadcast) == len(float_vars) and all(c[2] == 0 for c in broadcast)
    assert executed["broadcast"] == len(float_vars)  # the op ran once, after initialisation
    # Resuming restores, then broadcasts once more.
    assert train(args[:5] + ["6"] + args[6:], dict(MULTI, RANK_ID="0")) == 0
    assert executed["broadcast"] == 2 * len(float_vars)
    assert tf.train.latest_checkpoint(run_dir).endswith("model-6")


def test_only_rank_0_writes(standins, data, tmp_path):
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--train_dir", run_dir, "--max_training_steps", "3",
            "--device", "npu"]
    assert train(args, dict(MULTI, RANK_ID="1")) == 0
    assert not os.path.exists(run_dir)
    assert train(args, dict(MULTI, RANK_ID="0")) == 0
    assert [f for f in sorted(os.listdir(run_dir)) if not f.startswith(".")][:2] == \
        ["checkpoint", "config.json"]


def test_multi_card_needs_the_npu(data, tmp_path, capsys):
    args = ["--dataset", data["easy"], "--train_dir", str(tmp_path / "r"), "--device", "cpu"]
    with pytest.raises(ConfigError, match="multi-card training runs on Ascend NPUs"):
        train(args, dict(MULTI))


def test_obs_urls_go_through_moxing(standins, data, tmp_path, monkeypatch):
    import moxing
    bucket = tmp_path / "obs"
    monkeypatch.setenv("MOXING_STANDIN_ROOT", str(bucket))
    shutil.copytree(data["easy"], str(bucket / "b" / "datasets" / "easy"))
    cache = str(tmp_path / "cache")
    status = trainer.main(["--dataset", "easy", "--data_url", "obs://b/datasets",
                           "--train_url", "obs://b/out", "--cache_dir", cache,
                           "--max_training_steps", "4", "--output_save_step", "2",
                           "--prefix", "ma", "--device", "cpu", "--ignored_platform_flag=1"])
    assert status == 0
    assert moxing.CALLS[0] == ("copy_parallel", "obs://b/datasets", os.path.join(cache, "data"))
    uploads = [c for c in moxing.CALLS[1:] if c[2].startswith("obs://b/out/")]
    assert len(uploads) == 2  # at step 2 and at the end (step 4)
    run_name = os.path.basename(uploads[-1][1])
    assert uploads[-1][1].startswith(os.path.join(cache, "train_dir"))
    copied = bucket / "b" / "out" / run_name
    assert (copied / "model-4.index").exists() and (copied / "config.json").exists()


def test_local_urls_are_used_as_they_are(data, tmp_path):
    out = str(tmp_path / "out")
    status = trainer.main(["--dataset", "easy", "--data_url", os.path.dirname(data["easy"]),
                           "--train_url", out, "--max_training_steps", "2", "--device", "cpu"])
    assert status == 0
    assert "moxing" not in sys.modules
    runs = os.listdir(out)
    assert len(runs) == 1 and runs[0].startswith("default-EASY_lr_g_0.0001")


def _module_level_imports(path):
    tree = ast.parse(open(path).read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_without_standins_nothing_imports_the_adapter(data, tmp_path):
    for path in glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "*", "*.py")):
        if os.sep + "standins" + os.sep in path:
            continue
        top = [n.split(".")[0] for n in _module_level_imports(path)]
        assert "npu_bridge" not in top and "moxing" not in top, path
    code = ("import sys, trainer, evaler, export, device, ascend, modelarts\n"
            "assert trainer.main(['--dataset', %r, '--train_dir', %r, "
            "'--max_training_steps', '2']) == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('npu_bridge', 'moxing')))\n" % (data["easy"], str(tmp_path / "r")))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _last_train_lines(log_path):
    pattern = re.compile(r"\[train step +\d+\] Supervised loss: \S+ D loss: (\S+) G loss: \S+ "
                         r"Accuracy: (\S+) \((\S+) sec/batch, (\S+) instances/sec\)")
    with open(log_path) as f:
        return [pattern.search(l).groups() for l in f if pattern.search(l)][-10:]


@pytest.mark.parametrize("script, kind", [("train_performance_1p.sh", "perf"),
                                          ("train_full_1p.sh", "acc")])
def test_modelzoo_scripts_report_what_the_log_says(script, kind, data, tmp_path):
    data_path = os.path.dirname(data["easy"])
    out = str(tmp_path / "test")
    env = dict(os.environ, ASCEND_DEVICE_ID="0")
    env.pop("RANK_SIZE", None)
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", script), "--data_path=%s" % data_path,
         "--dataset=easy", "--train_steps=120", "--batch_size=16", "--output_path=%s" % out],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = dict(re.findall(r"^(Final Performance images/sec|Final Performance sec/step|"
                              r"E2E Training Duration sec|Final Train Accuracy) : (\S+)$",
                              result.stdout, re.M))
    lines = _last_train_lines(os.path.join(out, "output", "0", "train_0.log"))
    assert len(lines) == 10  # steps 21 ... 111 of 120
    mean = lambda i: sum(float(l[i]) for l in lines) / len(lines)  # noqa: E731
    assert float(printed["Final Performance images/sec"]) == pytest.approx(mean(3), abs=1e-3)
    assert float(printed["Final Performance sec/step"]) == pytest.approx(mean(2), abs=1e-3)
    assert float(printed["Final Train Accuracy"]) == pytest.approx(mean(1), abs=1e-3)
    assert int(printed["E2E Training Duration sec"]) >= 1
    case = "Improved-GAN_ID2094_for_TensorFlow_bs16_1p_%s" % kind
    with open(os.path.join(out, "output", "0", case + ".log")) as f:
        keys = dict(line.strip().split(" = ", 1) for line in f)
    assert set(keys) == {"Network", "RankSize", "BatchSize", "DeviceType", "CaseName",
                         "ActualFPS", "TrainingTime", "ActualLoss", "E2ETrainingTime",
                         "TrainAccuracy"}
    assert keys["CaseName"] == case and keys["BatchSize"] == "16" and keys["RankSize"] == "1"
    assert keys["ActualFPS"] == printed["Final Performance images/sec"]
    assert keys["ActualLoss"] == lines[-1][0]


def test_8p_script_needs_a_rank_table(tmp_path):
    env = dict(os.environ)
    env.pop("RANK_TABLE_FILE", None)
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "train_full_8p.sh"),
                             "--data_path=%s" % tmp_path], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 1 and "needs the HCCL rank table" in result.stdout
