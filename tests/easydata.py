"""A small dataset whose classes are easy to tell apart: class c is a bright
square at its own place on a dark, noisy background."""

import os

import numpy as np

from datasets import store


def easy_arrays(num, num_classes=10, size=16, channels=1, seed=0):
    rs = np.random.RandomState(seed)
    labels = np.arange(num) % num_classes
    rs.shuffle(labels)
    images = rs.randint(0, 60, (num, size, size, channels)).astype(np.uint8)
    assert num_classes <= 16 and size % 4 == 0
    cell = size // 4  # a 4 x 4 grid of places
    for n, c in enumerate(labels):
        row, col = divmod(int(c), 4)
        images[n, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell, :] = 230
    return images, labels


def make_easy_dataset(folder, num_train=640, num_test=200, size=16, channels=1,
                      num_classes=10):
    os.makedirs(folder)
    train = easy_arrays(num_train, num_classes, size, channels, seed=1)
    test = easy_arrays(num_test, num_classes, size, channels, seed=2)
    store.write_dataset(folder, [("train",) + train, ("test",) + test], num_classes)
    return folder


def bars_arrays(num, num_classes=10, width=48, bar=2, noise=30, seed=0):
    """Class c is a short horizontal bar in row band c (rows 2c, 2c+1) at a
    random horizontal position, on a dark noisy background: [num, 2K, width, 1].

    The classes are separated (no two share a row) while each class is a
    chain of images whose bars overlap their neighbours' by bar - 1 pixels,
    so the unlabeled images connect a class's positions. Ten labels per class
    leave many positions unseen: a classifier trained on the labels alone has
    never seen most pixels lit, which is what unlabeled data can fix."""
    rs = np.random.RandomState(seed)
    labels = np.arange(num) % num_classes
    rs.shuffle(labels)
    images = rs.randint(0, noise, (num, 2 * num_classes, width, 1))
    columns = rs.randint(0, width - bar + 1, num)
    for n, c in enumerate(labels):
        images[n, 2 * c:2 * c + 2, columns[n]:columns[n] + bar, :] = 200
    return images.astype(np.uint8), labels


def make_bars_dataset(folder, num_train=3000, num_test=500):
    os.makedirs(folder)
    store.write_dataset(folder, [("train",) + bars_arrays(num_train, seed=1),
                                 ("test",) + bars_arrays(num_test, seed=2)], 10)
    return folder
