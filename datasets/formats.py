"""Readers for the files the datasets ship in: IDX (MNIST), MATLAB v5 (SVHN),
tar.gz of Python pickles (CIFAR-10).

Every reader validates what it reads and raises `DataFormatError` naming the
file, what is wrong and what to do, before anything is written.
"""

import gzip
import io
import pickle
import posixpath
import tarfile
import zlib

import numpy as np

from datasets.errors import DataFormatError

_REDOWNLOAD = "delete it and download it again (python download.py --force ...)"


def _read_maybe_gzip(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataFormatError("%s is not a complete gzip file (%s); %s" % (path, e, _REDOWNLOAD))


def read_idx(path, ndim):
    """Reads an IDX file (optionally gzipped) of unsigned bytes.

    Args:
      path: file path, e.g. `train-images-idx3-ubyte.gz`.
      ndim: the number of dimensions the file must have (3 for images,
        1 for labels).
    Returns:
      uint8 array of the shape the header gives.
    """
    data = _read_maybe_gzip(path)
    header = 4 + 4 * ndim
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataFormatError("%s is not an IDX file (bad magic number %r); %s"
                              % (path, data[:4], _REDOWNLOAD))
    if data[2] != 0x08 or data[3] != ndim:
        raise DataFormatError(
            "%s: IDX magic 0x%02x%02x%02x%02x says type 0x%02x with %d dimensions; "
            "expected unsigned bytes (0x08) with %d dimensions; is it the right file?"
            % (path, data[0], data[1], data[2], data[3], data[2], data[3], ndim))
    if len(data) < header:
        raise DataFormatError("%s: IDX header is truncated; %s" % (path, _REDOWNLOAD))
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) + header
    if len(data) != expected:
        raise DataFormatError("%s: header promises %s = %d bytes but the file holds %d; %s"
                              % (path, "x".join(map(str, dims)), expected, len(data),
                                 _REDOWNLOAD))
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_idx_pair(images_path, labels_path, num_classes=10):
    """Reads matching IDX image and label files -> (N x H x W x 1 uint8, N int64)."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataFormatError("%s holds %d images but %s holds %d labels; the files do "
                              "not belong together" % (images_path, len(images),
                                                       labels_path, len(labels)))
    _check_labels(labels_path, labels, num_classes)
    return images[..., np.newaxis], labels.astype(np.int64)


def _check_labels(path, labels, num_classes):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError("%s: labels must lie in 0..%d, found %d..%d"
                              % (path, num_classes - 1, labels.min(), labels.max()))


def read_svhn_mat(path):
    """Reads an SVHN cropped-digits `.mat` file -> (N x 32 x 32 x 3 uint8, N int64).

    The file holds `X` (32 x 32 x 3 x N uint8) and `y` (N x 1, 1..10, where 10
    stands for the digit 0).
    """
    import scipy.io  # only SVHN needs scipy
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for a damaged file
        raise DataFormatError("%s is not a readable MATLAB v5 file (%s: %s); %s"
                              % (path, type(e).__name__, e, _REDOWNLOAD))
    if "X" not in mat or "y" not in mat:
        raise DataFormatError("%s: expected variables X and y, found %s"
                              % (path, sorted(k for k in mat if not k.startswith("__"))))
    x, y = mat["X"], mat["y"]
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataFormatError("%s: X must be 32x32x3xN uint8, found %s %s"
                              % (path, "x".join(map(str, x.shape)), x.dtype))
    y = np.asarray(y).reshape(-1)
    if len(y) != x.shape[3]:
        raise DataFormatError("%s: X holds %d images but y holds %d labels"
                              % (path, x.shape[3], len(y)))
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataFormatError("%s: SVHN labels must lie in 1..10, found %d..%d"
                              % (path, y.min(), y.max()))
    labels = (y.astype(np.int64) % 10)  # 10 means the digit 0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


class _CifarUnpickler(pickle.Unpickler):
    """Loads only what CIFAR-10 batches contain: dicts, lists, str/bytes,
    ints and numpy arrays (plus `_codecs.encode`, which Python 3 uses to
    pickle bytes at protocol 2). Any other global (a function to call, a class
    to build) is refused, so a crafted file cannot run code."""

    def find_class(self, module, name):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError("refused to load global %s.%s" % (module, name))
        if module == "_codecs":
            import codecs
            return codecs.encode
        if name == "_reconstruct":
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def _unpickle_cifar_batch(raw, where):
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:
        raise DataFormatError("%s is not a CIFAR-10 batch (%s: %s); %s"
                              % (where, type(e).__name__, e, _REDOWNLOAD))
    if not isinstance(batch, dict):
        raise DataFormatError("%s: expected a dict, found %s" % (where, type(batch).__name__))
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataFormatError("%s: expected keys 'data' and 'labels', found %s"
                              % (where, sorted(map(str, batch))))
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError("%s: 'data' must be N x 3072 uint8, found %s %s"
                              % (where, "x".join(map(str, data.shape)), data.dtype))
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataFormatError("%s: %d images but %d labels" % (where, len(data), labels.size))
    _check_labels(where, labels, 10)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are channel-major
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _check_member_name(path, member):
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or posixpath.isabs(name) or ".." in parts:
        raise DataFormatError("%s: archive member %r points outside the archive; refusing "
                              "to read this archive (%s)" % (path, name, _REDOWNLOAD))
    if member.issym() or member.islnk():
        raise DataFormatError("%s: archive member %r is a link; CIFAR-10 archives hold only "
                              "regular files (%s)" % (path, name, _REDOWNLOAD))


def read_cifar10_tar(path):
    """Reads `cifar-10-python.tar.gz` without extracting it to disk.

    Returns:
      (train_images, train_labels, test_images, test_labels): images
      N x 32 x 32 x 3 uint8, labels N int64.
    """
    wanted = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member_name(path, member)
            for member in members:
                base = posixpath.basename(member.name)
                if member.isfile() and base in wanted:
                    found[base] = _unpickle_cifar_batch(
                        tar.extractfile(member).read(), "%s:%s" % (path, member.name))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataFormatError("%s is not a complete tar.gz archive (%s); %s"
                              % (path, e, _REDOWNLOAD))
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataFormatError("%s: missing CIFAR-10 batches %s; is it cifar-10-python.tar.gz?"
                              % (path, ", ".join(missing)))
    train = [found[w] for w in wanted[:5]]
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
            found["test_batch"][0], found["test_batch"][1])
