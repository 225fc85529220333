#!/usr/bin/env python
"""Downloads datasets, verifies them, and prepares them for training.

    python download.py --dataset MNIST
    python download.py --dataset MNIST FASHION_MNIST SVHN CIFAR10
    python download.py --dataset FASHION_MNIST \\
        --source /usr/share/datasets/fashion-mnist --skip_checksum

Each dataset lands in <data_dir>/<name in lower case>/ in the reference
SSGAN-Tensorflow layout (data.hdf5, id.txt) plus the official split
(id_train.txt, id_test.txt), and is converted to the TFRecord files the
trainer reads (tfrecords/). Files are MD5-verified before they are parsed,
and nothing appears at the dataset's folder unless it is complete.
"""

import logging
import sys

from datasets import DATA_DIR, fetch, prepare, registry, store
from flag_table import add_flags
from names import TFRECORD_FILES_PER_SPLIT
from util import command_parser, load_tensorflow, report_user_errors, setup_logging

log = logging.getLogger("download")


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument(
        "--dataset", "--datasets", dest="datasets", nargs="+", required=True,
        metavar="NAME", type=str.upper, choices=list(registry.DATASETS),
        help="one or more of: %s" % ", ".join(registry.DATASETS))
    parser.add_argument(
        "--data_dir", default=DATA_DIR,
        help="parent folder of the dataset folders (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--mirror", metavar="URL",
        help="base URL serving the canonical file names, used instead of the canonical hosts")
    where.add_argument(
        "--source", metavar="DIR",
        help="folder holding local copies of the canonical files; no network is used")
    parser.add_argument(
        "--checksums", metavar="FILE",
        help="expected MD5s of your copies, as `md5sum` prints them or as JSON "
             "{\"file name\": \"md5\"}; they replace the canonical digests")
    parser.add_argument(
        "--skip_checksum", action="store_true",
        help="accept files whose MD5 differs from the expected one (with a warning)")
    parser.add_argument(
        "--force", action="store_true", help="prepare again even if the dataset is there")
    parser.add_argument(
        "--num_tfrecord_files", type=int, default=TFRECORD_FILES_PER_SPLIT,
        help="TFRecord files per split, read in parallel (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=60,
        help="seconds without data before a download is abandoned (default: %(default)s)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    add_flags(parser, ("debug",))  # as the trainer's
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.debug)
    input_ops = load_tensorflow("input_ops", args.debug)
    return report_user_errors(lambda: prepare_datasets(args, input_ops))


def prepare_datasets(args, input_ops):
    """Prepares each dataset the flags name and converts it to TFRecords."""
    checksums = fetch.read_checksums(args.checksums) if args.checksums else None
    for name in args.datasets:
        spec = registry.DATASETS[name]
        path, splits = prepare_with_flags(spec, args, checksums)
        info = store.open_dataset(name, args.data_dir)
        examples = None
        if splits is not None:
            examples = {split: (images, labels) for split, images, labels in splits}
        cache = input_ops.prepare_tfrecords(
            info, num_files=args.num_tfrecord_files, examples=examples,
            force=splits is not None, progress=not args.no_progress)
        log.info("%s ready: %s (%s split: %s)", name, path, info.split_source,
                 ", ".join("%d %s" % (s.num_examples, k) for k, s in cache.splits.items()))


def prepare_with_flags(spec, args, checksums):
    """Downloads (or imports) and writes one dataset with the flags' sources,
    checks and options: datasets.prepare.prepare's (folder, prepared)."""
    return prepare.prepare(spec, args.data_dir, mirror=args.mirror, source=args.source,
                           checksums=checksums, skip_checksum=args.skip_checksum,
                           force=args.force, timeout=args.timeout,
                           progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
