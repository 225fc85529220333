"""TFRecord conversion and the tf.data pipelines, on a small dataset whose
sizes are not multiples of the batch sizes."""

import collections
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import input_ops
from datasets import store
from names import TFRECORD_MANIFEST

SHAPE = (8, 6, 3)  # H != W, so a transposed image cannot pass
NUM_CLASSES = 4
NUM_TRAIN, NUM_TEST = 103, 37


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A prepared dataset: (DatasetInfo, TFRecordCache, {split: (images, labels)}),
    one for the module's tests that only read it."""
    return make_toy(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def own_toy(tmp_path):
    """toy, for a test that changes its files."""
    return make_toy(tmp_path)


def make_toy(tmp_path):
    rs = np.random.RandomState(0)
    arrays = collections.OrderedDict()
    for split, n in (("train", NUM_TRAIN), ("test", NUM_TEST)):
        images = rs.randint(0, 256, (n,) + SHAPE).astype(np.uint8)
        images[0, 0, 0] = [0, 255, 128]  # known extremes for the scaling check
        arrays[split] = (images, np.arange(n) % NUM_CLASSES)
    folder = str(tmp_path / "toy")
    os.makedirs(folder)
    store.write_dataset(folder, [(s,) + a for s, a in arrays.items()], NUM_CLASSES)
    info = store.open_dataset(folder)
    cache = input_ops.prepare_tfrecords(info, num_files=4, progress=False)
    return info, cache, arrays


def run_batches(build, num_batches=None):
    """Builds a dataset in a fresh graph and returns its first batches (all
    of them if num_batches is None) as a list of numpy dicts."""
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(build()).get_next()
        out = []
        with tf.Session() as sess:
            while num_batches is None or len(out) < num_batches:
                try:
                    out.append(sess.run(batch))
                except tf.errors.OutOfRangeError:
                    break
    return out


def concat(batches, key):
    """One key of the batches, concatenated; for evaluation batches (which
    carry a "valid" mask) only the real rows, not the last batch's padding."""
    return np.concatenate([b[key][b["valid"]] if "valid" in b else b[key] for b in batches])


def test_tfrecords_round_trip_equals_the_hdf5_data(toy):
    info, cache, arrays = toy
    for split, (images, labels) in arrays.items():
        batches = run_batches(lambda: input_ops.eval_dataset(cache, 10, split=split))
        index = concat(batches, "index")
        order = np.argsort(index)
        np.testing.assert_array_equal(index[order], np.arange(len(images)))
        ids = concat(batches, "id")[order]
        assert [i.decode() for i in ids] == info.splits[split]
        pixels = (concat(batches, "image")[order] + 1.0) / 2.0 * 255.0
        np.testing.assert_array_equal(np.round(pixels).astype(np.uint8), images)
        np.testing.assert_array_equal(concat(batches, "label")[order], labels)
        np.testing.assert_array_equal(cache.splits[split].labels, labels)


def test_pixels_are_scaled_to_minus_one_one(toy):
    _, cache, arrays = toy
    batches = run_batches(lambda: input_ops.eval_dataset(cache, 64, split="train"))
    first = concat(batches, "image")[list(concat(batches, "index")).index(0)]
    np.testing.assert_allclose(first[0, 0], [-1.0, 1.0, 128 / 255.0 * 2 - 1], atol=1e-6)
    expected = arrays["train"][0].astype(np.float64) / 255 * 2 - 1
    got = concat(batches, "image")[np.argsort(concat(batches, "index"))]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_training_batches_have_fixed_static_shapes(toy):
    _, cache, _ = toy
    with tf.Graph().as_default():
        dataset = input_ops.stream_dataset(cache, 16, seed=1)
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        assert batch["image"].shape.as_list() == [16] + list(SHAPE)
        assert batch["image"].dtype == tf.float32
        assert batch["label"].shape.as_list() == [16] and batch["label"].dtype == tf.int32
        with tf.Session() as sess:
            # 20 batches of 16 = 320 > 3 epochs of 103: repeat and drop_remainder.
            values = [sess.run(batch) for _ in range(20)]
    for v in values:
        assert v["image"].shape == (16,) + SHAPE
        assert -1.0 <= v["image"].min() and v["image"].max() <= 1.0


@pytest.mark.slow
def test_same_seed_same_stream_other_seed_other_stream(toy):
    _, cache, _ = toy

    def ids(seed):
        batches = run_batches(lambda: input_ops.stream_dataset(cache, 8, seed=seed), 13)
        return concat(batches, "id").tolist()
    first = ids(7)
    assert first == ids(7)
    assert first != ids(8)
    assert len(set(first[:NUM_TRAIN])) == NUM_TRAIN  # one epoch visits every example once


def test_evaluation_visits_every_example_exactly_once(toy):
    info, cache, _ = toy
    batches = run_batches(lambda: input_ops.eval_dataset(cache, 10))
    assert [len(b["id"]) for b in batches] == [10, 10, 10, 10]
    assert [int(b["valid"].sum()) for b in batches] == [10, 10, 10, 7]
    ids = [i.decode() for i in concat(batches, "id")]
    assert sorted(ids) == sorted(info.splits["test"]) and len(set(ids)) == NUM_TEST


@pytest.mark.parametrize("split,batch_size,num_shards,shard_index", [
    ("test", 10, 1, 0),   # 37 = 3 * 10 + 7
    ("train", 16, 1, 0),  # 103 = 6 * 16 + 7
    ("test", 8, 1, 0),    # 37 = 4 * 8 + 5
    ("test", 5, 3, 2),    # 4 files, 3 shards: every 3rd record, 12 = 2 * 5 + 2
    ("train", 6, 2, 1),   # whole files: 2 of the 4
    ("test", 37, 1, 0),   # no remainder: no padding, no batch of padding alone
    ("test", 4, 3, 2),    # 12 = 3 * 4
])
def test_evaluation_batches_are_padded_to_a_fixed_static_shape(
        toy, split, batch_size, num_shards, shard_index):
    # Ascend needs every batch, the last one too, to have the same static
    # shape: the remainder is padded, and a mask says which rows are real.
    info, cache, arrays = toy
    build = lambda: input_ops.eval_dataset(cache, batch_size, split=split,  # noqa: E731
                                           num_shards=num_shards, shard_index=shard_index)
    with tf.Graph().as_default():
        dataset = build()
        shapes = tf.data.get_output_shapes(dataset)
        types = tf.data.get_output_types(dataset)
    assert set(shapes) == {"image", "label", "id", "index", "valid"}
    assert shapes["image"].as_list() == [batch_size] + list(SHAPE)
    for key in ("label", "id", "index", "valid"):
        assert shapes[key].as_list() == [batch_size], key
    assert types["valid"] == tf.bool
    batches = run_batches(build)
    for b in batches:
        assert b["image"].shape == (batch_size,) + SHAPE
        for key in ("label", "id", "index", "valid"):
            assert b[key].shape == (batch_size,), key
    valid = [int(b["valid"].sum()) for b in batches]
    total = sum(valid)
    if num_shards == 1:
        assert total == len(arrays[split][0])
    remainder = total % batch_size or batch_size
    assert len(batches) == -(-total // batch_size)
    assert valid == [batch_size] * (len(batches) - 1) + [remainder]
    last = batches[-1]
    assert last["valid"].tolist() == [True] * remainder + [False] * (batch_size - remainder)
    # Padding rows: black images, label 0, an id no example has, index -1.
    pad = ~last["valid"]
    assert (last["image"][pad] == -1.0).all() and (last["label"][pad] == 0).all()
    assert (last["id"][pad] == b"").all() and (last["index"][pad] == -1).all()
    # The valid rows are this shard's examples, each exactly once, with their data.
    ids = [i.decode() for i in concat(batches, "id")]
    assert len(ids) == len(set(ids)) == total
    assert "" not in info.splits[split] and set(ids) <= set(info.splits[split])
    index = concat(batches, "index")
    assert [info.splits[split][i] for i in index] == ids
    np.testing.assert_array_equal(concat(batches, "label"), arrays[split][1][index])
    if num_shards > 1:  # the other shards hold the rest
        others = [i.decode() for s in range(num_shards) if s != shard_index
                  for i in concat(run_batches(lambda: input_ops.eval_dataset(
                      cache, batch_size, split=split, num_shards=num_shards,
                      shard_index=s)), "id")]
        assert sorted(ids + others) == sorted(info.splits[split])


@pytest.mark.slow
@pytest.mark.parametrize("num_shards", [2, 3])  # 4 files: whole files, then records
def test_shards_are_disjoint_and_cover_the_split(toy, num_shards):
    info, cache, _ = toy
    train_shares, test_shares = [], []
    for shard in range(num_shards):
        batches = run_batches(lambda: input_ops.eval_dataset(
            cache, 5, split="test", num_shards=num_shards, shard_index=shard))
        test_shares.append(concat(batches, "id").tolist())
        size = len(concat(run_batches(lambda: input_ops.eval_dataset(
            cache, 1000, split="train", num_shards=num_shards, shard_index=shard)), "id"))
        batches = run_batches(lambda: input_ops.stream_dataset(
            cache, 4, seed=3, num_shards=num_shards, shard_index=shard), -(-size // 4))
        train_shares.append(set(concat(batches, "id").tolist()))
        assert len(train_shares[-1]) == size
    for shares, split in ((train_shares, "train"), (test_shares, "test")):
        flat = [i for share in shares for i in share]
        assert len(flat) == len(set(flat)), "an example reached two workers"
        assert sorted(i.decode() for i in flat) == sorted(info.splits[split])
    with pytest.raises(ValueError):
        input_ops.eval_dataset(cache, 5, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        input_ops.eval_dataset(cache, 0)


def test_labeled_subset_is_balanced_and_seeded(toy):
    _, cache, _ = toy
    labels = cache.splits["train"].labels
    subset = input_ops.select_labeled(labels, 20, NUM_CLASSES, seed=1)
    assert len(subset) == len(set(subset)) == 20
    assert np.bincount(labels[subset], minlength=NUM_CLASSES).tolist() == [5] * NUM_CLASSES
    np.testing.assert_array_equal(subset, input_ops.select_labeled(labels, 20, NUM_CLASSES, 1))
    assert set(subset) != set(input_ops.select_labeled(labels, 20, NUM_CLASSES, 2))
    # The paper's procedure: permute with the data seed, take each class's first.
    order = np.random.RandomState(1).permutation(len(labels))
    expected = np.concatenate([[i for i in order if labels[i] == c][:5] for c in range(4)])
    assert sorted(subset) == sorted(expected)
    with pytest.raises(ValueError, match="multiple of the 4 classes"):
        input_ops.select_labeled(labels, 10, NUM_CLASSES, 1)
    with pytest.raises(ValueError, match="fewer than the 30 labels per class"):
        input_ops.select_labeled(labels, 120, NUM_CLASSES, 1)


def test_labeled_stream_yields_only_the_subset(toy):
    _, cache, _ = toy
    subset = input_ops.select_labeled(cache.splits["train"].labels, 12, NUM_CLASSES, seed=4)
    batches = run_batches(lambda: input_ops.stream_dataset(cache, 5, seed=0, subset=subset), 12)
    seen = concat(batches, "index")
    assert set(seen) == set(subset)  # 60 draws over 12 examples: every one, nothing else
    np.testing.assert_array_equal(concat(batches, "label"),
                                  cache.splits["train"].labels[seen])


def test_cache_is_reused_and_rebuilt_when_the_data_changes(own_toy):
    info, cache, arrays = own_toy
    manifest = os.path.join(cache.path, TFRECORD_MANIFEST)
    stamp = os.stat(manifest).st_mtime_ns
    again = input_ops.prepare_tfrecords(store.open_dataset(info.path), num_files=4,
                                        progress=False)
    assert os.stat(manifest).st_mtime_ns == stamp and again.splits["test"].num_examples == 37
    # Rewrite the dataset with different test labels: the cache must follow.
    os.remove(info.data_file)
    for name in ("id.txt", "id_train.txt", "id_test.txt"):
        os.remove(os.path.join(info.path, name))
    new_labels = (arrays["test"][1] + 1) % NUM_CLASSES
    store.write_dataset(info.path, [("train",) + arrays["train"],
                                    ("test", arrays["test"][0], new_labels)], NUM_CLASSES)
    rebuilt = input_ops.prepare_tfrecords(store.open_dataset(info.path), num_files=4,
                                          progress=False)
    np.testing.assert_array_equal(rebuilt.splits["test"].labels, new_labels)
    batches = run_batches(lambda: input_ops.eval_dataset(rebuilt, 50))
    np.testing.assert_array_equal(concat(batches, "label"), new_labels[concat(batches, "index")])
    assert [n for n in os.listdir(info.path) if n.startswith(".")] == []


def test_incomplete_cache_is_rebuilt(own_toy):
    info, cache, _ = own_toy
    os.remove(cache.splits["train"].files[2])
    rebuilt = input_ops.prepare_tfrecords(info, num_files=4, progress=False)
    assert all(os.path.isfile(f) for f in rebuilt.splits["train"].files)


def test_skipping_batches_continues_the_same_stream(toy):
    # A run resumed at step n reads what an uninterrupted run reads from batch n on.
    _, cache, _ = toy
    full = run_batches(lambda: input_ops.stream_dataset(cache, 8, seed=5), 30)
    resumed = run_batches(lambda: input_ops.stream_dataset(cache, 8, seed=5, skip_batches=17), 13)
    assert [b["id"].tolist() for b in resumed] == [b["id"].tolist() for b in full[17:]]


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [{}, {"num_shards": 2, "shard_index": 1},
                                    {"num_shards": 3, "shard_index": 2},
                                    {"subset": [0, 3, 5, 8, 13, 21, 34, 55, 89, 100]}])
def test_resuming_epochs_later_reads_what_an_uninterrupted_run_reads(toy, kwargs):
    # Positioned from the step alone: whole epochs are not read, and each
    # epoch is every record of the shard once, in a new order.
    _, cache, _ = toy
    full = run_batches(lambda: input_ops.stream_dataset(cache, 3, seed=7, **kwargs), 120)
    for skip in (1, 37, 71, 100):
        resumed = run_batches(lambda: input_ops.stream_dataset(
            cache, 3, seed=7, skip_batches=skip, **kwargs), 20)
        assert [b["id"].tolist() for b in resumed] == \
            [b["id"].tolist() for b in full[skip:skip + 20]]
    ids = [i for b in full for i in b["id"].tolist()]
    per_epoch = len(kwargs["subset"]) if "subset" in kwargs else \
        len(set(ids))  # each shard's records, all seen within 360 examples
    epochs = [ids[k:k + per_epoch] for k in range(0, len(ids) - per_epoch + 1, per_epoch)]
    assert len(epochs) >= 3 and all(sorted(e) == sorted(epochs[0]) for e in epochs)
    assert epochs[0] != epochs[1]  # reshuffled


def test_resume_at_step_300000_reads_at_most_one_epoch(toy):
    """What makes a restart constant-time: batch 300,000 is found by epoch
    arithmetic (epoch n*B // N, record n*B % N of it), not by reading the
    30 million records before it (scripts/benchmark_resume.py times it)."""
    _, cache, _ = toy
    batch = run_batches(lambda: input_ops.stream_dataset(cache, 100, seed=1,
                                                        skip_batches=300000), 1)
    assert len(batch) == 1 and batch[0]["image"].shape[0] == 100
    per_epoch = cache.splits["train"].num_examples
    offset = 300000 * 100 % per_epoch
    epoch = 300000 * 100 // per_epoch
    reference = run_batches(lambda: input_ops.stream_dataset(cache, per_epoch, seed=1,
                                                            skip_batches=epoch), 2)
    ids = [i for b in reference for i in b["id"].tolist()]
    assert batch[0]["id"].tolist() == ids[offset:offset + 100]
