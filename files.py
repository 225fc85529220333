"""File helpers that never leave anything half-written."""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

# atomic_path's temporary names: ".<name>.<random>.tmp", hidden and beside the file
TEMPORARY_START, TEMPORARY_END = ".", ".tmp"


def md5sum(path, chunk_size=1 << 20):
    """Hex MD5 digest of a file's contents."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary name beside `path`; renames it to `path` only if the
    block finishes without an exception, and removes it otherwise."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_START + os.path.basename(path) + ".",
                               suffix=TEMPORARY_END, dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json_atomic(path, value):
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def replace_dir(src, dst):
    """Moves the finished folder `src` to `dst`, replacing what is there.

    The old `dst` is first renamed aside, so at every moment `dst` is either
    the old complete folder or the new complete one, never a mixture.
    """
    old = None
    if os.path.exists(dst):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(dst) + ".old-",
                               dir=os.path.dirname(os.path.abspath(dst)))
        os.rmdir(old)
        os.rename(dst, old)
    os.rename(src, dst)
    if old:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(beside, tag):
    """A fresh hidden folder beside `beside` (same file system, so its content
    can be renamed into place), removed when the block ends."""
    parent = os.path.dirname(os.path.abspath(beside))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    path = tempfile.mkdtemp(prefix=".%s.%s-" % (os.path.basename(beside), tag), dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
