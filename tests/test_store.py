"""The reference HDF5 layout: writing, reading, custom folders, clear errors."""

import logging
import os

import h5py
import numpy as np
import pytest

from datasets import store
from datasets.errors import DatasetError


def write_reference_style(folder, images, onehot, ids=None):
    """A folder as the original SSGAN-Tensorflow wrote it, with plain h5py:
    groups named by id, `image` and `label` datasets, id.txt, no split files."""
    os.makedirs(folder)
    ids = ids or [str(i) for i in range(len(images))]
    with h5py.File(os.path.join(folder, "data.hdf5"), "w") as h5:
        for i, example_id in enumerate(ids):
            group = h5.create_group(example_id)
            group["image"] = images[i]
            group["label"] = onehot[i]
    with open(os.path.join(folder, "id.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    return ids


def test_written_dataset_reads_back_exactly(tmp_path):
    rs = np.random.RandomState(0)
    train = rs.randint(0, 256, (12, 8, 6, 3)).astype(np.uint8), rs.randint(0, 4, 12)
    test = rs.randint(0, 256, (5, 8, 6, 3)).astype(np.uint8), rs.randint(0, 4, 5)
    folder = str(tmp_path / "toy")
    os.makedirs(folder)
    store.write_dataset(folder, [("train",) + train, ("test",) + test], num_classes=4)
    info = store.open_dataset(folder)
    assert info.image_shape == (8, 6, 3) and info.num_classes == 4
    assert info.split_source == "official"
    assert info.splits["train"] == [str(i) for i in range(12)]
    assert info.splits["test"] == [str(i) for i in range(12, 17)]
    images, labels = store.read_examples(info, info.splits["test"])
    np.testing.assert_array_equal(images, test[0])
    np.testing.assert_array_equal(labels, test[1])


def test_custom_folder_without_splits_uses_the_reference_80_20_split(tmp_path, caplog):
    rs = np.random.RandomState(1)
    images = rs.randint(0, 256, (20, 5, 7)).astype(np.uint8)  # H x W, one channel
    classes = rs.randint(0, 3, 20)
    onehot = np.eye(3)[classes]  # float one-hot, as some custom writers store it
    ids = write_reference_style(str(tmp_path / "mine"), images, onehot,
                                ["img_%02d" % i for i in range(20)])
    with caplog.at_level(logging.INFO):
        info = store.open_dataset(str(tmp_path / "mine"))
    assert "reference's seeded 80/20 split" in caplog.text
    assert info.name == "mine" and info.image_shape == (5, 7, 1) and info.num_classes == 3
    # The reference: RandomState(123).shuffle(ids), first 80% train.
    shuffled = list(ids)
    np.random.RandomState(123).shuffle(shuffled)
    assert info.splits["train"] == shuffled[:16] and info.splits["test"] == shuffled[16:]
    got, labels = store.read_examples(info, ids)
    np.testing.assert_array_equal(got[..., 0], images)
    np.testing.assert_array_equal(labels, classes)


def test_missing_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(DatasetError) as e:
        store.open_dataset("SVHN", str(tmp_path))
    message = str(e.value)
    assert os.path.join(str(tmp_path), "svhn") in message
    assert "python download.py --dataset SVHN --data_dir %s" % tmp_path in message


def test_label_that_is_not_one_hot_is_named(tmp_path):
    onehot = np.eye(3)[[0, 1, 2, 1]]
    onehot[2] = [0, 1, 1]
    write_reference_style(str(tmp_path / "bad"), np.zeros((4, 4, 4), np.uint8), onehot)
    info = store.open_dataset(str(tmp_path / "bad"))
    with pytest.raises(DatasetError) as e:
        store.read_examples(info, ["0", "1", "2", "3"])
    assert "label of example '2' is not one-hot" in str(e.value)
    assert "bad/data.hdf5" in str(e.value)


def test_image_of_another_shape_is_named(tmp_path):
    folder = str(tmp_path / "ragged")
    write_reference_style(folder, [np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)],
                          np.eye(2))
    info = store.open_dataset(folder)
    with pytest.raises(DatasetError) as e:
        store.read_examples(info, ["0", "1"])
    assert "example '1' is malformed" in str(e.value) and "(4, 5)" in str(e.value)


def test_split_file_with_unknown_id_is_refused(tmp_path):
    folder = str(tmp_path / "d")
    write_reference_style(folder, np.zeros((3, 2, 2), np.uint8), np.eye(2)[[0, 1, 0]])
    with open(os.path.join(folder, "id_train.txt"), "w") as f:
        f.write("0\n1\n")
    with open(os.path.join(folder, "id_test.txt"), "w") as f:
        f.write("7\n")
    with pytest.raises(DatasetError) as e:
        store.open_dataset(folder)
    assert "id_test.txt lists 1 ids that are not in id.txt (first: '7')" in str(e.value)
