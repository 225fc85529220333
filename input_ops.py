"""Input pipeline: a dataset folder -> sharded TFRecord files -> tf.data.

The TFRecord files are a cache beside the dataset (`<dataset>/tfrecords/`),
rebuilt only when `data.hdf5` or the split changed, and written atomically.
Each record holds one example:
  image  bytes   raw uint8 pixels, H*W*C, row-major
  shape  int64   [H, W, C]
  label  int64   class index in 0..K-1
  id     bytes   the example's id in data.hdf5
  index  int64   its position in the split (ids file order)
Records are spread over the files in a fixed shuffled order, so every file is
a mixed sample of the split and sequential reads need no large shuffle buffer.

Pipelines yield dicts:
  image  float32 [B, H, W, C], pixels scaled to [-1, 1] (x / 255 * 2 - 1)
  label  int32 [B]
  id     string [B]
  index  int64 [B]
Every batch has a fixed, static batch size B, as Ascend NPUs need (a new
shape would mean a graph recompilation or an error). Training drops the
remainder (drop_remainder). Evaluation visits every example of a split
exactly once: its last batch is padded to B rows and its dicts carry one
entry more,
  valid  bool [B], False for the padding rows
which hold black images (pixels 0: -1.0), label 0, id "" (never a real id:
the ids files' empty lines are skipped) and index -1; drop them (e.g.
`x[valid]`) before counting anything.
"""

import collections
import hashlib
import json
import logging
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf
from tqdm import tqdm

from datasets import store
from datasets.errors import DatasetError
from files import atomic_path, replace_dir, staging_dir, write_json_atomic
from names import TFRECORD_FILES_PER_SPLIT, TFRECORD_FOLDER, TFRECORD_MANIFEST

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RECORD_ORDER_SEED = 0  # the fixed order records are spread over the files in
# Records in the shuffle buffer: a whole epoch of every dataset here (SVHN's
# 73,257 the largest), so each epoch is a uniformly random permutation, as
# the paper's code draws them; larger splits are shuffled within a window.
DEFAULT_SHUFFLE_BUFFER = 100000

TFRecordSplit = collections.namedtuple("TFRecordSplit", "files num_examples labels")
TFRecordSplit.__doc__ = """One split's files, example count and labels (N int64,
by position in the split, for choosing labeled subsets)."""


class TFRecordCache(collections.namedtuple(
        "TFRecordCache", "path image_shape num_classes splits")):
    """The converted dataset: folder, (H, W, C), K, {split: TFRecordSplit}."""


def _fingerprint(info):
    """What the cache was built from; a change in any part rebuilds it."""
    stat = os.stat(info.data_file)
    return {
        "format_version": FORMAT_VERSION,
        "data_file_size": stat.st_size,
        "data_file_mtime_ns": stat.st_mtime_ns,
        "image_shape": list(info.image_shape),
        "num_classes": info.num_classes,
        "splits": {split: hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()
                   for split, ids in info.splits.items()},
    }


def _load_cache(info, cache_dir):
    """The cache if it exists, is complete and matches the dataset; else None."""
    try:
        with open(os.path.join(cache_dir, TFRECORD_MANIFEST)) as f:
            manifest = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    if manifest.get("fingerprint") != _fingerprint(info):
        return None
    splits = collections.OrderedDict()
    for split in info.splits:
        entry = manifest["splits"].get(split)
        if entry is None:
            return None
        files = [os.path.join(cache_dir, name) for name in entry["files"]]
        labels_file = os.path.join(cache_dir, entry["labels"])
        if not all(os.path.isfile(f) for f in files + [labels_file]):
            return None
        splits[split] = TFRecordSplit(files, entry["num_examples"], np.load(labels_file))
    return TFRecordCache(cache_dir, tuple(info.image_shape), info.num_classes, splits)


def _example_proto(image, label, example_id, index):
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id.encode("utf-8")])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(out_dir, split, ids, images, labels, num_files, bar):
    order = np.random.RandomState(RECORD_ORDER_SEED).permutation(len(ids))
    names = []
    for k in range(num_files):
        name = "%s-%05d-of-%05d.tfrecord" % (split, k, num_files)
        with tf.io.TFRecordWriter(os.path.join(out_dir, name)) as writer:
            for index in order[k::num_files]:
                writer.write(_example_proto(images[index], labels[index], ids[index], index))
        bar.update(len(order[k::num_files]))
        names.append(name)
    labels_name = "%s-labels.npy" % split
    np.save(os.path.join(out_dir, labels_name), np.asarray(labels, np.int64))
    return {"files": names, "num_examples": len(ids), "labels": labels_name}


def prepare_tfrecords(info, num_files=TFRECORD_FILES_PER_SPLIT, examples=None, force=False,
                      progress=True):
    """Converts a dataset to TFRecord files unless an up-to-date cache exists.

    Args:
      info: datasets.store.DatasetInfo.
      num_files: files per split, so reads run in parallel and workers can
        take whole files.
      examples: optional {split: (images, labels)} already in memory (as
        download.py has them), saving a read of data.hdf5.
      force: rebuild even if the cache is up to date.
    Returns:
      TFRecordCache.
    """
    cache_dir = os.path.join(info.path, TFRECORD_FOLDER)
    cache = None if force else _load_cache(info, cache_dir)
    if cache is not None:
        return cache
    start = time.time()
    fingerprint = _fingerprint(info)
    total = sum(len(ids) for ids in info.splits.values())
    with staging_dir(cache_dir, "building") as staging, \
            tqdm(total=total, desc="writing TFRecords", unit="img", leave=False,
                 disable=None if progress else True) as bar:
        out = os.path.join(staging, TFRECORD_FOLDER)
        os.makedirs(out)
        splits = collections.OrderedDict()
        for split, ids in info.splits.items():
            if examples is not None and split in examples:
                images, labels = examples[split]
            else:
                with tqdm(total=len(ids), desc="reading %s %s" % (store.DATA_FILE, split),
                          unit="img", leave=False, disable=None if progress else True) as rbar:
                    images, labels = store.read_examples(info, ids, progress=rbar.update)
            if len(images) != len(ids):
                raise DatasetError("%s split: %d ids but %d examples given"
                                   % (split, len(ids), len(images)))
            splits[split] = _write_split(out, split, ids, images, labels, num_files, bar)
        write_json_atomic(os.path.join(out, TFRECORD_MANIFEST),
                          {"fingerprint": fingerprint, "splits": splits})
        if _load_cache(info, cache_dir) is None:  # another process may have finished first
            replace_dir(out, cache_dir)
    log.info("TFRecords for %s written to %s in %.1f s (%d files per split)",
             info.name, cache_dir, time.time() - start, num_files)
    cache = _load_cache(info, cache_dir)
    if cache is None:
        raise DatasetError("%s changed while its TFRecords were being written; run again"
                           % info.data_file)
    return cache


def paper_order(num_examples, seed):
    """The paper's order of a training split: RandomState(seed).permutation.
    Its code takes the labeled subset (each class's first examples) and the
    data-dependent initialisation's batch (the first 500) in this order."""
    return np.random.RandomState(seed).permutation(num_examples)


def select_labeled(labels, num_labeled, num_classes, seed):
    """Chooses a class-balanced labeled subset, as the paper's code does:
    permute the split with RandomState(seed), then take the first
    num_labeled / K examples of each class in that order.

    Args:
      labels: N int class indices of the split, by position.
      num_labeled: total labels to keep; a multiple of num_classes.
      seed: the data seed.
    Returns:
      Sorted int64 array of positions in the split.
    """
    labels = np.asarray(labels)
    if num_labeled <= 0 or num_labeled % num_classes:
        raise ValueError("num_labeled must be a positive multiple of the %d classes, got %d"
                         % (num_classes, num_labeled))
    per_class = num_labeled // num_classes
    order = paper_order(len(labels), seed)
    chosen = []
    for c in range(num_classes):
        of_class = order[labels[order] == c]
        if len(of_class) < per_class:
            raise ValueError("class %d has %d examples, fewer than the %d labels per class "
                             "asked for" % (c, len(of_class), per_class))
        chosen.append(of_class[:per_class])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _parse_batch(serialized, image_shape):
    """Serialized records [B] -> the batch dict described in the module doc."""
    features = tf.io.parse_example(serialized, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "id": tf.io.FixedLenFeature([], tf.string),
        "index": tf.io.FixedLenFeature([], tf.int64),
    })
    batch_size = serialized.shape.as_list()[0]  # static when drop_remainder
    if batch_size is None:
        batch_size = -1
    pixels = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8),
                        [batch_size] + list(image_shape))
    image = tf.cast(pixels, tf.float32) / 255.0 * 2.0 - 1.0
    return {"image": image, "label": tf.cast(features["label"], tf.int32),
            "id": features["id"], "index": features["index"]}


def _check_shard(num_shards, shard_index):
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError("shard_index must lie in [0, num_shards), got %d of %d"
                         % (shard_index, num_shards))


def _records(files, num_shards, shard_index, shuffle_files_seed=None, shuffle_files=False):
    """Records of `files`, read in parallel, restricted to one shard.

    Whole files go to each worker when they divide evenly; otherwise every
    worker reads the same deterministic order and keeps every num_shards-th
    record. Either way the shards are disjoint and cover the split.
    """
    files = sorted(files)
    whole_files = num_shards > 1 and len(files) % num_shards == 0
    if whole_files:
        files = files[shard_index::num_shards]
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files and (whole_files or num_shards == 1):
        dataset = dataset.shuffle(len(files), seed=shuffle_files_seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
        num_parallel_calls=tf.data.experimental.AUTOTUNE)
    if num_shards > 1 and not whole_files:
        dataset = dataset.shard(num_shards, shard_index)
    return dataset


def _subset_file(cache, split, subset, num_shards, shard_index):
    """The records of `subset` (positions in the split; this shard's share:
    every num_shards-th of them) as one small TFRecord file in the cache
    folder, written once: a labeled stream then reads 100 records per epoch,
    not the whole split. Returns (its path, its record count)."""
    positions = np.sort(np.asarray(subset, np.int64))[shard_index::num_shards]
    key = hashlib.sha1(split.encode() + positions.tobytes()).hexdigest()[:16]
    path = os.path.join(cache.path, "subset-%s-%s.tfrecord" % (split, key))
    if not os.path.isfile(path):
        wanted = set(positions.tolist())
        with atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for name in sorted(cache.splits[split].files):
                    for record in tf.io.tf_record_iterator(name):
                        example = tf.train.Example.FromString(record)
                        if example.features.feature["index"].int64_list.value[0] in wanted:
                            writer.write(record)
    return path, len(positions)


def _count_records(files, num_shards, shard_index):
    """Records in one shard of `files` (one pass, in a graph of its own)."""
    with tf.Graph().as_default():
        count = _records(files, num_shards, shard_index).reduce(
            np.int64(0), lambda n, _: n + 1)
        with tf.Session() as sess:
            return int(sess.run(count))


EPOCH_SEED_STRIDE = 1000003  # epoch e of a stream with seed s shuffles with s * this + e


def stream_dataset(cache, batch_size, split="train", seed=None,
                   shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, num_shards=1, shard_index=0,
                   subset=None, skip_batches=0):
    """An endless, shuffled stream of fixed-size batches of one split (or of
    a subset of it): training's batches, its validation batches (split
    "test"), the labeled examples of semi-supervised training.

    The stream is a sequence of epochs, each every record of the shard once,
    in an order drawn from (seed, epoch number) alone: the file order and a
    shuffle buffer both seeded with seed * EPOCH_SEED_STRIDE + epoch. So a
    position in it is found without reading what comes before: batch n
    starts in epoch n*B // N at record n*B % N (N records per epoch).

    Args:
      cache: TFRecordCache.
      batch_size: B; every batch has exactly B examples.
      split: which split to read.
      seed: shuffling seed; the same seed gives the same stream.
      num_shards, shard_index: this worker's share for distributed runs.
      subset: optional positions in the split (from `select_labeled`) to keep,
        e.g. the labeled examples of semi-supervised training; they are
        copied to a small file in the cache folder once.
      skip_batches: start this many batches into the stream: a run resumed at
        step n continues with the data an uninterrupted run would have seen
        (with the same seed). Costs at most one epoch's reading (and, for a
        shard of a split, one count of its records), whatever n is. An int,
        or a scalar tensor (e.g. the global step) read when an initializable
        iterator is initialised.
    Returns:
      tf.data.Dataset of batch dicts (see module doc).
    """
    _check_shard(num_shards, shard_index)
    files, shards, index, per_epoch = _stream_files(cache, split, num_shards, shard_index, subset)
    first_epoch, offset = 0, 0
    positioned = isinstance(skip_batches, (tf.Tensor, tf.Variable))
    if positioned or skip_batches:
        if per_epoch is None:  # a shard of the split: count it
            per_epoch = _count_records(files, shards, index)
        if per_epoch == 0:
            raise DatasetError("the %s split has no records for shard %d of %d"
                               % (split, shard_index, num_shards))
        first_epoch, offset = _start_position(skip_batches, batch_size, per_epoch)
    dataset = _shuffled_epochs(files, shards, index, seed, shuffle_buffer, first_epoch)
    if positioned or offset:
        dataset = dataset.skip(offset)  # within one epoch, before parsing: cheap
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(lambda records: _parse_batch(records, cache.image_shape),
                          num_parallel_calls=tf.data.experimental.AUTOTUNE)
    return dataset.prefetch(tf.data.experimental.AUTOTUNE)


def _stream_files(cache, split, num_shards, shard_index, subset):
    """What a stream reads: (files, their shard count and this worker's
    index among them, records per epoch or None when only counting tells)."""
    if subset is not None:
        path, per_epoch = _subset_file(cache, split, subset, num_shards, shard_index)
        return [path], 1, 0, per_epoch
    per_epoch = cache.splits[split].num_examples if num_shards == 1 else None
    return cache.splits[split].files, num_shards, shard_index, per_epoch


def _start_position(skip_batches, batch_size, per_epoch):
    """(first epoch, records to skip in it) of a stream `skip_batches` in; a
    tensor skip_batches gives tensors, read when the iterator is initialised."""
    if isinstance(skip_batches, (tf.Tensor, tf.Variable)):
        position = tf.cast(skip_batches, tf.int64) * batch_size
        return position // per_epoch, position % per_epoch
    return divmod(skip_batches * batch_size, per_epoch)


def _shuffled_epochs(files, num_shards, shard_index, seed, shuffle_buffer, first_epoch):
    """The records of epochs first_epoch, first_epoch + 1, ... (endless),
    each shuffled with seed * EPOCH_SEED_STRIDE + its number (unseeded: at
    random)."""
    def epoch(number):
        epoch_seed = None if seed is None else \
            tf.constant(seed * EPOCH_SEED_STRIDE, tf.int64) + number
        return _records(files, num_shards, shard_index, epoch_seed, shuffle_files=True).shuffle(
            shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
    return tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)


def _padding_record(image_shape):
    """The serialized record evaluation pads its last batch with: a black
    image (pixels 0, so -1.0 once scaled), label 0, id "" and index -1."""
    return _example_proto(np.zeros(image_shape, np.uint8), 0, "", -1)


def eval_dataset(cache, batch_size, split="test", num_shards=1, shard_index=0):
    """Every example of `split` (of this shard) exactly once, in batches of
    exactly `batch_size` rows, a static shape as Ascend needs: the last batch
    holds the remainder followed by padding rows, which the batches' "valid"
    mask marks False (see the module doc). Consumers count only the valid
    rows, and, if their model mixes the rows of a batch (minibatch
    discrimination), keep the padding rows out of it.

    batch_size - 1 padding records follow the shard's records, and batching
    drops the remainder (as training does, so the shapes are static): the
    last partial batch is filled up and the rest of the padding dropped,
    whatever the shard's size. Full batches cost nothing extra.
    """
    _check_shard(num_shards, shard_index)
    if batch_size < 1:  # repeat(-1) would pad forever
        raise ValueError("batch_size must be positive, got %d" % batch_size)
    dataset = _records(cache.splits[split].files, num_shards, shard_index)
    padding = tf.data.Dataset.from_tensors(
        tf.constant(_padding_record(cache.image_shape))).repeat(batch_size - 1)
    dataset = dataset.concatenate(padding).batch(batch_size, drop_remainder=True)

    def parse(records):
        batch = _parse_batch(records, cache.image_shape)
        batch["valid"] = batch["index"] >= 0  # positions in the split; -1 is padding
        return batch
    dataset = dataset.map(parse, num_parallel_calls=tf.data.experimental.AUTOTUNE)
    return dataset.prefetch(tf.data.experimental.AUTOTUNE)
