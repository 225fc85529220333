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


def prototype_arrays(num, num_classes=10, size=16, nuisance=2.0, seed=0):
    """Class c is a fixed smooth random image (its prototype) plus a random
    mix of four smooth patterns shared by every class, with twice the
    prototypes' scale, plus pixel noise: [num, size, size, 1].

    The shared patterns dominate the distances between images, so ten
    labeled examples per class say little about where a class ends; the
    many unlabeled images show the clusters. The prototypes and patterns are
    the same for every split (fixed seed); `seed` draws the examples."""
    from scipy.ndimage import gaussian_filter
    shapes = np.random.RandomState(123)
    prototypes = np.stack([gaussian_filter(shapes.normal(size=(size, size)), 1.5)
                           for _ in range(num_classes)])
    prototypes /= prototypes.std(axis=(1, 2), keepdims=True)
    patterns = np.stack([gaussian_filter(shapes.normal(size=(size, size)), 2.5)
                         for _ in range(4)])
    patterns /= patterns.std(axis=(1, 2), keepdims=True)
    rs = np.random.RandomState(seed)
    labels = np.arange(num) % num_classes
    rs.shuffle(labels)
    mix = rs.normal(size=(num, 4)) * nuisance
    x = prototypes[labels] + np.tensordot(mix, patterns, 1) + rs.normal(size=(num, size, size)) * 0.3
    return np.clip(128 + 30 * x, 0, 255).astype(np.uint8)[..., None], labels


def make_prototype_dataset(folder, num_train=3000, num_test=500):
    os.makedirs(folder)
    store.write_dataset(folder, [("train",) + prototype_arrays(num_train, seed=1),
                                 ("test",) + prototype_arrays(num_test, seed=2)], 10)
    return folder
