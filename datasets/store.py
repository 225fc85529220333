"""The on-disk dataset layout of the reference implementation, and reading it.

A dataset is a folder holding
  data.hdf5      one group per example id, each with `image` (uint8, H x W x C,
                 or H x W for one channel) and `label` (one-hot over K classes),
  id.txt         every id, one per line,
  id_train.txt, id_test.txt   (optional) the official split.
Folders prepared by the original SSGAN-Tensorflow are read as they are.
"""

import collections
import logging
import os

import numpy as np

from datasets import DATA_DIR
from datasets.errors import DatasetError
from files import write_text_atomic

log = logging.getLogger(__name__)

DATA_FILE = "data.hdf5"
ID_FILE = "id.txt"
SPLIT_FILES = collections.OrderedDict([("train", "id_train.txt"), ("test", "id_test.txt")])
# The reference's split when a folder has no split files: ids shuffled with
# RandomState(123), the first 80% train, the rest test.
REFERENCE_SPLIT_SEED = 123
REFERENCE_TRAIN_FRACTION = 0.8
# HDF5 1.8 object formats: compact and readable by every h5py the reference
# and TF 1.15 environments use.
HDF5_LIBVER = ("v108", "v108")


class DatasetInfo(collections.namedtuple(
        "DatasetInfo", "name path image_shape num_classes splits split_source")):
    """What a dataset folder holds.

    Fields:
      name: dataset name (e.g. "MNIST", or the folder name of a custom one).
      path: the folder.
      image_shape: (H, W, C).
      num_classes: K, the length of the one-hot labels.
      splits: OrderedDict split name -> list of ids.
      split_source: "official" (from id_<split>.txt) or "reference 80/20".
    """

    @property
    def data_file(self):
        return os.path.join(self.path, DATA_FILE)


def _read_ids(path):
    with open(path) as f:
        ids = [line.strip() for line in f]
    return [i for i in ids if i]


def _h5py():
    import h5py
    return h5py


def _open_h5(path):
    try:
        return _h5py().File(path, "r")
    except OSError as e:
        raise DatasetError("%s is not a readable HDF5 file (%s); prepare the dataset again "
                           "(python download.py --force ...)" % (path, e))


def _example_layout(h5, data_file, example_id):
    """(image_shape, num_classes) of one example, validated."""
    if example_id not in h5:
        raise DatasetError("%s has no group %r listed in id.txt" % (data_file, example_id))
    group = h5[example_id]
    if "image" not in group or "label" not in group:
        raise DatasetError("%s: group %r must hold 'image' and 'label', found %s"
                           % (data_file, example_id, sorted(group)))
    image, label = group["image"], group["label"]
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DatasetError("%s: %r/image must be uint8 H x W x C, found %s %s"
                           % (data_file, example_id, image.dtype, image.shape))
    if label.ndim != 1 or label.shape[0] < 2:
        raise DatasetError("%s: %r/label must be a one-hot vector, found shape %s"
                           % (data_file, example_id, label.shape))
    shape = tuple(image.shape) if image.ndim == 3 else tuple(image.shape) + (1,)
    return shape, int(label.shape[0])


def reference_split(ids):
    """The reference's 80/20 split of a shuffled id list."""
    shuffled = list(ids)
    np.random.RandomState(REFERENCE_SPLIT_SEED).shuffle(shuffled)
    num_train = int(len(shuffled) * REFERENCE_TRAIN_FRACTION)
    return collections.OrderedDict([("train", shuffled[:num_train]),
                                    ("test", shuffled[num_train:])])


def dataset_dir(name, data_dir):
    """Folder of a dataset: `name` itself if it is a dataset folder, else
    `<data_dir>/<name in lower case>`."""
    if os.path.isfile(os.path.join(name, DATA_FILE)):
        return name
    return os.path.join(data_dir, name.lower())


def is_prepared(path):
    return (os.path.isfile(os.path.join(path, DATA_FILE))
            and os.path.isfile(os.path.join(path, ID_FILE)))


def open_dataset(name, data_dir=DATA_DIR):
    """Describes a prepared dataset (built-in name or folder path).

    Raises:
      DatasetError: the folder is missing or not in the reference layout; the
        message says how to prepare it.
    """
    path = dataset_dir(name, data_dir)
    if not is_prepared(path):
        raise DatasetError(
            "dataset %s not found: %s must hold %s and %s. Prepare it with "
            "`python download.py --dataset %s --data_dir %s`, or point --dataset at a folder "
            "in the reference layout." % (name, path, DATA_FILE, ID_FILE, name.upper(), data_dir))
    ids = _read_ids(os.path.join(path, ID_FILE))
    if not ids:
        raise DatasetError("%s is empty" % os.path.join(path, ID_FILE))
    data_file = os.path.join(path, DATA_FILE)
    with _open_h5(data_file) as h5:
        image_shape, num_classes = _example_layout(h5, data_file, ids[0])
    split_paths = [os.path.join(path, f) for f in SPLIT_FILES.values()]
    if all(os.path.isfile(p) for p in split_paths):
        splits = collections.OrderedDict(
            (split, _read_ids(p)) for split, p in zip(SPLIT_FILES, split_paths))
        known = set(ids)
        for split, p in zip(SPLIT_FILES, split_paths):
            unknown = [i for i in splits[split] if i not in known]
            if unknown:
                raise DatasetError("%s lists %d ids that are not in id.txt (first: %r)"
                                   % (p, len(unknown), unknown[0]))
        split_source = "official"
    else:
        splits = reference_split(ids)
        split_source = "reference 80/20"
        log.info("%s has no %s: using the reference's seeded 80/20 split of id.txt "
                 "(%d train, %d test)", path, " / ".join(SPLIT_FILES.values()),
                 len(splits["train"]), len(splits["test"]))
    folder_name = os.path.basename(os.path.normpath(path))
    display = folder_name if path == name else name.upper()
    return DatasetInfo(display, path, image_shape, num_classes, splits, split_source)


def read_examples(info, ids, progress=None):
    """Reads examples into memory, validating each.

    Args:
      info: DatasetInfo.
      ids: the ids to read, in order.
      progress: optional callable(n) told how many examples were read.
    Returns:
      (images N x H x W x C uint8, labels N int64 class indices).
    Raises:
      DatasetError naming the file and the example id that is malformed.
    """
    from h5py import h5d, h5s
    height, width, channels = info.image_shape
    images = np.empty((len(ids),) + tuple(info.image_shape), np.uint8)
    onehot = np.empty((len(ids), info.num_classes), np.float32)
    data_file = info.data_file
    with _open_h5(data_file) as h5:
        fid = h5.id
        for n, example_id in enumerate(ids):
            key = example_id.encode("utf-8")
            try:
                image = h5d.open(fid, key + b"/image")
                label = h5d.open(fid, key + b"/label")
                if image.dtype != np.uint8 or image.shape not in (
                        (height, width, channels), (height, width) if channels == 1 else None):
                    raise ValueError("image is %s %s, expected uint8 %s"
                                     % (image.dtype, image.shape, info.image_shape))
                if label.shape != (info.num_classes,):
                    raise ValueError("label has shape %s, expected (%d,)"
                                     % (label.shape, info.num_classes))
                image.read(h5s.ALL, h5s.ALL, images[n])
                buf = np.empty(label.shape, label.dtype)
                label.read(h5s.ALL, h5s.ALL, buf)
                onehot[n] = buf
            except (KeyError, ValueError, TypeError) as e:
                raise DatasetError("%s: example %r is malformed: %s"
                                   % (data_file, example_id, e))
            if progress is not None and n % 1000 == 999:
                progress(1000)
    if progress is not None:
        progress(len(ids) % 1000)
    labels = np.argmax(onehot, axis=1)
    nonzero = np.count_nonzero(onehot, axis=1)
    bad = np.flatnonzero((nonzero != 1) | (onehot[np.arange(len(ids)), labels] <= 0))
    if bad.size:
        raise DatasetError("%s: label of example %r is not one-hot: %s"
                           % (data_file, ids[bad[0]], onehot[bad[0]].tolist()))
    return images, labels.astype(np.int64)


def write_dataset(path, splits, num_classes, progress=None):
    """Writes a dataset folder in the reference layout.

    Args:
      path: an empty folder (a staging folder; the caller renames it into place).
      splits: sequence of (split name, images N x H x W x C uint8, labels N int).
        Ids are "0", "1", ... across the splits in order, like the reference.
      num_classes: K, the length of the one-hot labels.
      progress: optional callable(n) told how many examples were written.
    """
    from h5py import h5d, h5g, h5s, h5t
    all_ids = []
    split_ids = collections.OrderedDict()
    eye = np.eye(num_classes, dtype=bool)
    with _h5py().File(os.path.join(path, DATA_FILE), "w", libver=HDF5_LIBVER) as h5:
        fid = h5.id
        bool_type = h5t.py_create(np.dtype(bool))
        label_space = h5s.create_simple((num_classes,))
        for split, images, labels in splits:
            image_space = h5s.create_simple(images.shape[1:])
            ids = [str(len(all_ids) + n) for n in range(len(images))]
            for n, example_id in enumerate(ids):
                group = h5g.create(fid, example_id.encode("ascii"))
                image = h5d.create(group, b"image", h5t.STD_U8LE, image_space)
                image.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(images[n]))
                label = h5d.create(group, b"label", bool_type, label_space)
                label.write(h5s.ALL, h5s.ALL, eye[labels[n]])
                if progress is not None and n % 1000 == 999:
                    progress(1000)
            if progress is not None:
                progress(len(ids) % 1000)
            split_ids[split] = ids
            all_ids.extend(ids)
    write_text_atomic(os.path.join(path, ID_FILE), "".join(i + "\n" for i in all_ids))
    for split, ids in split_ids.items():
        write_text_atomic(os.path.join(path, SPLIT_FILES[split]),
                          "".join(i + "\n" for i in ids))
    return split_ids
