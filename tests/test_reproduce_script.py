"""scripts/reproduce_mnist100.sh end to end on small MNIST files in the real
format: it prepares the data, trains the paper's recipe, evaluates, prints
the results table, and resumes to more epochs."""

import json
import os
import re
import subprocess
import sys

import pytest

import fakedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "reproduce_mnist100.sh")


def run_script(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", SCRIPT] + list(args), cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=900)


def table_rows(stdout):
    """seed -> (labels, epochs, errors, total) from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\d+) +(\d+) +([\d.]+) +(\d+) / (\d+) +[\d.]+ +\d+h\d\dm$", line)
        if m:
            rows[int(m.group(1))] = (int(m.group(2)), float(m.group(3)), int(m.group(4)),
                                     int(m.group(5)))
    return rows


def curve_rows(stdout):
    """epochs -> [(moving-average errors, trained-weights errors) per seed], mean."""
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


@pytest.mark.slow
def test_script_trains_evaluates_tabulates_and_resumes(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    fakedata.make_mnist_files(str(source), num_train=300, num_test=100)
    sums = fakedata.write_md5sums(str(source), str(tmp_path / "sums.md5"))
    common = ["--data_dir", str(tmp_path / "data"), "--root", str(tmp_path / "runs"),
              "--source", str(source), "--checksums", sums]
    first = run_script("--epochs", "1", "--seeds", "1,2", "--eval_every", "1", *common)
    assert first.returncode == 0, first.stderr[-2000:]
    # the curve: both seeds at epoch 1, both weights, and their mean
    runs = tmp_path / "runs"
    curve = curve_rows(first.stdout)
    assert list(curve) == [1.0]
    cells, mean = curve[1.0]
    expected = []
    for seed in (1, 2):
        folder = runs / ("MNIST-100labels-improved_gan-seed%d" % seed)
        expected.append(tuple(json.load(open(str(folder / name)))["errors"]
                              for name in ("eval-6-test.json", "eval-6-test-raw.json")))
    assert cells == expected and mean == sum(e for e, _ in expected) / 2.0
    assert "3 iterations per epoch, 1 epochs = 6 steps per run" in first.stdout
    rows = table_rows(first.stdout)
    assert sorted(rows) == [1, 2]
    for seed, (labels, epochs, errors, total) in rows.items():  # the moving average's report
        assert (labels, epochs, total) == (100, 1.0, 100) and errors == expected[seed - 1][0]
    run_dir = tmp_path / "runs" / "MNIST-100labels-improved_gan-seed1"
    assert (run_dir / "labeled_ids.txt").read_text().count("\n") == 100

    second = run_script("--epochs", "2", "--seeds", "1", "--eval_every", "1", *common)
    assert second.returncode == 0, second.stderr[-2000:]
    assert table_rows(second.stdout)[1][1] == 2.0
    assert sorted(curve_rows(second.stdout)) == [1.0, 2.0]  # epoch 1's reports are kept
    assert "resuming from" in (run_dir / "train.log").read_text()
    assert len((run_dir / "wall_seconds.txt").read_text().split()) == 2


def test_script_refuses_bad_options(tmp_path):
    result = run_script("--epochs", "zero")
    assert result.returncode == 2 and "--epochs must be a positive integer" in result.stderr
    result = run_script("--method", "ssgan")
    assert result.returncode == 2 and "--method must be improved_gan or supervised" in result.stderr
