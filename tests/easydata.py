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
