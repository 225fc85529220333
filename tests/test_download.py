"""download.py end to end, on small files in the real formats served over
loopback HTTP (--mirror) or read from a folder (--source)."""

import gzip
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest

import download
import fakedata
from datasets import fetch, formats
from datasets.errors import DataFormatError, DownloadError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# download.py's exit status for a dataset it cannot prepare: a user's input
# error, 2 as in the trainer and as argparse's for a usage error.
BAD_DATASET = 2

MAKERS = {
    "MNIST": fakedata.make_mnist_files,
    "FASHION_MNIST": lambda folder: fakedata.make_mnist_files(folder, 30, 11, seed=5),
    "SVHN": fakedata.make_svhn_files,
    "CIFAR10": fakedata.make_cifar_file,
}


def run(*args):
    return download.main(list(args) + ["--no_progress", "--timeout", "10"])


def hdf5_contents(folder):
    """(ids, images, labels) read with plain h5py, independently of the project."""
    with open(os.path.join(folder, "id.txt")) as f:
        ids = f.read().split()
    with h5py.File(os.path.join(folder, "data.hdf5"), "r") as h5:
        images = np.stack([h5[i]["image"][()] for i in ids])
        labels = np.stack([h5[i]["label"][()] for i in ids])
    return ids, images, labels


def split_ids(folder, split):
    with open(os.path.join(folder, "id_%s.txt" % split)) as f:
        return f.read().split()


def assert_dataset(folder, arrays):
    ids, images, labels = hdf5_contents(folder)
    expected_images = np.concatenate([arrays.train_images, arrays.test_images])
    if expected_images.ndim == 3:
        expected_images = expected_images[..., None]
    expected_labels = np.concatenate([arrays.train_labels, arrays.test_labels])
    np.testing.assert_array_equal(images, expected_images)
    assert labels.dtype == bool and labels.shape == (len(ids), 10)
    np.testing.assert_array_equal(labels.argmax(1), expected_labels)
    assert labels.sum(1).tolist() == [1] * len(ids)
    n_train = len(arrays.train_labels)
    assert split_ids(folder, "train") == ids[:n_train]
    assert split_ids(folder, "test") == ids[n_train:]
    assert os.path.isfile(os.path.join(folder, "tfrecords", "manifest.json"))


def leftovers(data_dir):
    return [n for n in os.listdir(data_dir) if n.startswith(".")] if os.path.isdir(data_dir) else []


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_dataset_downloads_verifies_and_converts(tmp_path, name):
    served = tmp_path / "served"
    served.mkdir()
    arrays = MAKERS[name](str(served))
    sums = fakedata.write_md5sums(str(served), str(tmp_path / "sums.md5"))
    data_dir = str(tmp_path / "data")
    with fakedata.FileServer(str(served)) as server:
        assert run("--dataset", name, "--data_dir", data_dir, "--mirror", server.url,
                   "--checksums", sums) == 0
    assert_dataset(os.path.join(data_dir, name.lower()), arrays)
    assert leftovers(data_dir) == []


def test_source_folder_needs_no_network(tmp_path):
    arrays = fakedata.make_mnist_files(str(tmp_path))
    sums = fakedata.write_md5sums(str(tmp_path), str(tmp_path / "sums.md5"))
    data_dir = str(tmp_path / "data")
    assert run("--datasets", "mnist", "--data_dir", data_dir, "--source", str(tmp_path),
               "--checksums", sums) == 0
    assert_dataset(os.path.join(data_dir, "mnist"), arrays)


def test_checksum_mismatch_is_refused_unless_skipped(tmp_path, capsys):
    served = tmp_path / "served"
    served.mkdir()
    arrays = fakedata.make_mnist_files(str(served))
    data_dir = str(tmp_path / "data")
    with fakedata.FileServer(str(served)) as server:
        # The canonical MD5s cannot match these small files.
        assert run("--dataset", "MNIST", "--data_dir", data_dir, "--mirror", server.url) == BAD_DATASET
        err = capsys.readouterr().err
        assert "does not match the expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in err
        assert "--skip_checksum" in err
        assert not os.path.exists(os.path.join(data_dir, "mnist"))
        assert leftovers(data_dir) == []
        assert run("--dataset", "MNIST", "--data_dir", data_dir, "--mirror", server.url,
                   "--skip_checksum") == 0
        assert "using it anyway (--skip_checksum)" in capsys.readouterr().err
    assert_dataset(os.path.join(data_dir, "mnist"), arrays)


def test_source_checksum_mismatch_names_the_file(tmp_path, capsys):
    fakedata.make_mnist_files(str(tmp_path))
    assert run("--dataset", "MNIST", "--data_dir", str(tmp_path / "d"),
               "--source", str(tmp_path)) == BAD_DATASET
    err = capsys.readouterr().err
    assert os.path.join(str(tmp_path), "train-images-idx3-ubyte.gz") in err
    assert "--checksums FILE" in err


def test_dropped_connection_leaves_nothing_and_rerun_succeeds(tmp_path, capsys):
    served = tmp_path / "served"
    served.mkdir()
    arrays = fakedata.make_mnist_files(str(served))
    sums = fakedata.write_md5sums(str(served), str(tmp_path / "sums.md5"))
    data_dir = str(tmp_path / "data")
    with fakedata.FileServer(str(served)) as server:
        server.drop.add("t10k-images-idx3-ubyte.gz")
        args = ("--dataset", "MNIST", "--data_dir", data_dir, "--mirror", server.url,
                "--checksums", sums)
        assert run(*args) == BAD_DATASET
        err = capsys.readouterr().err
        assert "t10k-images-idx3-ubyte.gz" in err and "bytes" in err
        assert os.listdir(data_dir) == []  # no dataset, no staging folder, no .part file
        server.drop.clear()
        assert run(*args) == 0
    assert_dataset(os.path.join(data_dir, "mnist"), arrays)


def test_fetch_falls_back_to_the_next_url(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "f.bin").write_bytes(b"payload")
    expected = fakedata.md5(str(served / "f.bin"))
    dest = str(tmp_path / "f.bin")
    with fakedata.FileServer(str(served)) as server:
        server.drop.add("f.bin")
        urls = [server.url + "missing/f.bin", server.url + "f.bin"]
        with pytest.raises(DownloadError) as e:
            fetch.fetch(urls, dest, expected, progress=False)
        assert "404" in str(e.value) and "connection closed after" in str(e.value)
        server.drop.clear()
        assert fetch.fetch(urls, dest, expected, progress=False) == urls[1]
    assert open(dest, "rb").read() == b"payload"
    assert sorted(os.listdir(str(tmp_path))) == ["f.bin", "served"]


def test_prepared_dataset_is_skipped_and_force_redoes_it(tmp_path, capsys):
    (tmp_path / "v1").mkdir()
    fakedata.make_mnist_files(str(tmp_path / "v1"))
    data_dir = str(tmp_path / "data")
    args = ("--dataset", "MNIST", "--data_dir", data_dir, "--skip_checksum")
    assert run(*(args + ("--source", str(tmp_path / "v1")))) == 0
    (tmp_path / "v2").mkdir()
    arrays2 = fakedata.make_mnist_files(str(tmp_path / "v2"), 20, 5, seed=9)
    capsys.readouterr()
    assert run(*(args + ("--source", str(tmp_path / "v2")))) == 0
    assert "already prepared" in capsys.readouterr().err
    assert len(split_ids(os.path.join(data_dir, "mnist"), "train")) == 50
    assert run(*(args + ("--source", str(tmp_path / "v2"), "--force"))) == 0
    assert_dataset(os.path.join(data_dir, "mnist"), arrays2)
    assert leftovers(data_dir) == []


def _served_run(tmp_path, name, mutate):
    """Builds the files for `name`, lets `mutate(folder)` damage them, and runs
    download.py over HTTP with checksums of the damaged files (so the format
    check, not the checksum, has to catch the damage)."""
    served = tmp_path / "served"
    served.mkdir()
    MAKERS[name](str(served))
    mutate(str(served))
    sums = fakedata.write_md5sums(str(served), str(tmp_path / "sums.md5"))
    data_dir = str(tmp_path / "data")
    with fakedata.FileServer(str(served)) as server:
        code = run("--dataset", name, "--data_dir", data_dir, "--mirror", server.url,
                   "--checksums", sums)
    assert os.listdir(data_dir) == []
    return code


def test_truncated_gzip_is_a_clear_error(tmp_path, capsys):
    def truncate(folder):
        path = os.path.join(folder, "train-images-idx3-ubyte.gz")
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    assert _served_run(tmp_path, "MNIST", truncate) == BAD_DATASET
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz is not a complete gzip file" in err
    assert "download it again" in err


def test_wrong_idx_magic_is_a_clear_error(tmp_path, capsys):
    def swap(folder):  # labels (1-D) where images (3-D) belong
        labels = gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")).read()
        fakedata.write_gz(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), labels)
    assert _served_run(tmp_path, "FASHION_MNIST", swap) == BAD_DATASET
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte.gz: IDX magic 0x00000801" in err
    assert "expected unsigned bytes (0x08) with 3 dimensions" in err


def test_tar_member_escaping_the_archive_is_refused(tmp_path, capsys):
    def add_escape(folder):
        fakedata.make_cifar_file(folder, extra_members=[("cifar-10-batches-py/../../evil",
                                                         b"x")])
    assert _served_run(tmp_path, "CIFAR10", add_escape) == BAD_DATASET
    err = capsys.readouterr().err
    assert "'cifar-10-batches-py/../../evil' points outside the archive" in err
    assert not os.path.exists(str(tmp_path / "evil"))


class _CallsSystem(object):
    def __reduce__(self):
        return (os.system, ("echo pwned > %s" % os.environ["PWNED_PATH"],))


def test_pickle_that_calls_a_function_is_refused(tmp_path, capsys, monkeypatch):
    marker = str(tmp_path / "pwned")
    monkeypatch.setenv("PWNED_PATH", marker)
    evil = pickle.dumps({b"data": _CallsSystem(), b"labels": []}, protocol=2)

    def poison(folder):
        a = fakedata.random_arrays((32, 32, 3), 35, 9, 2)
        import tarfile
        with tarfile.open(os.path.join(folder, "cifar-10-python.tar.gz"), "w:gz") as tar:
            for i in range(1, 6):
                fakedata.add_tar_member(tar, "cifar-10-batches-py/data_batch_%d" % i,
                                        fakedata.cifar_batch_bytes(a.train_images[:7],
                                                                   a.train_labels[:7]))
            fakedata.add_tar_member(tar, "cifar-10-batches-py/test_batch", evil)
    assert _served_run(tmp_path, "CIFAR10", poison) == BAD_DATASET
    err = capsys.readouterr().err
    assert "refused to load global" in err and "system" in err
    assert "test_batch" in err
    assert not os.path.exists(marker)


def test_svhn_mat_with_wrong_shape_is_refused(tmp_path):
    import scipy.io
    path = str(tmp_path / "train_32x32.mat")
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 2), np.uint8),
                            "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DataFormatError) as e:
        formats.read_svhn_mat(path)
    assert "X must be 32x32x3xN uint8, found 28x28x3x2 uint8" in str(e.value)


def test_svhn_label_10_means_digit_0(tmp_path):
    import scipy.io
    path = str(tmp_path / "test_32x32.mat")
    x = np.arange(32 * 32 * 3 * 3, dtype=np.int64).reshape(32, 32, 3, 3).astype(np.uint8)
    scipy.io.savemat(path, {"X": x, "y": np.array([[10], [1], [9]], np.uint8)})
    images, labels = formats.read_svhn_mat(path)
    assert labels.tolist() == [0, 1, 9]
    np.testing.assert_array_equal(images[1], x[:, :, :, 1])


def test_cifar_rows_are_channel_major(tmp_path):
    # One image whose red plane is 0..1023, green 1024.., blue 2048.. (mod 256):
    # pixel (r, c) channel k must be (k * 1024 + r * 32 + c) % 256.
    row = (np.arange(3072) % 256).astype(np.uint8)
    r, c, k = 3, 17, 2
    raw = pickle.dumps({b"data": row[None, :], b"labels": [4]}, protocol=2)
    images, labels = formats._unpickle_cifar_batch(raw, "x")
    assert images.shape == (1, 32, 32, 3) and labels.tolist() == [4]
    assert images[0, r, c, k] == (k * 1024 + r * 32 + c) % 256


@pytest.mark.slow
def test_command_line_exit_status_and_help(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "download.py", "--dataset", "MNIST", "--data_dir", str(tmp_path),
         "--source", str(tmp_path / "nowhere"), "--no_progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == BAD_DATASET
    assert "nowhere/train-images-idx3-ubyte.gz not found" in result.stderr
    assert "Traceback" not in result.stderr
    helped = subprocess.run([sys.executable, "download.py", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    for flag in ("--mirror", "--source", "--skip_checksum", "--force", "--checksums"):
        assert flag in helped.stdout


def test_loopback_downloads_bypass_the_proxy_and_other_hosts_use_it(tmp_path, monkeypatch):
    """With HTTP_PROXY set (a corporate machine, a CI runner), a loopback
    mirror (127.0.0.1, localhost) is fetched directly, not through the proxy
    (which cannot reach this machine's loopback); any other host still goes
    through the user's proxy, as urllib does by default."""
    import socket
    import urllib.request
    served = tmp_path / "served"
    served.mkdir()
    (served / "f.bin").write_bytes(b"payload")
    expected = fakedata.md5(str(served / "f.bin"))
    # An unreachable proxy: a port held, never listening, so connecting is refused.
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    def use_proxy(url):
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, url)
        # urlopen keeps the opener (and the proxies) of its first call: read them anew
        monkeypatch.setattr(urllib.request, "_opener", None, raising=False)

    try:
        use_proxy("http://127.0.0.1:%d" % dead.getsockname()[1])
        with fakedata.FileServer(str(served)) as server:
            for host in ("127.0.0.1", "localhost"):
                url = server.url.replace("127.0.0.1", host) + "f.bin"
                dest = str(tmp_path / ("%s.bin" % host))
                assert fetch.fetch([url], dest, expected, timeout=10, progress=False) == url
                assert open(dest, "rb").read() == b"payload"
            assert server.requests == ["/f.bin", "/f.bin"]
    finally:
        dead.close()
    assert fetch.is_loopback("http://[::1]:8000/f.bin")  # the server above is IPv4 only
    assert not fetch.is_loopback("http://127.0.0.1.example.invalid/f.bin")
    # Elsewhere the proxy is used: one that serves http://example.invalid/f.bin
    # (the absolute URL a proxy is sent, as a path under its folder).
    proxied = tmp_path / "proxy" / "http:" / "example.invalid"
    proxied.mkdir(parents=True)
    (proxied / "f.bin").write_bytes(b"payload")
    with fakedata.FileServer(str(tmp_path / "proxy")) as proxy:
        use_proxy(proxy.url)
        url = "http://example.invalid/f.bin"
        dest = str(tmp_path / "elsewhere.bin")
        assert fetch.fetch([url], dest, expected, timeout=10, progress=False) == url
        assert proxy.requests == [url]
    assert open(dest, "rb").read() == b"payload"


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@pytest.mark.parametrize("where", ["mirror", "source"])
def test_a_file_that_differs_from_the_checksums_file_is_refused(tmp_path, capsys, monkeypatch,
                                                                where):
    """--checksums with one wrong digest: the run stops with status 2 (the
    documented status of every download.py error), naming the file and
    both digests, and leaves no dataset and no staging folder behind."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    fakedata.make_mnist_files(str(served))
    sums = fakedata.write_md5sums(str(served), str(tmp_path / "sums.md5"))
    bad = "t10k-labels-idx1-ubyte.gz"
    actual, wrong = fakedata.md5(str(served / bad)), "0123456789abcdef0123456789abcdef"
    with open(sums) as f:
        text = f.read()
    assert text.count(actual) == 1
    with open(sums, "w") as f:
        f.write(text.replace(actual, wrong))
    data_dir = str(tmp_path / "data")
    args = ("--dataset", "MNIST", "--data_dir", data_dir, "--checksums", sums)
    if where == "mirror":
        with fakedata.FileServer(str(served)) as server:
            assert run(*(args + ("--mirror", server.url))) == BAD_DATASET
        expected = ["could not download %s:" % bad,
                    "%s%s: MD5 %s does not match the expected %s" % (server.url, bad, actual,
                                                                     wrong)]
    else:
        assert run(*(args + ("--source", str(served)))) == BAD_DATASET
        expected = ["%s has MD5 %s but the --checksums file gives %s for %s"
                    % (served / bad, actual, wrong, bad)]
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    assert os.listdir(data_dir) == []  # no dataset, no staging folder, no .part file
    assert sorted(os.listdir(str(served))) == sorted(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", bad])  # the copies are left alone


class _StalledServer(object):
    """A loopback HTTP server that reads each request, sends `head` (nothing,
    or headers and the start of a body) and then nothing more, holding the
    connection open until it is closed."""

    def __init__(self, head):
        import socket
        import threading
        self.head = head
        self.requests = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(5)
        self._socket.settimeout(0.05)
        self.url = "http://127.0.0.1:%d/" % self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._connections = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        import socket
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except socket.timeout:
                continue
            self._connections.append(connection)
            connection.settimeout(5)
            try:
                self.requests.append(connection.recv(65536).split(b"\r\n")[0].decode())
                connection.sendall(self.head)
            except OSError:
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        for connection in self._connections:
            connection.close()
        self._socket.close()


@pytest.mark.parametrize("stall", ["before the headers", "mid-body"])
def test_a_stalled_download_fails_after_the_timeout(tmp_path, capsys, monkeypatch, stall):
    """A host that accepts the connection and then sends nothing more (before
    its headers, or part way through the body): download.py gives up after
    --timeout seconds without data, with status 2, naming the file, and
    leaves nothing half-written."""
    import time
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    head = b""
    if stall == "mid-body":
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"\x1f\x8b" + b"x" * 5000
    data_dir = str(tmp_path / "data")
    with _StalledServer(head) as server:
        start = time.time()
        assert download.main(["--dataset", "MNIST", "--data_dir", data_dir, "--mirror",
                              server.url, "--no_progress", "--timeout", "1"]) == BAD_DATASET
        took = time.time() - start
    assert 0.9 <= took < 5, took
    assert server.requests == ["GET /train-images-idx3-ubyte.gz HTTP/1.1"]
    err = capsys.readouterr().err
    assert "could not download train-images-idx3-ubyte.gz:\n  %strain-images-idx3-ubyte.gz: " \
           "timed out" % server.url in err, err
    assert "Traceback" not in err
    assert os.listdir(data_dir) == []  # no dataset, no staging folder, no .part file
