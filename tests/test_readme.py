"""The documentation's commands are a tested contract.

Every command in the ```bash blocks of the README and of the pages in DOCS
(read in that order, the README first) is listed in COMMANDS below, and
test_every_readme_command_is_listed holds the two together: a command added
to, changed in or removed from a page fails it until this list says how it
is tested. Each runnable command is then run as typed, by bash, from the
root of a fresh copy of the repository (relative paths, as a user types them
after `cd` into a clone), in that order, on small files in the real formats,
and checked for what the page says it produces. A run is
changed only by
  - placeholders the README asks the reader to fill in (`train_dir/<run>`,
    `/path/to/files`, ...), replaced by what an earlier command made, and
  - extra flags appended (later flags win): shorter runs
    (`--max_training_steps`, `--epochs`, `--smoke`) and, for downloads, the
    loopback server or local folder that stands in for the network
    (`--mirror`, `--checksums` with the fake files' MD5s).
Commands that need what CI cannot have (the network, an NPU, a cluster of
hosts, CANN's `atc`, PyTorch) are listed with the reason and the test that
covers their code instead; test_covering_tests_exist checks those names.
"""

import collections
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import fakedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# The pages whose commands follow the README's, in this order: an earlier
# page's commands make what a later page's use (train_dir/<run>, ...).
DOCS = ("docs/data.md", "docs/training.md", "docs/reproducing.md", "docs/performance.md",
        "docs/distributed.md", "docs/results.md")
# The README opens with these two: install, prepare and train; run the tests.
FIRST_COMMANDS = (
    "pip install -r requirements.txt && python download.py --dataset MNIST && "
    "python trainer.py --dataset MNIST",
    "pip install -r requirements.txt -r requirements-dev.txt && python -m pytest -q tests")


# ---- reading the README -----------------------------------------------------

def _strip_comment(line):
    """`cmd  # note` -> `cmd`, leaving a # inside quotes alone."""
    for match in re.finditer(r"\s#", line):
        head = line[:match.start()]
        try:
            shlex.split(head)
        except ValueError:  # the # is inside an open quote
            continue
        return head
    return line


def readme_commands(text):
    """Every command of the ```bash blocks, in order and once each:
    continuation lines joined, comments dropped, `a && b` split, whitespace
    normalised."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        pending = ""
        for line in block.splitlines():
            line = pending + line
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            try:
                shlex.split(line, comments=True)
            except ValueError:  # a quote spans lines (TF_CONFIG's JSON)
                pending = line + " "
                continue
            pending = ""
            line = _strip_comment(line).strip()
            if line.startswith("#") or not line:
                continue
            for command in line.split(" && "):
                command = " ".join(command.split())
                if command not in commands:
                    commands.append(command)
    return commands


def pages():
    """The README and the DOCS pages, in order, as paths."""
    return [README] + [os.path.join(ROOT, page) for page in DOCS]


def documented_commands():
    """readme_commands over the README, then each of DOCS: in order, once each."""
    commands = []
    for page in pages():
        with open(page) as f:
            commands += [c for c in readme_commands(f.read()) if c not in commands]
    return commands


# ---- the list ---------------------------------------------------------------

# run: the runner (a function below) or None; extra: appended flags;
# subs: {README text: replacement} with {placeholders} from the context;
# reason / covered_by: for commands not run here.
Case = collections.namedtuple("Case", "run extra subs reason covered_by")


def runs(run, extra="", subs=None):
    return Case(run, extra, subs or {}, None, None)


def not_here(reason, covered_by):
    return Case(None, "", {}, reason, covered_by)


CLUSTER = "the hosts that TF_CONFIG or --ps_hosts/--worker_hosts name"
SHORT = "--max_training_steps 10"


def _commands():
    """Documented command -> Case, in the order of documented_commands().
    Functions referred to are defined below."""
    return collections.OrderedDict([
        ("pip install -r requirements.txt", not_here(
            "installs from PyPI", ".ci/run (runs it, then this test suite)")),
        ("python download.py --dataset MNIST", runs(
            check_download_mnist, "--mirror {mirror} --checksums {mnist_sums}")),
        ("python trainer.py --dataset MNIST", runs(check_first_run, SHORT)),
        ("pip install -r requirements.txt -r requirements-dev.txt", not_here(
            "installs from PyPI", ".ci/run (runs it, then this test suite)")),
        ("python -m pytest -q tests", not_here(
            "is this test suite", ".ci/run (runs it on a clean checkout)")),
        ("python download.py --dataset MNIST FASHION_MNIST SVHN CIFAR10", not_here(
            "downloads from the datasets' hosts (MNIST and Fashion-MNIST share file names, so "
            "one loopback mirror cannot stand in for both)",
            "tests/test_download.py::test_every_dataset_downloads_verifies_and_converts")),
        ("python download.py --dataset MNIST --mirror https://my.mirror/mnist/", runs(
            check_download_fresh, "--checksums {mnist_sums}",
            {"https://my.mirror/mnist/": "{mirror}"})),
        ("python download.py --dataset FASHION_MNIST --source /path/to/files", runs(
            check_download_fresh, "--checksums {fashion_sums}",
            {"/path/to/files": "{fashion}"})),
        ("python download.py --help", runs(check_help("--mirror URL", "--source DIR"))),
        ("python download.py --dataset FASHION_MNIST --source /usr/share/datasets/fashion-mnist "
         "--checksums /var/lib/dpkg/info/dataset-fashion-mnist.md5sums", runs(
             check_download_fresh, "",
             {"/usr/share/datasets/fashion-mnist": "{fashion}",
              "/var/lib/dpkg/info/dataset-fashion-mnist.md5sums": "{dpkg_sums}"})),
        ("python download.py --dataset FASHION_MNIST --source /usr/share/datasets/fashion-mnist "
         "--skip_checksum", runs(check_download_fresh, "",
                                 {"/usr/share/datasets/fashion-mnist": "{fashion}"})),
        ("python trainer.py --dataset CIFAR10 --deconv_type nn --norm_type instance",
         runs(check_trains("CIFAR10", deconv_type="nn", norm_type="instance",
                           image_shape=[32, 32, 3]), SHORT)),
        ("python trainer.py --dataset path/to/my_dataset --max_training_steps 5000",
         runs(check_trains("MY_DATASET"), SHORT, {"path/to/my_dataset": "{custom}"})),
        ("python trainer.py --train_dir train_dir/<run>", runs(
            check_resumed, "--max_training_steps 20", {"train_dir/<run>": "{run}"})),
        ("tensorboard --logdir train_dir", runs(
            check_tensorboard, "--host 127.0.0.1 --port 0")),
        ("python trainer.py --help", runs(check_help("Recipes:", "paper recipe: 100"))),
        ("python evaler.py --checkpoint train_dir/<run>", runs(
            check_evaluated("test"), "", {"train_dir/<run>": "{run}"})),
        ("python evaler.py --checkpoint train_dir/<run>/model-40000 --split train "
         "--batch_size 500", runs(check_evaluated("train"), "",
                                  {"train_dir/<run>/model-40000": "{run}/model-{step}"})),
        ("python export.py --checkpoint train_dir/<run> --output ssgan.pb", runs(
            check_exported(-1), "", {"train_dir/<run>": "{run}"})),
        ("python export.py --checkpoint train_dir/<run> --output ssgan.pb --batch_size 1", runs(
            check_exported(1), "", {"train_dir/<run>": "{run}"})),
        ("atc --model=ssgan.pb --framework=3 --output=ssgan --soc_version=Ascend310 "
         "--input_shape=\"image:1,28,28,1\" --out_nodes=\"logits:0\"", not_here(
             "is CANN's model converter (Ascend toolkit)",
             "tests/test_export.py::test_frozen_graph_round_trip")),
        ("python scripts/visualize_training.py train_dir/<run>", runs(
            check_visualized, "", {"train_dir/<run>": "{run}"})),
        ("scripts/reproduce_mnist100.sh", runs(check_reproduced([1], 1), "--epochs 1")),
        # seed 1 resumed to two epochs (its first epoch's reports kept), 2 and 3 trained
        ("scripts/reproduce_mnist100.sh --epochs 50 --seeds 1,2,3",
         runs(check_reproduced([1, 2, 3], 2, resumed=[1]), "--epochs 2")),
        ("scripts/reproduce_mnist100.sh --method supervised",
         runs(check_reproduced([1], 1, "supervised"), "--epochs 1")),
        ("python trainer.py --dataset MNIST --method improved_gan", runs(
            check_paper_recipe, "--max_training_steps 4")),
        ("python trainer.py --dataset MNIST --precision bf16",
         runs(check_trains("MNIST", precision="bf16"), SHORT)),
        ("python trainer.py --dataset MNIST --precision fp16", runs(check_fp16_refused_on_cpu)),
        ("python scripts/benchmark.py", runs(
            check_benchmark({"training": [32], "inference": [32]}),
            "--smoke --train_batches 32 --infer_batches 32")),
        ("python scripts/benchmark.py --arch paper --precisions fp32 bf16 --infer_batches "
         "100 1000", runs(check_benchmark({"training": [100], "inference": [100, 1000]}),
                          "--smoke")),
        ("OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --arch paper --batch 100",
         not_here("needs PyTorch, which is not a dependency (installed separately to compare)",
                  "tests/test_readme.py::test_pytorch_benchmark_without_pytorch_says_so")),
        ("export TF_CONFIG='{\"cluster\": {\"chief\": [\"host0:2222\"], \"worker\": "
         "[\"host1:2222\"], \"ps\": [\"host2:2222\"]}, \"task\": {\"type\": \"worker\", "
         "\"index\": 0}}'", not_here("needs " + CLUSTER,
                                     "tests/test_cluster.py::test_tf_config_and_flags")),
        ("python trainer.py --dataset MNIST --train_dir /shared/runs/mnist-2w", not_here(
            "needs " + CLUSTER,
            "tests/test_cluster.py::test_two_workers_train_in_lock_step_and_resume")),
        ("python trainer.py --job_name worker --task_index 1 --ps_hosts host2:2222 "
         "--worker_hosts host0:2222,host1:2222 --dataset MNIST --train_dir "
         "/shared/runs/mnist-2w", not_here("needs " + CLUSTER,
                                           "tests/test_cluster.py::test_tf_config_and_flags")),
        ("python scripts/launch_local_cluster.py 2 --log_dir cluster_logs --dataset MNIST "
         "--train_dir train_dir/two", runs(check_local_cluster, "--max_training_steps 6")),
        ("pip install -r requirements-ascend.txt", not_here(
            "is for Ascend's images (Python 3.7, TensorFlow 1.15)",
            "tests/test_compat.py::test_project_passes_both_guards")),
        ("bash scripts/train_full_1p.sh --data_path=datasets", runs(
            check_modelzoo("acc"), "--train_steps=20")),
        ("bash scripts/train_performance_1p.sh --data_path=datasets", runs(
            check_modelzoo("perf"), "--train_steps=20")),
        ("bash scripts/train_full_8p.sh --data_path=datasets "
         "--rank_table=/path/rank_table_8p.json", not_here(
             "needs eight Ascend NPUs and their HCCL rank table",
             "tests/test_ascend.py::test_8p_script_run_twice_resumes_every_card_at_the_same_step")),
        ("pip download --no-deps --only-binary=:all: --python-version 3.7 --implementation cp "
         "--abi cp37m --platform manylinux2010_x86_64 -d /tmp/tf115 tensorflow==1.15.5",
         not_here("downloads the 400 MB TensorFlow 1.15 wheel",
                  "tests/test_compat.py::test_the_tf115_api_list_holds_what_it_should")),
        ("python scripts/extract_tf115_api.py /tmp/tf115/tensorflow-1.15.5-*.whl "
         "tests/data/tf115_compat_v1_api.txt --signatures tests/data/tf115_signatures.json",
         not_here(
             "needs that wheel",
             "tests/test_compat.py::test_the_tf115_api_list_holds_what_it_should")),
    ])


# ---- the checks, one per kind of command ------------------------------------

def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def check_download_mnist(result, ctx):
    ok(result)
    folder = os.path.join(ctx["cwd"], "datasets", "mnist")
    for name in ("data.hdf5", "id.txt", "id_train.txt", "id_test.txt"):
        assert os.path.isfile(os.path.join(folder, name)), name
    assert glob.glob(os.path.join(folder, "tfrecords", "train-*"))


def check_download_fresh(result, ctx):
    ok(result)
    name = "fashion_mnist" if "FASHION" in result.args[-1] else "mnist"
    assert os.path.isfile(os.path.join(ctx["cwd"], "datasets", name, "data.hdf5"))


def check_help(*texts):
    def check(result, ctx):
        ok(result)
        flat = " ".join(result.stdout.split())
        for text in texts:
            assert text in flat
    return check


def run_folders(ctx):
    return set(glob.glob(os.path.join(ctx["cwd"], "train_dir", "*", "config.json")))


def check_trains(dataset, **saved):
    """One new run folder for `dataset`, trained 10 steps; `saved`: what its
    config.json must hold."""
    def check(result, ctx):
        ok(result)
        new = run_folders(ctx) - ctx["seen"]
        assert len(new) == 1, new
        run = os.path.dirname(new.pop())
        config = json.load(open(os.path.join(run, "config.json")))
        assert {key: config[key] for key in saved} == saved
        assert os.path.basename(run).startswith("default-%s_lr_g_" % dataset)
        assert os.path.isfile(os.path.join(run, "model-10.index"))
        assert "Training finished at step 10" in open(os.path.join(run, "train.log")).read()
        return run
    return check


def check_first_run(result, ctx):
    run = check_trains("MNIST")(result, ctx)
    for name in ("samples-10.png", "config.json"):
        assert os.path.isfile(os.path.join(run, name))
    assert glob.glob(os.path.join(run, "events.out.tfevents.*"))
    assert "[train step    1] Supervised loss:" in open(os.path.join(run, "train.log")).read()
    ctx["run"] = os.path.relpath(run, ctx["cwd"])  # train_dir/<run>, relative
    ctx["step"] = 10


def check_resumed(result, ctx):
    ok(result)
    run = os.path.join(ctx["cwd"], ctx["run"])
    log = open(os.path.join(run, "train.log")).read()
    assert "resuming from %s/model-10" % ctx["run"] in log
    assert "Training finished at step 20" in log and "[train step   11]" in log
    ctx["step"] = 20


def check_tensorboard(result, ctx):
    assert ctx["run"].split("/")[-1] in result.tensorboard_runs
    # it served until asked to stop, then stopped (SIGTERM's status)
    assert result.returncode in (0, -signal.SIGTERM), (result.returncode, result.stdout)


def table_rows(stdout):
    """seed -> (labels, epochs, errors, total) from the reproduction's table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\d+) +(\d+) +([\d.]+) +(\d+) / (\d+) +[\d.]+ +\d+h\d\dm$", line)
        if m:
            rows[int(m.group(1))] = (int(m.group(2)), float(m.group(3)), int(m.group(4)),
                                     int(m.group(5)))
    return rows


def curve_rows(stdout):
    """epochs -> ([(moving-average errors, trained-weights errors) per seed
    reported], mean or None) from the reproduction's curve."""
    rows, inside = {}, False
    for line in stdout.splitlines():
        if line.startswith("test errors by epoch"):
            inside = True
        elif inside and re.match(r"^[\d.]+ ", line):
            cells = re.findall(r"(\d+) \((\d+)\)", line)
            mean = re.search(r"\)\s+([\d.]+)$", line)
            rows[float(line.split()[0])] = ([(int(e), int(r)) for e, r in cells],
                                            float(mean.group(1)) if mean else None)
        elif inside and not line.startswith("epochs"):
            inside = False
    return rows


def check_reproduced(seeds, epochs, method="improved_gan", resumed=()):
    """The script's table and curve say what its evaluation reports say (3
    iterations of 100 per epoch on the 300 fake training images; a report at
    the end of each run, where --eval_every's default of 10 epochs is past
    it); a resumed seed keeps its earlier reports and adds one."""
    def check(result, ctx):
        ok(result)
        steps_per_epoch = 6 if method == "improved_gan" else 3
        assert "3 iterations per epoch, %d epochs = %d steps per run" % (
            epochs, epochs * steps_per_epoch) in result.stdout
        rows, curve = table_rows(result.stdout), curve_rows(result.stdout)
        assert sorted(rows) == seeds, result.stdout
        reports = {}  # epochs -> {seed: (errors, trained-weights errors)}
        for seed in seeds:
            run = os.path.join(ctx["cwd"], "train_dir", "reproduce",
                               "MNIST-100labels-%s-seed%d" % (method, seed))
            with open(os.path.join(run, "labeled_ids.txt")) as f:
                assert len(f.read().split()) == 100
            with open(os.path.join(run, "wall_seconds.txt")) as f:  # one line per invocation
                assert len(f.read().split()) == (2 if seed in resumed else 1)
            for path in glob.glob(os.path.join(run, "eval-*-test.json")):
                step = int(os.path.basename(path).split("-")[1])
                raw = path[:-len(".json")] + "-raw.json"
                reports.setdefault(step / steps_per_epoch, {})[seed] = (
                    json.load(open(path))["errors"],
                    json.load(open(raw))["errors"] if os.path.isfile(raw) else None)
            final = reports[float(epochs)][seed][0]  # the table: the last, moving average
            assert rows[seed] == (100, float(epochs), final, 100), result.stdout
            if seed in resumed:
                log = open(os.path.join(run, "train.log")).read()
                assert "resuming from" in log
                assert reports[float(epochs - 1)][seed] == ctx["reproduced"][seed]
            ctx.setdefault("reproduced", {})[seed] = reports[float(epochs)][seed]
        assert sorted(reports) == sorted(float(e) for e in range(1, epochs + 1))
        if method != "improved_gan":  # no trained-weights column: no curve cells to read
            return
        for at, by_seed in reports.items():
            cells, mean = curve[at]
            assert cells == [by_seed[s] for s in seeds if s in by_seed], result.stdout
            if len(seeds) > 1 and len(by_seed) == len(seeds):
                assert mean == pytest.approx(sum(e for e, _ in by_seed.values()) / len(seeds),
                                             abs=0.05)
            else:
                assert mean is None
    return check


def check_paper_recipe(result, ctx):
    ok(result)
    new = run_folders(ctx) - ctx["seen"]
    assert len(new) == 1
    saved = json.load(open(new.pop()))
    assert (saved["arch"], saved["method"], saved["batch_size"], saved["n_z"]) == \
        ("paper", "improved_gan", 100, 100)
    assert (saved["learning_rate_d"], saved["learning_rate_g"], saved["ema_decay"],
            saved["num_labeled"]) == (0.003, 0.003, 0.9999, 100)
    sources = saved["flag_sources"]
    assert sources["method"] == sources["max_training_steps"] == "command line"
    assert sources["batch_size"].startswith("recipe: the paper's")
    assert "Recipe: the paper's (openai/improved-gan train_mnist_feature_matching.py)" in \
        result.stderr


def check_fp16_refused_on_cpu(result, ctx):
    assert result.returncode == 2
    assert "--precision fp16 is for GPUs" in result.stderr and "Traceback" not in result.stderr
    assert run_folders(ctx) == ctx["seen"]


def check_benchmark(batches):
    """A row per precision (fp32 and bf16 by default and as asked), mode and
    batch: batch, ms/step, instances/s and the FLOP columns, the rate
    consistent with the time; and the machine's matmul rates."""
    def check(result, ctx):
        ok(result)
        rows = {}
        for m in re.finditer(r"^(fp32|bf16|fp16)\s+(training|inference)\s+(\d+)\s+([\d.]+)\s+"
                             r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\d+%\s+\d+%$",
                             result.stdout, re.M):
            rows[(m.group(1), m.group(2), int(m.group(3)))] = [float(v) for v in m.groups()[3:]]
        expected = [(p, mode, b) for p in ("fp32", "bf16") for mode in ("training", "inference")
                    for b in batches[mode]]
        assert sorted(rows) == sorted(expected), result.stdout
        for (_, _, batch), (ms, per_second, model, executed, _) in rows.items():
            assert per_second == pytest.approx(1000.0 * batch / ms, rel=0.01)
            assert 0 < executed <= model
        assert re.search(r"matmul rate \(GFLOP/s\): bfloat16 \d+, float32 \d+", result.stdout)
    return check


def check_evaluated(split):
    def check(result, ctx):
        ok(result)
        assert "Average accuracy :" in result.stdout + result.stderr  # its log lines
        report = os.path.join(ctx["cwd"], ctx["run"], "eval-%d-%s.json" % (ctx["step"], split))
        assert json.load(open(report))["split"] == split
    return check


def check_exported(batch):
    """ssgan.pb and ssgan.pbtxt: the same frozen graph, its `image` input of
    the run's 28x28x1 with the batch asked for (-1: any), `logits` out, no
    variables left."""
    def check(result, ctx):
        import tensorflow.compat.v1 as tf
        from google.protobuf import text_format
        ok(result)
        binary, text = tf.GraphDef(), tf.GraphDef()
        with open(os.path.join(ctx["cwd"], "ssgan.pb"), "rb") as f:
            binary.ParseFromString(f.read())
        with open(os.path.join(ctx["cwd"], "ssgan.pbtxt")) as f:
            text_format.Parse(f.read(), text)
        assert binary == text
        nodes = {node.name: node for node in binary.node}
        shape = [d.size for d in nodes["image"].attr["shape"].shape.dim]
        assert (nodes["image"].op, shape) == ("Placeholder", [batch, 28, 28, 1])
        assert "logits" in nodes
        assert not [n for n in binary.node if n.op in ("VariableV2", "VarHandleOp")]
    return check


def check_visualized(result, ctx):
    ok(result)
    for name in ("training.gif", "samples_sheet.png", "curves.png"):
        assert os.path.isfile(os.path.join(ctx["cwd"], ctx["run"], name)), name


def check_local_cluster(result, ctx):
    ok(result)
    assert os.path.isfile(os.path.join(ctx["cwd"], "train_dir", "two", "model-6.index"))
    assert len(glob.glob(os.path.join(ctx["cwd"], "cluster_logs", "*.log"))) == 3


def check_modelzoo(kind):
    def check(result, ctx):
        ok(result)
        fps = re.search(r"^Final Performance images/sec : ([\d.]+)$", result.stdout, re.M)
        assert fps and "Training device : cpu" in result.stdout, result.stdout
        assert float(fps.group(1)) > 0, result.stdout  # it trained steps, and timed them
        case = "Improved-GAN_ID2094_for_TensorFlow_bs32_1p_%s" % kind
        with open(os.path.join(ctx["cwd"], "test", "output", "0", case + ".log")) as f:
            keys = dict(line.rstrip("\n").split(" = ", 1) for line in f)
        assert keys["ActualLoss"], keys
        assert (keys["CaseName"], keys["RankSize"], keys["ActualFPS"]) == (case, "1", fps.group(1))
        # the performance run trained afresh beside the full run's folder
        folder = {"acc": "ckpt", "perf": "ckpt_perf"}[kind]
        assert os.path.isfile(os.path.join(ctx["cwd"], "test", "output", "0", folder,
                                           "model-20.index"))
    return check


# ---- running them -----------------------------------------------------------

def copy_repository(dest):
    """A fresh copy of the repository's code: what a clone holds, without
    prepared data, runs or caches."""
    skip_top = {".git", "train_dir", "test", "cluster_logs", ".pytest_cache", "tests"}

    def ignore(folder, names):
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        if os.path.abspath(folder) == ROOT:
            skipped |= skip_top & set(names)
        if os.path.abspath(folder) == os.path.join(ROOT, "datasets"):
            skipped |= {n for n in names if os.path.isdir(os.path.join(folder, n))}
        return skipped
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def environment():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    # as a user's shell has them (TF_CPP_MIN_LOG_LEVEL is the test session's)
    for name in ("TF_CONFIG", "RANK_SIZE", "RANK_TABLE_FILE", "PYTHON", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    return env


# The commands whose every output line is the project's own: `[time] message`.
OWN_LINES_ONLY = re.compile(r"python (download|trainer|evaler|export)\.py ")


def check_own_lines_only(result):
    """No TensorFlow start-up line, C++ log line or deprecation notice."""
    foreign = [line for line in (result.stdout + result.stderr).splitlines()
               if line.strip() and not re.match(r"\[\d{4}-\d\d-\d\d ", line)]
    assert not foreign, "%s printed lines not its own:\n%s" % (result.args, "\n".join(foreign))


def command_line(command, case, ctx):
    for text, replacement in case.subs.items():
        assert text in command, text
        command = command.replace(text, replacement.format(**ctx))
    return (command + " " + case.extra.format(**ctx)).strip()


def run_command(line, cwd, timeout=900):
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def run_tensorboard(line, cwd, deadline=120):
    """Starts it, waits for its address, reads the run list, stops it."""
    process = subprocess.Popen(["bash", "-c", "exec " + line], cwd=cwd, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, start_new_session=True)
    output = []
    try:
        end = time.time() + deadline
        url = None
        while url is None and time.time() < end:
            text = process.stdout.readline()
            if not text and process.poll() is not None:
                break
            output.append(text)
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", text)
            url = found.group(1) if found else None
        assert url, "tensorboard did not start:\n" + "".join(output)
        # Loopback: never through a proxy the environment may name (HTTP_PROXY).
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        runs = None  # not asked yet: the deadline may pass before the first request
        while time.time() < end:  # its first load of the folder
            with opener.open(url + "data/runs", timeout=10) as response:
                runs = json.loads(response.read())
            if runs:
                break
            time.sleep(0.5)
        assert runs, "tensorboard at %s listed no runs within %d s (%s):\n%s" % (
            url, deadline, "it answered []" if runs == [] else "never asked, time was up",
            "".join(output))
        assert process.poll() is None, "tensorboard exited after answering"
        # still serving: its status is the one it ends with on SIGTERM, below
        result = subprocess.CompletedProcess(line, None, "", "")
        result.tensorboard_runs = runs
        return result
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            status = "killed: SIGTERM did not stop it within 30 s"
            process.wait()
        output.append(process.stdout.read())
        process.stdout.close()
        if "result" in locals():
            result.returncode, result.stdout = status, "".join(output)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """The main copy of the repository, the fake files standing in for the
    network, and what earlier commands made."""
    from easydata import make_easy_dataset
    files = tmp_path_factory.mktemp("readme_files")
    mnist = str(files / "mnist")
    os.makedirs(mnist)
    fakedata.make_mnist_files(mnist, num_train=300, num_test=100)
    fashion = str(files / "fashion-mnist")
    os.makedirs(fashion)
    fakedata.make_mnist_files(fashion, num_train=60, num_test=40, seed=5)
    # Debian's md5sums name the files by their installed path
    dpkg_sums = str(files / "dataset-fashion-mnist.md5sums")
    with open(dpkg_sums, "w") as f:
        for name in sorted(os.listdir(fashion)):
            f.write("%s  usr/share/datasets/fashion-mnist/%s\n"
                    % (fakedata.md5(os.path.join(fashion, name)), name))
    cifar = str(files / "cifar")
    os.makedirs(cifar)
    fakedata.make_cifar_file(cifar, per_batch=10, num_test=40)
    cwd = copy_repository(str(tmp_path_factory.mktemp("clone") / "improved-gan"))
    server = fakedata.FileServer(mnist).__enter__()
    context = {
        "cwd": cwd, "mirror": server.url, "fashion": fashion, "dpkg_sums": dpkg_sums,
        "mnist_sums": fakedata.write_md5sums(mnist, str(files / "mnist.md5")),
        "fashion_sums": fakedata.write_md5sums(fashion, str(files / "fashion.md5")),
        "custom": "my_data/my_dataset", "fresh": lambda: copy_repository(
            str(tmp_path_factory.mktemp("fresh") / "improved-gan")),
    }
    # what a user has before the commands that train on them: CIFAR-10
    # prepared, and a folder in the reference layout
    prepared = run_command("python download.py --dataset CIFAR10 --source %s --checksums %s"
                           % (cifar, fakedata.write_md5sums(cifar, str(files / "cifar.md5"))),
                           cwd)
    ok(prepared)
    make_easy_dataset(os.path.join(cwd, "my_data", "my_dataset"), 100, 40)
    yield context
    server.__exit__(None, None, None)


COMMANDS = _commands()
RUNNABLE = [c for c, case in COMMANDS.items() if case.run]


def test_every_readme_command_is_listed():
    documented = documented_commands()
    missing = [c for c in documented if c not in COMMANDS]
    stale = [c for c in COMMANDS if c not in documented]
    assert not missing, "documented commands this test does not know:\n" + "\n".join(missing)
    assert not stale, "commands listed here that no page shows:\n" + "\n".join(stale)
    assert list(COMMANDS) == documented, "keep COMMANDS in the order of the README, then DOCS"


def test_readme_opens_with_the_two_commands():
    """The title, then one bash block: install + prepare + train, and the
    test command, which is also what CI runs."""
    with open(README) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    assert lines[2:6] == ["```bash"] + list(FIRST_COMMANDS) + ["```"]
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert FIRST_COMMANDS[1] in f.read().splitlines()


def test_every_page_is_read_and_every_relative_link_resolves():
    """Every page under docs/ is in DOCS, and every relative link of the README
    and DOCS points at a file that exists (and, for a page#heading link, at
    a heading of that page)."""
    on_disk = sorted("docs/" + name for name in os.listdir(os.path.join(ROOT, "docs"))
                     if name.endswith(".md"))
    assert sorted(DOCS) == on_disk
    broken = []
    for page in pages():
        with open(page) as f:
            text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(path):
                broken.append("%s: %s" % (os.path.relpath(page, ROOT), target))
            elif anchor and path.endswith(".md") and anchor not in heading_anchors(path):
                broken.append("%s: %s (no such heading)" % (os.path.relpath(page, ROOT), target))
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def heading_anchors(path):
    """The #anchors GitHub gives a page's headings."""
    with open(path) as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, re.M)}


def test_covering_tests_exist():
    for command, case in COMMANDS.items():
        if case.run:
            continue
        assert case.reason and case.covered_by, command
        target = case.covered_by.split(" ")[0]
        path, _, name = target.partition("::")
        assert os.path.isfile(os.path.join(ROOT, path)), target
        if name:
            with open(os.path.join(ROOT, path)) as f:
                assert re.search(r"^def %s\(" % re.escape(name), f.read(), re.M), target


def test_readme_parsing_joins_splits_and_strips():
    text = ("```bash\npython a.py --x 1   # a note\npython b.py \\\n    --y 'p # q'\n"
            "pip install r && python c.py\nexport T='{\"a\":\n  1}'\n```\n"
            "```python\nnot_a_command()\n```\n")
    assert readme_commands(text) == ["python a.py --x 1", "python b.py --y 'p # q'",
                                     "pip install r", "python c.py", "export T='{\"a\": 1}'"]


@pytest.mark.slow
@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command_works_as_typed(command, ctx):
    case = COMMANDS[command]
    fresh = case.run is check_download_fresh
    cwd = ctx["fresh"]() if fresh else ctx["cwd"]
    local = dict(ctx, cwd=cwd)
    if "{run}" in "".join(case.subs.values()):
        assert "run" in ctx, "the first training command did not run"
    line = command_line(command, case, local)
    local["seen"] = run_folders(local)
    if case.run is check_tensorboard:
        result = run_tensorboard(line, cwd)
    else:
        result = run_command(line, cwd)
    case.run(result, local)
    if OWN_LINES_ONLY.match(line) and "--help" not in line:  # --help prints argparse's text
        check_own_lines_only(result)
    for key in ("run", "step", "reproduced"):
        if key in local:
            ctx[key] = local[key]


def test_pytorch_benchmark_without_pytorch_says_so(tmp_path):
    """The one command not run above: without PyTorch (not a dependency) it
    says what to install instead of a traceback. An importable `torch` that
    fails stands in for a missing one, whatever this machine has."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    env = dict(environment(), PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "scripts/benchmark_pytorch.py", "--arch", "paper"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=120)
    assert result.returncode == 1
    assert "needs PyTorch" in result.stderr and "pip install torch" in result.stderr
    assert "Traceback" not in result.stderr
