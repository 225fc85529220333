"""Multi-worker training on TensorFlow's runtime: TF_CONFIG parsing, and a
real cluster (one parameter server, two workers as processes on loopback)."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import checkpoints
import cluster
import scripts_launch
import train_loop
from flag_table import parse_train_config
from conftest import network_weights
from errors import ConfigError
from names import EMA_NAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTS = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"],
         "ps": ["127.0.0.1:4"]}


def config_of(args):
    return parse_train_config(args)[0]


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
    config, explicit, _ = parse_train_config(["--dataset", data["easy"]])
    with pytest.raises(ConfigError, match="needs --train_dir"):
        train_loop.train(config, explicit, environ=environ)


def launch(num_workers, log_dir, args):
    return scripts_launch.main([str(num_workers), "--log_dir", log_dir, "--timeout", "400"] + args)


def train_steps(log_path):
    return train_steps_in(read(log_path))


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


@pytest.mark.slow
def test_two_workers_train_in_lock_step_and_resume(data, tmp_path):
    run_dir = str(tmp_path / "run")
    logs = str(tmp_path / "logs")
    common = ["--dataset", data["easy"], "--train_dir", run_dir, "--log_step", "1"]
    assert launch(2, logs, common + ["--max_training_steps", "4", "--output_save_step", "1",
                                     "--max_to_keep", "10", "--ema_decay", "0.9"]) == 0
    chief_log, worker_log = (os.path.join(logs, n) for n in ("chief0.log", "worker0.log"))
    # Both took part, step for step; the worker read its own shard.
    assert train_steps(chief_log) == train_steps(worker_log) == [1, 2, 3, 4]
    assert "Worker 1 of 2 (reads data shard 1)" in open(worker_log).read()
    assert tf.train.latest_checkpoint(run_dir).endswith("model-4")
    reader = tf.train.NewCheckpointReader(os.path.join(run_dir, "model-4"))
    assert reader.get_tensor("global_step") == 4
    # Step 0 trains D, step 1 G, ...: each changes only its own network.
    values = [network_weights(os.path.join(run_dir, "model-%d" % s)) for s in (1, 2, 3)]
    assert changed(values[0], values[1], "Generator/") and \
        not changed(values[0], values[1], "Discriminator/")
    assert changed(values[1], values[2], "Discriminator/") and \
        not changed(values[1], values[2], "Generator/")
    # D's moving average moved once in D's step 2, not once per worker. On a
    # cluster it averages the weights that step started from (the variables'
    # snapshot crosses the network before the update) with the decay of the
    # global step before it: min(0.9, (1 + 2) / (10 + 2)).
    before, after = (tf.train.load_checkpoint(os.path.join(run_dir, "model-%d" % s))
                     for s in (2, 3))
    decay = min(0.9, 3.0 / 12.0)
    suffix = "/" + EMA_NAME
    averages = [n for n in after.get_variable_to_shape_map() if n.endswith(suffix)]
    assert len(averages) > 5
    for name in averages:
        expected = decay * before.get_tensor(name) + \
            (1 - decay) * before.get_tensor(name[:-len(suffix)])
        np.testing.assert_allclose(after.get_tensor(name), expected, rtol=1e-6, atol=1e-7)
    # The global batch: instances/sec counts both workers' examples.
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["batch_size"] == 32
    assert own_processes(run_dir) == []  # the parameter server and workers are gone
    # (Resuming: test_a_cluster_recovers_from_each_task_killed restarts every
    # task from the last checkpoint.)


def task_pids(launcher):
    """{(job, index): pid} of a launcher's trainer processes, from their TF_CONFIG."""
    found = {}
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent != launcher.pid:
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
        except (IOError, OSError, ValueError, IndexError):
            continue
        for item in environ:
            if item.startswith(b"TF_CONFIG="):
                task = json.loads(item[len(b"TF_CONFIG="):].decode())["task"]
                found[(task["type"], task["index"])] = int(pid)
    return found


def read(path):
    with open(path) as f:
        return f.read()


def wait_until(condition, what, launcher, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert launcher.poll() is None, "the launcher ended while waiting for %s" % what
        time.sleep(0.2)
    raise AssertionError("no %s after %d s" % (what, timeout))


def segments(log_text):
    """A task's log split by process start: each start logs its run folder or
    its worker line first."""
    return re.split(r"Run folder: |Worker \d+ of \d+ \(reads", log_text)[1:]


@pytest.mark.slow
def test_a_cluster_recovers_from_each_task_killed(data, tmp_path):
    """SIGKILL a worker, then the chief, then the parameter server of a running
    two-worker cluster: the launcher restarts each; a worker and the chief
    rejoin the running cluster with nothing lost, the others saying whom they
    wait for meanwhile; a lost parameter server restarts every task from the
    chief's last checkpoint; the run finishes."""
    run_dir, logs = str(tmp_path / "run"), str(tmp_path / "logs")
    chief_log, worker_log = (os.path.join(logs, n) for n in ("chief0.log", "worker0.log"))
    steps = 60
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "launch_local_cluster.py"), "2",
         "--log_dir", logs, "--timeout", "600", "--dataset", data["easy"], "--train_dir",
         run_dir, "--log_step", "1", "--output_save_step", "10", "--max_to_keep", "100",
         "--max_training_steps", str(steps), "--wait_log_secs", "2"],
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True)
    try:
        def reached(step):
            return lambda: os.path.isfile(chief_log) and \
                any(s >= step for s in train_steps(chief_log))

        # A worker killed: restarted, it rejoins at the step the others wait in.
        wait_until(reached(6), "step 6", launcher)
        os.kill(task_pids(launcher)[("worker", 0)], signal.SIGKILL)
        wait_until(lambda: len(segments(read(worker_log))) == 2 and
                   train_steps(worker_log)[-1] > 8, "worker 0 rejoining", launcher)
        waiting = re.findall(r"WARNING Step (\d+) has waited \d+ s for worker 0 \(127\.0\.0\.1:"
                             r"\d+\)", read(chief_log))
        assert waiting, read(chief_log)[-3000:]
        worker_runs = segments(read(worker_log))
        rejoined = train_steps_in(worker_runs[1])[0]
        # The worker came back at the step the chief waited in; no step is lost.
        assert rejoined == int(waiting[-1]) + 1
        assert train_steps(chief_log) == list(range(1, len(train_steps(chief_log)) + 1))

        # The chief killed: restarted, it takes the parameter servers' state.
        wait_until(reached(20), "step 20", launcher)
        os.kill(task_pids(launcher)[("chief", 0)], signal.SIGKILL)
        wait_until(lambda: "Rejoined the running cluster at step" in read(chief_log),
                   "the chief rejoining", launcher)
        at = int(re.search(r"Rejoined the running cluster at step (\d+)",
                           read(chief_log)).group(1))
        assert re.search(r"WARNING Step %d has waited \d+ s for chief 0 \(127\.0\.0\.1:\d+\)"
                         % at, read(worker_log))
        wait_until(reached(at + 3), "steps after the chief's restart", launcher)
        chief_runs = segments(read(chief_log))
        assert train_steps_in(chief_runs[-1])[:3] == [at + 1, at + 2, at + 3]

        # The parameter server killed: every task restarts from the last checkpoint.
        wait_until(reached(max(40, at + 4)), "step 40", launcher)
        newest = tf.train.latest_checkpoint(run_dir)
        starts = len(segments(read(chief_log)))
        os.kill(task_pids(launcher)[("ps", 0)], signal.SIGKILL)
        wait_until(lambda: "Resumed from" in segments(read(chief_log))[-1],
                   "the chief resuming", launcher)
        # The resume after this kill: an earlier start may have resumed too (a
        # port taken under load makes the launcher restart every task).
        after_kill = "".join(segments(read(chief_log))[starts:])
        resumed = int(re.search(r"Resumed from \S+model-(\d+) at step (\d+)",
                                after_kill).group(1))
        assert resumed >= checkpoints.step_of(newest) >= 30, read(chief_log)[-4000:]
        out, _ = launcher.communicate(timeout=400)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode == 0, out
    assert "worker 0 exited with signal 9; restarting it" in out
    assert "chief 0 exited with signal 9; restarting it" in out
    assert "ps 0 exited with signal 9: it held the training state, so every task restarts" \
        in out
    assert tf.train.latest_checkpoint(run_dir).endswith("model-%d" % steps)
    # After the restart the workers went on in lock-step from the checkpoint.
    last_chief, last_worker = segments(read(chief_log))[-1], segments(read(worker_log))[-1]
    assert train_steps_in(last_chief) == train_steps_in(last_worker) == \
        list(range(resumed + 1, steps + 1))
    assert own_processes(run_dir) == []


def train_steps_in(text):
    return [int(s) for s in re.findall(r"\[train step +(\d+)\]", text)]


LIMIT = tf.RunOptions(timeout_in_ms=60000)  # a step that hangs fails the test instead

# A process holding tf.train.Servers until its stdin closes (the test is done,
# or died): a server started in the test's own process could never be stopped
# (TensorFlow's Server has no working stop; its port and threads would stay
# until pytest exits).
SERVERS_SCRIPT = """
import json, os, sys
import tensorflow.compat.v1 as tf
spec, tasks = json.loads(sys.argv[1])
try:
    servers = [tf.train.Server(tf.train.ClusterSpec(spec), job_name=job, task_index=index)
               for job, index in tasks]
except tf.errors.OpError as e:
    print("failed: %s" % e, flush=True)
    os._exit(3)
print("serving", flush=True)
sys.stdin.read()
os._exit(0)
"""


@contextlib.contextmanager
def servers_in_a_child(jobs, attempts=3):
    """Servers for the (job, index) tasks `jobs` on free loopback ports, in a
    child process stopped on exit: yields the cluster spec. New ports if one
    was taken before the servers bound it."""
    import select
    import tempfile
    for _ in range(attempts):
        hosts = ["127.0.0.1:%d" % p for p in scripts_launch.free_ports(len(jobs))]
        spec = {}
        for (job, index), host in zip(jobs, hosts):
            spec.setdefault(job, []).append(host)
        with tempfile.TemporaryFile() as stderr:
            child = subprocess.Popen([sys.executable, "-c", SERVERS_SCRIPT,
                                      json.dumps([spec, jobs])], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr)
            try:
                ready, _, _ = select.select([child.stdout], [], [], 120)
                said = child.stdout.readline().decode() if ready else "nothing in 120 s"
                if said.startswith("serving"):
                    yield spec
                    return
                stderr.seek(0)
                failure = "%s\n%s" % (said, stderr.read().decode(errors="replace")[-3000:])
            finally:
                child.stdin.close()  # the child exits
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                child.stdout.close()
        if "Could not start gRPC server" not in failure:
            break
    raise AssertionError("the servers did not start: %s" % failure)


def test_a_token_left_by_a_killed_worker_is_dropped(caplog):
    """A worker killed after sending its gradients, while waiting for its
    token, leaves that token in the queue once the others' step completes.
    Whoever takes it next would start the following step alone, a step
    ahead; catch_up drops it and waits for the real one. Three servers (in a
    child process, stopped at the end): a parameter server and two workers,
    each worker its own graph and session here."""
    import logging
    import threading
    stack = contextlib.ExitStack()  # the servers' first: stopped after the threads
    tasks = []
    try:
        spec = stack.enter_context(servers_in_a_child([("ps", 0), ("worker", 0), ("worker", 1)]))
        infos = [cluster.ClusterInfo(spec, "worker", i, i, 2, i == 0) for i in (0, 1)]
        for info, host in zip(infos, spec["worker"]):
            graph = tf.Graph()
            with graph.as_default(), tf.device(cluster.device_setter(info)):
                step = tf.train.get_or_create_global_step()
                weight = tf.get_variable("w", initializer=3.0)
                sync = cluster.SyncWrapper(2)
                train = sync(tf.train.GradientDescentOptimizer(0.1)).minimize(
                    tf.square(weight), global_step=step)
                sync.build_catch_up()
                push = [op for op in graph.get_operations() if op.type in (
                    "AccumulatorApplyGradient", "ResourceAccumulatorApplyGradient")]
                assert push
                tasks.append(dict(sess=tf.Session("grpc://" + host, graph=graph), sync=sync,
                                  step=step, train=train, push=push,
                                  init=tf.global_variables_initializer(),
                                  local=tf.local_variables_initializer()))
        chief, other = tasks
        chief["sess"].run(chief["init"])
        for task, info in zip(tasks, infos):
            task["sess"].run(task["local"])
            stack.enter_context(cluster.SyncThreads()).start(task["sess"], task["sync"], info)

        def steps_together(step):
            done = []

            def run(task):  # the training loop's step
                task["sess"].run(task["train"], options=LIMIT)
                task["sync"].catch_up(task["sess"], 0, step)
                # the step it goes on at: the token it took
                done.append(task["sess"].run(task["sync"].optimizers[0]._local_step))
            # daemon: one stuck past its join (a failing test) cannot hold up the exit;
            # stopping the servers ends its call
            threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in tasks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            return done

        assert steps_together(0) == [1, 1]
        # Step 1: the other worker sends its gradients and dies before taking its token.
        other["sess"].run(other["push"])
        chief["sess"].run(chief["train"], options=LIMIT)
        assert chief["sess"].run(chief["step"]) == 2  # its step completed with both gradients
        # The worker restarts (its local step from the global step) and both go on.
        other["sess"].run(other["sync"].optimizers[0].local_step_init_op)
        with caplog.at_level(logging.INFO):
            returned = steps_together(2)
        # Both go on at step 3, after step 2's update: the stray token of step 2
        # was dropped (taken, it would have sent one of them on at once, alone).
        assert returned == [3, 3]
        assert "Dropped a token of step 2 left by a worker that stopped" in caplog.text
        assert chief["sess"].run(chief["step"]) == 3
        assert steps_together(3) == [4, 4]
    finally:
        for task in tasks:  # closing releases the chief's threads, then joined;
            task["sess"].close()  # then the servers' process is stopped
        stack.close()


@pytest.mark.slow
def test_a_task_that_loses_its_parameter_server_exits_to_be_restarted(data, tmp_path):
    """What a TFJob sees: the chief of a cluster whose parameter server dies
    exits with status 138 (retryable under restartPolicy ExitCode) and says
    why, instead of a traceback and status 1 (a permanent failure there)."""
    spec = scripts_launch.cluster_spec(1)
    processes = {}
    for job in ("ps", "chief"):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": spec,
                                                     "task": {"type": job, "index": 0}}))
        processes[job] = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "trainer.py"), "--dataset", data["easy"],
             "--train_dir", str(tmp_path / "run"), "--max_training_steps", "100000",
             "--log_step", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            universal_newlines=True)
    try:
        log_path = str(tmp_path / "run" / "train.log")
        deadline = time.time() + 180
        while not (os.path.isfile(log_path) and train_steps(log_path)):
            assert time.time() < deadline and processes["chief"].poll() is None
            time.sleep(0.2)
        processes["ps"].kill()
        _, err = processes["chief"].communicate(timeout=180)
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
    assert processes["chief"].returncode == train_loop.EXIT_CLUSTER_LOST == 138
    assert "Lost contact with the cluster (UnavailableError): a parameter server is gone" in err
    assert "Traceback" not in err


def test_the_tfjob_manifest_restarts_what_a_restart_cures():
    """deploy/tfjob.yaml, which docs/distributed.md links to and describes: a
    TFJob whose replicas restart on the exit statuses a restart cures
    (128-255: killed, or trainer.py's lost-parameter-server 138) and not on a
    mistake (2), with trainer commands trainer.py accepts, sharing one
    mounted run folder."""
    import yaml
    with open(os.path.join(ROOT, "deploy", "tfjob.yaml")) as f:
        manifest_text = f.read()
    with open(os.path.join(ROOT, "docs", "distributed.md")) as f:
        page = f.read()
    assert "](../deploy/tfjob.yaml)" in page  # the manifest's one home is the file itself
    assert "```yaml" not in page
    manifest = yaml.safe_load(manifest_text)
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "TFJob")
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert set(replicas) == {"PS", "Chief", "Worker"}
    run_dirs = set()
    for name, spec in replicas.items():
        assert spec["restartPolicy"] == "ExitCode"  # 1-127 permanent, 128-255 restarted
        container = spec["template"]["spec"]["containers"][0]
        command = container["command"]
        assert command[:2] == ["python", "trainer.py"]
        config, _, unknown = parse_train_config(command[2:])
        assert not unknown
        if name != "PS":
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            assert any(config.train_dir.startswith(m + "/") for m in mounts)
            assert any(config.data_dir == m for m in mounts)
            run_dirs.add(config.train_dir)
    assert len(run_dirs) == 1
    assert 0 < 2 < 128 <= train_loop.EXIT_CLUSTER_LOST <= 255


@pytest.mark.slow
def test_the_launcher_gives_up_after_max_restarts(data, tmp_path):
    """A chief that keeps getting killed (SIGKILL as soon as it starts, each
    time): the launcher restarts it --max_restarts (2) times, then stops the
    cluster saying so, exits non-zero, and leaves no task running (the
    parameter server, alive throughout, is stopped too)."""
    run_dir, logs = str(tmp_path / "run"), str(tmp_path / "logs")
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "launch_local_cluster.py"), "1",
         "--log_dir", logs, "--max_restarts", "2", "--timeout", "120", "--dataset",
         data["easy"], "--train_dir", run_dir, "--max_training_steps", "100000"],
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True)
    killed = []
    try:
        deadline = time.time() + 60
        while launcher.poll() is None and time.time() < deadline:
            pid = task_pids(launcher).get(("chief", 0))
            if pid is not None and pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)
        out, _ = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode == 128 + signal.SIGKILL, out  # the chief's status, as shells say
    assert len(killed) == 3, out  # the first start and two restarts
    assert re.findall(r"chief 0 exited with signal 9; restarting it: it rejoins the running "
                      r"cluster \(restart (\d) of 2\)", out) == ["1", "2"], out
    assert "chief 0 exited with signal 9 and the 2 restarts of --max_restarts are used up; " \
           "stopping the cluster" in out, out
    assert "restart 3" not in out
    assert own_processes(run_dir) == []
