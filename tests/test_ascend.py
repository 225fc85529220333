"""The Ascend / ModelArts paths, against stand-in npu_bridge and moxing
packages (tests/standins) that record what they were asked to do; and the
ModelZoo scripts, which must also work on the CPU."""

import ast
import glob
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow.compat.v1 as tf

import cann
import train_loop
import trainer
from flag_table import parse_train_config
from conftest import fake_cann
from errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI = {"RANK_SIZE": "2", "RANK_TABLE_FILE": "/tmp/rank_table.json", "JOB_ID": "77",
         "ASCEND_DEVICE_ID": "0"}


def records():
    import npu_bridge
    return npu_bridge.CALLS, npu_bridge.EXECUTED


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
    # The adapter all-reduces only if the process's own environment says so.
    with pytest.raises(ConfigError, match="RANK_SIZE is 1 in this process's environment, "
                                          "which CANN's adapter reads, but the trainer was "
                                          "given 2 cards"):
        ascend.check_adapter_environment(ascend.RankInfo(2, 0, 0), {})
    ascend.check_adapter_environment(ascend.RankInfo(2, 0, 0), {"RANK_SIZE": "2"})


def train(args, environ):
    config, explicit, _ = parse_train_config(args)
    return train_loop.train(config, explicit, environ=environ)


def card_environment(tmp_path, rank, job):
    """What scripts/train_full_8p.sh gives card `rank` of two; the stand-in
    HCCL's ranks meet beside the rank table."""
    return {"RANK_SIZE": "2", "RANK_ID": str(rank), "ASCEND_DEVICE_ID": str(rank),
            "RANK_TABLE_FILE": str(tmp_path / "rank_table.json"), "JOB_ID": job,
            "HCCL_EXEC_TIMEOUT": "90"}


def start_card(tmp_path, rank, job, args, log_path):
    """Card `rank` as its own trainer process (stand-in adapter)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests", "standins"),
               **card_environment(tmp_path, rank, job))
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "trainer.py"] + args, cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def two_cards(tmp_path, monkeypatch, job, args0, args1):
    """Card 1 as a process, card 0 here (its stand-in records stay
    readable); returns (card 0's status, card 1's status, card 1's log)."""
    log_path = str(tmp_path / ("card1-%s.log" % job))
    other = start_card(tmp_path, 1, job, args1, log_path)
    try:
        for name, value in card_environment(tmp_path, 0, job).items():
            monkeypatch.setenv(name, value)  # the adapter reads os.environ
        status = trainer.main(args0)
        other_status = other.wait(timeout=300)
    finally:
        other.kill()
    with open(log_path) as f:
        return status, other_status, f.read()


@pytest.mark.slow
def test_two_cards_train_as_one_and_refuse_to_start_apart(standins, data, tmp_path, monkeypatch,
                                                          capsys):
    """Two cards over the stand-in HCCL, which really exchanges values
    between the two processes: both optimizers all-reduced with the
    adapter's loss scaling, one broadcast of the weights, rank 0 alone
    writing; a rerun where the cards would start at different steps (each
    card its own run folder, as the 8p script once had) stops both with one
    clear error instead of hanging."""
    calls, executed = records()
    own, other = str(tmp_path / "card0"), str(tmp_path / "card1")
    args = ["--dataset", data["easy"], "--max_training_steps", "4", "--device", "npu",
            "--output_save_step", "2", "--train_dir"]
    status, other_status, _ = two_cards(tmp_path, monkeypatch, "fresh", args + [own],
                                        args + [other])
    assert (status, other_status) == (0, 0)
    assert not os.path.exists(other)  # only rank 0 writes
    wrapped = [c[1] for c in calls if c[0] == "NPUDistributedOptimizer"]
    assert sorted(wrapped) == ["d_optimize_adam", "g_optimize_adam"]
    scaled = [c for c in calls if c[0] == "NPULossScaleOptimizer"]
    assert len(scaled) == 2 and all(c[2] is True for c in scaled)  # is_distributed
    with tf.Graph().as_default():
        tf.train.import_meta_graph(os.path.join(own, "model-4.meta"))
        float_vars = sorted(v.op.name for v in tf.global_variables()
                            if v.dtype.base_dtype.is_floating)
        trainable = len(tf.trainable_variables())
    # One all-reduce per gradient, as the adapter issues them (fusion=1: HCCL
    # fuses them); the agreement's, which depend on their results, unfused, as
    # the stand-in (like HCCL's fusion) requires, as are the loss scaling's
    # float-status all-reduces (the adapter's own, one per network).
    reduces = [c for c in calls if c[0] == "hccl_ops.allreduce"]
    assert len([c for c in reduces if c[2] == 1]) == trainable
    assert sorted(c[1].split("/")[0] for c in reduces if c[2] != 1) == \
        ["agreement"] * 3 + ["train"] * 2
    broadcasts = sorted((c for c in calls if c[0] == "hccl_ops.broadcast"),
                        key=lambda c: len(c[1]))
    assert [b[1] for b in broadcasts[:-1]] == [["agreement/Cast"]]  # rank 0's step
    weights = sorted(re.sub("/read$", "", name) for name in broadcasts[-1][1])
    assert weights == float_vars and broadcasts[-1][2] == 0  # one list
    assert executed["broadcast"] == 2  # the weights, then rank 0's step for the check
    # Rerun: card 0 would resume at step 4, card 1 (its own, empty folder) start at 0.
    args[3] = "6"
    status, other_status, other_log = two_cards(tmp_path, monkeypatch, "split", args + [own],
                                                args + [other])
    assert (status, other_status) == (2, 2)
    message = "the cards start at different steps (rank 0 at step 4, card %d at step %d"
    assert message % (0, 4) in capsys.readouterr().err
    assert message % (1, 0) in other_log
    # (One run folder resumes both: test_8p_script_run_twice_...)


@pytest.mark.slow
def test_a_signal_to_one_card_stops_every_card_after_the_same_step(data, tmp_path):
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--max_training_steps", "10000", "--device", "npu",
            "--log_step", "1", "--train_dir", run_dir]
    logs = [str(tmp_path / ("card%d.log" % r)) for r in (0, 1)]
    cards = [start_card(tmp_path, r, "signal", args, logs[r]) for r in (0, 1)]
    try:
        deadline = time.time() + 240
        while "[train step    3]" not in open(logs[1]).read():
            assert time.time() < deadline and cards[1].poll() is None, open(logs[1]).read()
            time.sleep(0.5)
        cards[1].send_signal(signal.SIGINT)
        statuses = [c.wait(timeout=120) for c in cards]
    finally:
        for card in cards:
            card.kill()
    texts = [open(path).read() for path in logs]
    # Card 1 was asked; card 0 stopped with it (status of a SIGTERM), after the same step.
    assert statuses == [143, 130], texts
    stopped = [re.findall(r"Stopped at step (\d+) with the other cards", t) for t in texts]
    assert stopped[0] == stopped[1] and len(stopped[0]) == 1, texts
    assert tf.train.latest_checkpoint(run_dir).endswith("model-%s" % stopped[0][0])


@pytest.mark.slow
def test_a_loss_lost_on_one_card_stops_every_card(data, tmp_path):
    """Card 1 alone diverges (its own Adam, with an absurd learning rate,
    moves its weights out of range): both cards stop after the same step with
    the NaN error, instead of card 1 leaving and card 0 blocking."""
    args = ["--dataset", data["easy"], "--max_training_steps", "200", "--device", "npu",
            "--train_dir", str(tmp_path / "run")]
    logs = [str(tmp_path / ("card%d.log" % r)) for r in (0, 1)]
    cards = [start_card(tmp_path, 0, "nan", args, logs[0]),
             start_card(tmp_path, 1, "nan", args + ["--learning_rate_d", "1e30",
                                                    "--learning_rate_g", "1e30"], logs[1])]
    try:
        statuses = [c.wait(timeout=300) for c in cards]
    finally:
        for card in cards:
            card.kill()
    texts = [open(path).read() for path in logs]
    assert statuses == [1, 1], texts
    lost = [re.findall(r"loss (?:became NaN or Inf|passed 10000) at step (\d+) on 1 of the 2 "
                       r"cards", t) for t in texts]
    assert lost[0] == lost[1] and len(lost[0]) == 1, texts


@pytest.mark.slow
def test_a_run_resumes_on_the_kind_of_device_it_started_on(standins, data, tmp_path,
                                                           monkeypatch):
    """The NPU's loss scaling keeps its own optimizer state: a CPU run does
    not resume on the NPU (a clear error naming --checkpoint, not a shape
    mismatch), and a TensorFlow cluster is not for NPUs."""
    import json
    monkeypatch.delenv("RANK_SIZE", raising=False)
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--train_dir", run_dir, "--max_training_steps"]
    assert train(args + ["2", "--device", "cpu"], {}) == 0
    with pytest.raises(ConfigError, match=r"was trained on the CPU and this process trains on "
                                          r"the NPU: .* --checkpoint .*model-2"):
        train(args + ["4", "--device", "npu"], {"ASCEND_DEVICE_ID": "0"})
    tf_config = json.dumps({"cluster": {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]},
                            "task": {"type": "chief", "index": 0}})
    with pytest.raises(ConfigError, match="Ascend cards train together over HCCL"):
        train(args + ["4", "--device", "npu"], {"ASCEND_DEVICE_ID": "0", "TF_CONFIG": tf_config})


@pytest.mark.slow
def test_the_npus_overflow_shows_in_the_float_status_and_skips_the_step(standins, data,
                                                                        tmp_path, monkeypatch):
    """The 910 saturates float16 at +-65504 instead of overflowing to Inf, so
    an is_finite test passes on gradients that overflowed; the adapter's
    float status catches them. A loss scale that makes every gradient leave
    float16's range: every step is skipped (Adam never applied, its
    beta1_power still 0.5) and the scale halves each time, while the global
    step counts on; with a scale of 1 the steps apply."""
    import precision
    monkeypatch.delenv("RANK_SIZE", raising=False)

    def run(name, initial):
        monkeypatch.setattr(precision, "LOSS_SCALE_INITIAL", initial)
        run_dir = str(tmp_path / name)
        assert train(["--dataset", data["easy"], "--train_dir", run_dir, "--device", "npu",
                      "--max_training_steps", "4"], {"ASCEND_DEVICE_ID": "0"}) == 0
        return tf.train.load_checkpoint(os.path.join(run_dir, "model-4"))
    def beta1_power(reader, net):  # Adam's, created inside the loss scaling's cond
        names = [n for n in reader.get_variable_to_shape_map()
                 if n.startswith("train/%s_optimize/" % net) and n.endswith("/beta1_power")]
        assert len(names) == 1, names
        return reader.get_tensor(names[0])
    saturated = run("saturated", 2.0 ** 40)
    assert saturated.get_tensor("global_step") == 4
    for net in ("d", "g"):  # two steps each
        assert saturated.get_tensor("train/%s_optimize/loss_scale" % net) == 2.0 ** 38
        assert beta1_power(saturated, net) == 0.5
    applied = run("applied", 1.0)
    assert applied.get_tensor("train/d_optimize/loss_scale") == 1.0
    assert beta1_power(applied, "d") == pytest.approx(0.5 ** 3)


def test_the_cann_version_is_read_from_the_installers_info_file(tmp_path):
    assert [cann.parse_version(text) for text in
            ("6.0.1", "6.3.RC1", "7.0.0.alpha003", "8.0.RC2", "9.2.0-beta.2", "RC1", "")] == \
        [(6, 0, 1), (6, 3), (7, 0, 0), (8, 0), (9, 2, 0), None, None]
    root, home = tmp_path / "root", str(tmp_path / "home")
    nothing = cann.lookup({"HOME": home}, str(root))
    assert nothing.version is None and nothing.info_file is None
    assert nothing.searched == tuple(
        os.path.join(base, install) for base in (os.path.join(home, "Ascend"),
                                                 str(root / "usr" / "local" / "Ascend"))
        for install in ("ascend-toolkit/latest", "nnae/latest", "cann"))
    # root's install, then a user's own (~/Ascend), then the one set_env.sh names.
    system = root / "usr" / "local" / "Ascend" / "ascend-toolkit" / "latest"
    fake_cann(system, "6.0.1", arch="x86_64")
    found = cann.lookup({"HOME": home}, str(root))
    assert found[:3] == ((6, 0, 1), "6.0.1",
                         str(system / "x86_64-linux" / "ascend_toolkit_install.info"))
    fake_cann(os.path.join(home, "Ascend", "ascend-toolkit", "latest"), "6.3.RC1")
    assert cann.lookup({"HOME": home}, str(root)).version == (6, 3)
    sourced = fake_cann(tmp_path / "toolkit", "8.0.RC2")
    assert cann.lookup(dict(sourced, HOME=home), str(root)).version == (8, 0)
    opp = {"ASCEND_OPP_PATH": str(tmp_path / "toolkit" / "opp")}  # set_env.sh's too
    assert cann.lookup(opp, str(root)).version == (8, 0)
    nnae = tmp_path / "nnae" / "latest"
    nnae.mkdir(parents=True)
    (nnae / "ascend_nnae_install.info").write_text(
        "package_name=Ascend-cann-nnae\nversion=7.0.0.alpha003\narch=aarch64\n")
    assert cann.lookup({"ASCEND_HOME_PATH": str(nnae)}, str(tmp_path)).version == (7, 0, 0)
    # A file without a version line is passed over.
    (tmp_path / "toolkit" / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\n")
    assert cann.lookup(sourced, str(root)).version == (6, 0, 1)


def test_the_standin_adapter_refuses_a_precision_mode_its_cann_does_not_take(standins,
                                                                             tmp_path,
                                                                             monkeypatch):
    """As the adapter does from CANN 6.2 and the graph engine before it, so
    that a test of ours fails if we send a mode the release does not take."""
    import ascend

    def run(mode):
        with tf.Graph().as_default():
            with tf.Session(config=ascend.npu_session_config(mode)) as session:
                return session.run(tf.constant(3))
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    assert run("force_fp32") == 3  # no info file: a current CANN
    monkeypatch.setenv("ASCEND_HOME_PATH", str(tmp_path / "old"))
    fake_cann(tmp_path / "old", "6.0.1")
    with pytest.raises(tf.errors.InternalError, match="GE of CANN 6.0.1 .*precision_mode "
                                                      "force_fp32 is not supported"):
        run("force_fp32")
    assert run("allow_fp32_to_fp16") == run(None) == 3
    monkeypatch.setenv("ASCEND_HOME_PATH", str(tmp_path / "new"))
    fake_cann(tmp_path / "new", "6.3.RC1")
    assert run("force_fp32") == 3
    with pytest.raises(tf.errors.InvalidArgumentError, match="'fp8' is invalid, it should be "
                                                             "one of the list:\\['force_fp32'"):
        with tf.Graph().as_default():
            config = ascend.npu_session_config()
            config.graph_options.rewrite_options.custom_optimizers[0].parameter_map[
                "precision_mode"].s = b"fp8"
            tf.Session(config=config)


@pytest.mark.slow
def test_fp32_on_an_older_cann_trains_in_a_mode_it_takes(standins, data, tmp_path, monkeypatch,
                                                        caplog):
    """CANN 6.0.1 does not take force_fp32 (the stand-in adapter refuses it
    there): --precision fp32 trains in allow_fp32_to_fp16, says so once, and
    the run folder records it; an explicit --precision_mode force_fp32, or a
    run folder a newer CANN left in force_fp32, stops before any work."""
    import json
    monkeypatch.delenv("RANK_SIZE", raising=False)
    environ = dict(fake_cann(tmp_path / "cann", "6.0.1"), ASCEND_DEVICE_ID="0")
    monkeypatch.setenv("ASCEND_HOME_PATH", environ["ASCEND_HOME_PATH"])  # the adapter's
    caplog.set_level(logging.INFO)
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--train_dir", run_dir, "--device", "npu",
            "--max_training_steps"]
    assert train(args + ["2"], environ) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "CANN 6.0.1" in m and "has no precision_mode force_fp32, "
                "which needs CANN 6.2 or later. Using precision_mode allow_fp32_to_fp16" in m]) == 1
    assert [m for m in messages if m.startswith("Device: npu (card 0 of 1; precision_mode "
                                                "allow_fp32_to_fp16: ")]
    config_file = os.path.join(run_dir, "config.json")
    with open(config_file) as f:
        saved = json.load(f)
    assert saved["precision_mode"] == "allow_fp32_to_fp16"
    fresh = str(tmp_path / "explicit")
    with pytest.raises(ConfigError, match="^--precision_mode force_fp32: precision_mode "
                                          "force_fp32 needs CANN 6.2 or later, and the "
                                          "installed CANN is 6.0.1 "):
        train(["--dataset", data["easy"], "--train_dir", fresh, "--device", "npu",
               "--precision_mode", "force_fp32", "--max_training_steps", "2"], environ)
    assert not os.path.exists(fresh)
    saved["precision_mode"] = "force_fp32"  # as a CANN 6.3 run would have left it
    with open(config_file, "w") as f:
        json.dump(saved, f)
    with pytest.raises(ConfigError, match="^resuming %s: precision_mode force_fp32 needs CANN "
                                          "6.2 or later" % re.escape(run_dir)):
        train(args + ["4"], environ)


def test_multi_card_needs_the_npu(data, tmp_path, capsys):
    args = ["--dataset", data["easy"], "--train_dir", str(tmp_path / "r"), "--device", "cpu"]
    with pytest.raises(ConfigError, match="multi-card training runs on Ascend NPUs"):
        train(args, dict(MULTI))


@pytest.mark.slow
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


@pytest.mark.slow
def test_local_urls_are_used_as_they_are(standins, data, tmp_path, monkeypatch):
    # The stand-in moxing is importable here, as on ModelArts: local paths
    # must still not go through it (no copy, no upload, not even an import).
    import importlib.util
    assert importlib.util.find_spec("moxing") is not None and "moxing" not in sys.modules
    monkeypatch.setenv("MOXING_STANDIN_ROOT", str(tmp_path / "obs"))
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    status = trainer.main(["--dataset", "easy", "--data_url", os.path.dirname(data["easy"]),
                           "--train_url", out, "--cache_dir", cache, "--max_training_steps",
                           "2", "--device", "cpu"])
    assert status == 0
    imported = sorted(m for m in sys.modules if m.split(".")[0] == "moxing")
    assert imported == [], getattr(sys.modules.get("moxing.file"), "CALLS", None)
    assert not os.path.exists(cache)  # nothing copied there
    runs = os.listdir(out)
    assert len(runs) == 1 and runs[0].startswith("default-EASY_lr_g_0.0001")
    assert os.path.isfile(os.path.join(out, runs[0], "model-2.index"))


def _module_level_imports(path):
    tree = ast.parse(open(path).read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.slow
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


@pytest.mark.slow
# train_full_1p.sh differs only in its kind and default steps: the README's
# commands run both scripts (test_readme.py checks their case logs)
@pytest.mark.parametrize("script, kind", [("train_performance_1p.sh", "perf")])
def test_modelzoo_scripts_report_what_the_log_says(script, kind, data, tmp_path):
    data_path = os.path.dirname(data["easy"])
    out = str(tmp_path / "test")
    # On the stand-in NPU, in a shell where an 8-card job's rank table is set:
    # the adapter would start HCCL with it unless the one-card script drops it.
    table = tmp_path / "rank_table_8p.json"
    table.write_text(json.dumps({"server_count": "1", "version": "1.0", "server_list": [
        {"server_id": "10.0.0.1", "device": [{"device_id": str(i), "rank_id": str(i)}
                                             for i in range(8)]}]}))
    env = dict(os.environ, ASCEND_DEVICE_ID="0", RANK_TABLE_FILE=str(table),
               PYTHONPATH=os.path.join(ROOT, "tests", "standins"),
               # the script's python3: this interpreter
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RANK_SIZE", None)
    started = time.time()
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", script), "--data_path=%s" % data_path,
         "--dataset=easy", "--train_steps=120", "--batch_size=16", "--output_path=%s" % out],
        capture_output=True, text=True, timeout=600, env=env)
    wall_seconds = time.time() - started
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
    # Whole seconds (date +%s) around the trainer, inside the time measured here
    # (+1: the two second counters may tick at different moments).
    assert re.match(r"^\d+$", printed["E2E Training Duration sec"])
    assert 0 <= int(printed["E2E Training Duration sec"]) <= wall_seconds + 1
    assert "Training device : npu" in result.stdout  # what the log's "Device:" line says
    case = "Improved-GAN_ID2094_for_TensorFlow_bs16_1p_%s" % kind
    with open(os.path.join(out, "output", "0", case + ".log")) as f:
        keys = dict(line.strip().split(" = ", 1) for line in f)
    assert set(keys) == {"Network", "RankSize", "BatchSize", "DeviceType", "CaseName",
                         "ActualFPS", "TrainingTime", "ActualLoss", "E2ETrainingTime",
                         "TrainAccuracy"}
    assert keys["CaseName"] == case and keys["BatchSize"] == "16" and keys["RankSize"] == "1"
    assert keys["ActualFPS"] == printed["Final Performance images/sec"]
    assert keys["ActualLoss"] == lines[-1][0]


@pytest.mark.slow
def test_8p_script_run_twice_resumes_every_card_at_the_same_step(data, tmp_path):
    """The 8p script with two cards (stand-in adapter, two processes): a
    second run resumes both cards from the one run folder rank 0 wrote (each
    card's own folder, as before, would have set them apart and hung them)."""
    (tmp_path / "rank_table.json").write_text("{}")
    env = dict(os.environ, RANK_SIZE="2", HCCL_EXEC_TIMEOUT="90",
               PYTHONPATH=os.path.join(ROOT, "tests", "standins"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    out = tmp_path / "test"

    def run(steps, job):
        result = subprocess.run(
            ["bash", os.path.join(ROOT, "scripts", "train_full_8p.sh"),
             "--data_path=%s" % os.path.dirname(data["easy"]), "--dataset=easy",
             "--train_steps=%d" % steps, "--batch_size=16", "--output_path=%s" % out,
             "--rank_table=%s" % (tmp_path / "rank_table.json")],
            capture_output=True, text=True, timeout=600, env=dict(env, JOB_ID=job))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Training device : npu" in result.stdout
        return [(out / "output" / str(r) / ("train_%d.log" % r)).read_text() for r in (0, 1)]
    run(2, "first")
    logs = run(4, "second")
    ckpt = str(out / "output" / "ckpt")
    assert "Resumed from %s at step 2" % os.path.join(ckpt, "model-2") in logs[0]
    assert "resuming from %s" % os.path.join(ckpt, "model-2") in logs[1]
    assert all("Training finished at step 4" in log for log in logs)
    assert not (out / "output" / "1" / "ckpt").exists()


def trainer_of_card(rank, marker):
    """The pid of card `rank`'s trainer process (its command line mentions
    `marker`), or None."""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                command = f.read()
            if b"trainer.py" not in command or marker.encode() not in command:
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                if b"RANK_ID=%d\0" % rank in f.read():
                    return int(pid)
        except (IOError, OSError):
            pass
    return None


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["ctrl_c_to_the_script", "one_card_killed"])
def test_8p_script_stops_every_card(fault, data, tmp_path):
    """Ctrl-C to the script reaches every card (each in its own process
    group): they stop together and rank 0 saves. A card killed outright
    cannot vote: the script stops the others (SIGTERM, then SIGKILL after
    STOP_GRACE_SECS) instead of leaving them blocked until HCCL's timeout,
    and no trainer outlives it."""
    (tmp_path / "rank_table.json").write_text("{}")
    out = tmp_path / "test"
    env = dict(os.environ, RANK_SIZE="2", HCCL_EXEC_TIMEOUT="600", STOP_GRACE_SECS="5",
               JOB_ID=fault, PYTHONPATH=os.path.join(ROOT, "tests", "standins"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    script = subprocess.Popen(
        ["bash", os.path.join(ROOT, "scripts", "train_full_8p.sh"),
         "--data_path=%s" % os.path.dirname(data["easy"]), "--dataset=easy",
         "--train_steps=100000", "--batch_size=16", "--output_path=%s" % out,
         "--rank_table=%s" % (tmp_path / "rank_table.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        # a shell started with SIGINT ignored (pytest run in the background) can
        # never trap it: start the script as from a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    logs = [out / "output" / str(r) / ("train_%d.log" % r) for r in (0, 1)]
    try:
        deadline = time.time() + 240
        while not all(p.exists() and "[val   step    0]" in p.read_text() for p in logs):
            assert time.time() < deadline and script.poll() is None
            time.sleep(0.5)
        if fault == "ctrl_c_to_the_script":
            script.send_signal(signal.SIGINT)
        else:
            os.kill(trainer_of_card(1, str(out)), signal.SIGKILL)
        printed = script.communicate(timeout=180)[0]
    finally:
        script.kill()
        left = [pid for pid in (trainer_of_card(r, str(out)) for r in (0, 1)) if pid]
        for pid in left:  # killed here so that a failure leaves none running
            os.kill(pid, signal.SIGKILL)
    texts = [p.read_text() for p in logs]
    assert not left, "trainers outlived the script"
    if fault == "ctrl_c_to_the_script":
        assert script.returncode == 130, printed
        assert "training was stopped (status 130)" in printed
        stopped = [re.findall(r"Stopped at step (\d+) with the other cards", t) for t in texts]
        assert stopped[0] == stopped[1] and len(stopped[0]) == 1, texts
        ckpt = str(out / "output" / "ckpt")
        assert tf.train.latest_checkpoint(ckpt).endswith("model-%s" % stopped[0][0])
    else:
        assert script.returncode == 137, printed  # the killed card's status
        assert "card 1's trainer exited with status 137; stopping the others" in printed


def test_8p_script_needs_a_rank_table(tmp_path):
    env = dict(os.environ,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RANK_TABLE_FILE", None)
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "train_full_8p.sh"),
                             "--data_path=%s" % tmp_path], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 1 and "needs the HCCL rank table" in result.stdout


def test_modelzoo_report_refuses_a_run_that_trained_nothing(tmp_path):
    """A full run already at --train_steps trains no step: the scripts say so
    and exit 1 instead of reporting 0 images/sec (the report, on a log as
    the trainer writes it, without training)."""
    log = tmp_path / "train_0.log"
    log.write_text("[2026-01-01 00:00:00,000] Device: cpu (fp32)\n"
                   "[2026-01-01 00:00:00,001] test/output/0/ckpt is already trained to step 20 "
                   "(--max_training_steps 20)\n")
    command = ('source "%s"; output_path="%s"; mkdir -p "$output_path/output/0"; '
               'report "%s" 3 1 acc 0' % (os.path.join(ROOT, "scripts", "modelzoo_common.sh"),
                                            tmp_path, log))
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[Error] no step was trained, so there are no figures to report: test/output/0/ckpt " \
           "is already trained to step 20" in result.stdout
    assert "Final Performance" not in result.stdout
    assert not list((tmp_path / "output" / "0").iterdir())  # no case log
