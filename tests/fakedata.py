"""Small files in the datasets' real formats, built from known arrays, and a
loopback HTTP server to serve them."""

import collections
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np

Arrays = collections.namedtuple("Arrays", "train_images train_labels test_images test_labels")


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def idx_bytes(array, type_code=0x08):
    """IDX encoding: 0, 0, type, ndim, then big-endian uint32 dims, then data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_gz(path, data):
    with gzip.open(path, "wb") as f:
        f.write(data)


def random_arrays(shape, num_train, num_test, seed, label_max=10):
    rs = np.random.RandomState(seed)
    return Arrays(rs.randint(0, 256, (num_train,) + shape).astype(np.uint8),
                  rs.randint(0, label_max, num_train).astype(np.int64),
                  rs.randint(0, 256, (num_test,) + shape).astype(np.uint8),
                  rs.randint(0, label_max, num_test).astype(np.int64))


def make_mnist_files(folder, num_train=50, num_test=23, seed=0):
    """The four MNIST IDX .gz files; returns the arrays they hold (N x 28 x 28)."""
    a = random_arrays((28, 28), num_train, num_test, seed)
    write_gz(os.path.join(folder, "train-images-idx3-ubyte.gz"), idx_bytes(a.train_images))
    write_gz(os.path.join(folder, "train-labels-idx1-ubyte.gz"), idx_bytes(a.train_labels))
    write_gz(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), idx_bytes(a.test_images))
    write_gz(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), idx_bytes(a.test_labels))
    return a


def make_svhn_files(folder, num_train=40, num_test=17, seed=1):
    """train_32x32.mat / test_32x32.mat as MATLAB v5 files: X is 32x32x3xN,
    y is Nx1 in 1..10 (10 = digit 0). Returns N x 32 x 32 x 3 arrays and
    labels in 0..9."""
    import scipy.io
    a = random_arrays((32, 32, 3), num_train, num_test, seed)
    for name, images, labels in (("train_32x32.mat", a.train_images, a.train_labels),
                                 ("test_32x32.mat", a.test_images, a.test_labels)):
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(os.path.join(folder, name),
                         {"X": images.transpose(1, 2, 3, 0), "y": y}, format="5")
    return a


def cifar_batch_bytes(images, labels):
    """A CIFAR-10 python batch: rows of 3072 bytes, all red, then green, then
    blue, each row-major 32x32; pickled dict with bytes keys as Python 2 wrote."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"synthetic", b"labels": [int(v) for v in labels],
             b"data": np.ascontiguousarray(data), b"filenames": [b"x.png"] * len(images)}
    return pickle.dumps(batch, protocol=2)


def add_tar_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar_file(folder, per_batch=7, num_test=9, seed=2, extra_members=()):
    """cifar-10-python.tar.gz with five training batches and a test batch."""
    a = random_arrays((32, 32, 3), per_batch * 5, num_test, seed)
    with tarfile.open(os.path.join(folder, "cifar-10-python.tar.gz"), "w:gz") as tar:
        for i in range(5):
            rows = slice(i * per_batch, (i + 1) * per_batch)
            add_tar_member(tar, "cifar-10-batches-py/data_batch_%d" % (i + 1),
                           cifar_batch_bytes(a.train_images[rows], a.train_labels[rows]))
        add_tar_member(tar, "cifar-10-batches-py/test_batch",
                       cifar_batch_bytes(a.test_images, a.test_labels))
        add_tar_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(
            {b"label_names": [b"airplane"] * 10}, protocol=2))
        for name, data in extra_members:
            add_tar_member(tar, name, data)
    return a


def write_md5sums(folder, path):
    """An md5sum-style file for every file in `folder`."""
    with open(path, "w") as f:
        for name in sorted(os.listdir(folder)):
            f.write("%s  %s\n" % (md5(os.path.join(folder, name)), name))
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        name = self.path.lstrip("/").split("/")[-1]
        server.requests.append(self.path)
        path = self.translate_path(self.path)
        if name in server.drop and os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        return http.server.SimpleHTTPRequestHandler.do_GET(self)

    def translate_path(self, path):
        return os.path.join(self.server.root, *path.split("?")[0].lstrip("/").split("/"))


class FileServer(object):
    """Serves a folder on 127.0.0.1; file names in `drop` are cut off halfway
    with the full Content-Length announced."""

    def __init__(self, root):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.root = root
        self.httpd.drop = set()
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.httpd.server_address[1]

    @property
    def drop(self):
        return self.httpd.drop

    @property
    def requests(self):
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
