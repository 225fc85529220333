"""Getting a built-in dataset onto disk: fetch or import, verify, parse,
write the reference layout, and only then move it into place."""

import logging
import os
import time

from tqdm import tqdm

from datasets import fetch, store
from datasets.errors import DataFormatError
from datasets.registry import local_paths
from files import replace_dir, staging_dir

log = logging.getLogger(__name__)


def prepare(spec, data_dir, mirror=None, source=None, checksums=None, skip_checksum=False,
            force=False, timeout=60, progress=True):
    """Downloads (or imports) and writes one dataset.

    Args:
      spec: registry.DatasetSpec.
      data_dir: parent folder; the dataset goes to `<data_dir>/<spec.folder>`.
      mirror: base URL replacing the canonical hosts (same file names).
      source: folder holding local copies of the canonical files (no network).
      checksums: {file name: md5} overriding the canonical digests.
      skip_checksum: accept files whose MD5 differs, with a warning.
      force: redo even if the dataset is already prepared.
    Returns:
      (folder, prepared): `prepared` is None when the dataset was already
      there, else the list of (split, images, labels) just written.
    Raises:
      DatasetError (DownloadError, DataFormatError) with a message for the user;
      nothing is left at the dataset's folder unless it is complete.
    """
    target = os.path.join(data_dir, spec.folder)
    if store.is_prepared(target) and not force:
        log.info("%s is already prepared in %s; skipping (--force redoes it)", spec.name, target)
        return target, None
    digests = {f.name: f.md5 for f in spec.files}
    digests.update({k: v for k, v in (checksums or {}).items() if k in digests})
    start = time.time()
    with staging_dir(target, "staging") as staging:
        if source:
            paths = _verified_local_files(spec, source, digests, checksums, skip_checksum)
        else:
            paths = _downloaded_files(spec, os.path.join(staging, "downloads"), mirror, digests,
                                      skip_checksum, timeout, progress)
        splits = _parse(spec, paths, os.path.join(staging, "downloads"), source, mirror)
        out = os.path.join(staging, "dataset")
        _write(spec, splits, out, progress)
        replace_dir(out, target)
    log.info("%s: %s in %s (%s) in %.1f s", spec.name,
             ", ".join("%d %s" % (len(images), split) for split, images, _ in splits),
             target, store.DATA_FILE, time.time() - start)
    return target, splits


def _verified_local_files(spec, source, digests, checksums, skip_checksum):
    """{file name: path} of the canonical files in folder `source`, each
    checked against its digest."""
    paths = local_paths(spec, source)
    for name, path in paths.items():
        fetch.verify_local(path, digests[name], skip_checksum,
                           from_checksums=name in (checksums or {}))
    log.info("%s: using local files in %s", spec.name, source)
    return paths


def _downloaded_files(spec, downloads, mirror, digests, skip_checksum, timeout, progress):
    """{file name: path} of the canonical files downloaded into the new
    folder `downloads` (from `mirror` if given), each checked against its
    digest."""
    paths = local_paths(spec, downloads)
    os.makedirs(downloads)
    for name, path in paths.items():
        fetch.fetch(spec.urls(name, mirror), path, digests[name], skip_checksum,
                    timeout=timeout, progress=progress)
    return paths


def _parse(spec, paths, downloads, source, mirror):
    """The files' [(split, images, labels)], checked against spec.image_shape.
    A format error in a downloaded file names it as the user knows it (by
    its host, not by its path in the folder `downloads`)."""
    try:
        splits = spec.parse(paths)
    except DataFormatError as e:
        if source:
            raise
        raise DataFormatError("%s (downloaded from %s)" % (
            str(e).replace(downloads + os.sep, ""), mirror or " or ".join(spec.base_urls)))
    for split, images, labels in splits:
        if images.shape[1:] != spec.image_shape:
            raise DataFormatError(
                "the %s files hold %s images of %s, but %s images are %s; are they the "
                "right files?" % (spec.name, split, "x".join(map(str, images.shape[1:])),
                                  spec.name, "x".join(map(str, spec.image_shape))))
    return splits


def _write(spec, splits, out, progress):
    """Writes the splits in the reference layout into the new folder `out`."""
    os.makedirs(out)
    total = sum(len(images) for _, images, _ in splits)
    with tqdm(total=total, desc="writing %s" % store.DATA_FILE, unit="img",
              disable=None if progress else True, leave=False) as bar:
        store.write_dataset(out, splits, spec.num_classes, progress=bar.update)
