"""ModelArts: the platform passes --data_url and --train_url, either obs://
object-store URLs (copied with `moxing`, imported only then) or local
mounts, used as they are."""

import logging
import os

log = logging.getLogger(__name__)


def is_obs(url):
    return bool(url) and url.startswith("obs://")


def _moxing():
    import moxing
    return moxing


def fetch_data(data_url, cache_dir):
    """The local folder holding the dataset folders: data_url itself, or a copy
    of an obs:// URL under cache_dir."""
    if not is_obs(data_url):
        return data_url
    local = os.path.join(cache_dir, "data")
    log.info("Copying %s to %s", data_url, local)
    _moxing().file.copy_parallel(data_url, local)
    return local


def upload(run_dir, train_url):
    """Copies the run folder to train_url/<run folder name> when train_url is
    an obs:// URL (a local train_url already holds the run folder)."""
    if not is_obs(train_url):
        return None
    target = train_url.rstrip("/") + "/" + os.path.basename(os.path.normpath(run_dir))
    _moxing().file.copy_parallel(run_dir, target)
    log.info("Copied %s to %s", run_dir, target)
    return target
