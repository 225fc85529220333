"""Fetching dataset files: HTTP(S) with fallback mirrors, or a local folder;
MD5-verified before anything reads them."""

import http.client
import ipaddress
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

from tqdm import tqdm

from datasets.errors import DownloadError
from files import md5sum

log = logging.getLogger(__name__)

_CHUNK = 1 << 16

# For this machine's own hosts: no proxy, which could not reach them anyway.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_loopback(url):
    """True if `url` names this machine: localhost (or *.localhost), 127.0.0.0/8, ::1."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open(request, timeout):
    """urlopen, with the user's proxy settings (HTTP_PROXY, ...) as urllib
    applies them by default, except for loopback hosts, fetched directly."""
    if is_loopback(request.full_url):
        return _DIRECT.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def _download(url, dest, timeout, progress):
    """Streams `url` into `dest`; raises IOError if the body is cut short."""
    request = urllib.request.Request(url, headers={"User-Agent": "ssgan-download/1.0"})
    with _open(request, timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=os.path.basename(dest), disable=None if progress else True,
                   leave=False)
        with bar, open(dest, "wb") as out:
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise IOError("connection closed after %d of %d bytes" % (received, total))


def _checksum_ok(path, name, expected_md5, skip_checksum, where):
    """True if the file matches; logs a warning and returns True on a mismatch
    under --skip_checksum; False on a mismatch otherwise."""
    if not expected_md5:
        return True
    actual = md5sum(path)
    if actual == expected_md5:
        return True
    if skip_checksum:
        log.warning("%s from %s has MD5 %s, expected %s; using it anyway (--skip_checksum)",
                    name, where, actual, expected_md5)
        return True
    return False


def fetch(urls, dest, expected_md5, skip_checksum=False, timeout=60, progress=True):
    """Downloads a file, trying each URL in turn until one gives a file whose
    MD5 matches.

    Args:
      urls: candidate URLs, best first.
      dest: where the verified file goes; written under a temporary name and
        renamed only when complete and verified.
      expected_md5: hex digest, or None to skip verification.
      skip_checksum: accept a mismatching file (with a warning).
    Returns:
      The URL the file came from.
    Raises:
      DownloadError: listing every URL tried and why it failed.
    """
    name = os.path.basename(dest)
    failures = []
    for url in urls:
        log.info("Downloading %s", url)
        tmp = dest + ".part"
        try:
            try:
                _download(url, tmp, timeout, progress)
            except (urllib.error.URLError, http.client.HTTPException, socket.timeout,
                    IOError, ValueError) as e:
                failures.append("%s: %s" % (url, e))
                continue
            if _checksum_ok(tmp, name, expected_md5, skip_checksum, url):
                os.replace(tmp, dest)
                return url
            failures.append("%s: MD5 %s does not match the expected %s"
                            % (url, md5sum(tmp), expected_md5))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadError(
        "could not download %s:\n  %s\nCheck the network, pass --mirror URL for a host "
        "that serves the same file names, or put the files in a folder and pass --source "
        "DIR; --skip_checksum accepts files that differ from the canonical ones."
        % (name, "\n  ".join(failures)))


def verify_local(path, expected_md5, skip_checksum=False, from_checksums=False):
    """Checks a local copy given with --source; raises DownloadError if it is
    missing or does not match (from_checksums: the digest is the user's
    --checksums file's, not the canonical one)."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise DownloadError("%s not found: --source must be a folder holding the canonical "
                            "file %s" % (path, name))
    if not _checksum_ok(path, name, expected_md5, skip_checksum, path):
        if from_checksums:
            raise DownloadError("%s has MD5 %s but the --checksums file gives %s for %s. Use "
                                "the file those digests are of, correct the --checksums file, "
                                "or pass --skip_checksum to accept it."
                                % (path, md5sum(path), expected_md5, name))
        raise DownloadError("%s has MD5 %s but the canonical %s has %s. Use the original "
                            "file, pass --checksums FILE with the digests of your copies, or "
                            "--skip_checksum to accept it." % (path, md5sum(path), name,
                                                               expected_md5))


def read_checksums(path):
    """Reads expected digests from `md5sum` output ("<md5>  <path>" lines) or
    JSON ({"file name": "md5"}); keys are base names."""
    import json
    with open(path) as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        try:
            table = json.loads(text)
        except ValueError as e:
            raise DownloadError("%s: not valid JSON (%s)" % (path, e))
        return {os.path.basename(k): str(v).lower() for k, v in table.items()}
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r"^([0-9a-fA-F]{32})\s+\*?(.+)$", line.strip())
        if not match:
            raise DownloadError("%s line %d: expected '<md5>  <file>' as md5sum prints it, "
                                "got %r" % (path, number, line))
        table[os.path.basename(match.group(2).strip())] = match.group(1).lower()
    return table
