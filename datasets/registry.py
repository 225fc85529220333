"""The built-in datasets: where their canonical files live, their MD5s, and how
to parse them. Facts from the datasets' own distribution pages."""

import collections
import os

from datasets import formats

RemoteFile = collections.namedtuple("RemoteFile", "name md5")


class DatasetSpec(collections.namedtuple(
        "DatasetSpec", "name image_shape num_classes files base_urls parse")):
    """A downloadable dataset.

    Fields:
      name: upper-case name used on the command line; its folder is the
        lower-case name.
      image_shape: (H, W, C).
      num_classes: K.
      files: RemoteFile tuple, canonical names and MD5s.
      base_urls: hosts serving those names, best first.
      parse: callable({file name: local path}) -> [(split, images, labels)].
    """

    @property
    def folder(self):
        return self.name.lower()

    def urls(self, file_name, mirror=None):
        bases = [mirror] if mirror else self.base_urls
        return [base.rstrip("/") + "/" + file_name for base in bases]


def _parse_idx(paths):
    train = formats.read_idx_pair(paths["train-images-idx3-ubyte.gz"],
                                  paths["train-labels-idx1-ubyte.gz"])
    test = formats.read_idx_pair(paths["t10k-images-idx3-ubyte.gz"],
                                 paths["t10k-labels-idx1-ubyte.gz"])
    return [("train",) + train, ("test",) + test]


def _parse_svhn(paths):
    return [("train",) + formats.read_svhn_mat(paths["train_32x32.mat"]),
            ("test",) + formats.read_svhn_mat(paths["test_32x32.mat"])]


def _parse_cifar10(paths):
    train_x, train_y, test_x, test_y = formats.read_cifar10_tar(paths["cifar-10-python.tar.gz"])
    return [("train", train_x, train_y), ("test", test_x, test_y)]


_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

DATASETS = collections.OrderedDict((spec.name, spec) for spec in [
    DatasetSpec(
        "MNIST", (28, 28, 1), 10,
        tuple(RemoteFile(n, m) for n, m in zip(_IDX_NAMES, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        # The original host (yann.lecun.com) refuses downloads (403); these
        # serve the byte-identical files.
        ("https://storage.googleapis.com/cvdf-datasets/mnist/",
         "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        _parse_idx),
    DatasetSpec(
        "FASHION_MNIST", (28, 28, 1), 10,
        tuple(RemoteFile(n, m) for n, m in zip(_IDX_NAMES, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        _parse_idx),
    DatasetSpec(
        "SVHN", (32, 32, 3), 10,
        (RemoteFile("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
         RemoteFile("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")),
        ("http://ufldl.stanford.edu/housenumbers/",),
        _parse_svhn),
    DatasetSpec(
        "CIFAR10", (32, 32, 3), 10,
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        _parse_cifar10),
])


def local_paths(spec, folder):
    return {f.name: os.path.join(folder, f.name) for f in spec.files}
