"""The installed CANN's version, read where CANN's installer records it.

CANN's TF adapter tells nothing about itself (its Python package is always
version 1.15.0, TensorFlow's); what it and the graph engine accept follows
the CANN release. The installer writes that release into an .info file as a
`version=6.0.1` line, beside `package_name=`, `arch=` and `path=` lines
(CANN's installation guide, "File Paths":
https://www.hiascend.com/document/detail/en/canncommercial/800/softwareinst/instg/instg_0044.html):

    toolkit  <install>/ascend-toolkit/latest/<arch>-linux/ascend_toolkit_install.info
    NNAE     <install>/nnae/latest/ascend_nnae_install.info

where <install> is /usr/local/Ascend for root and ~/Ascend otherwise (CANN 8.5
and later keep the toolkit's in <install>/cann/<arch>-linux/, same name). The
folders CANN's set_env.sh exports come first, since they name the CANN this
process loads: ASCEND_HOME_PATH and ASCEND_TOOLKIT_HOME (both the latest/
folder) and ASCEND_OPP_PATH (its opp/ subfolder). No TensorFlow here.
"""

import collections
import glob
import os
import re

INFO_FILES = (os.path.join("*-linux", "ascend_toolkit_install.info"), "ascend_nnae_install.info")
INSTALLS = (os.path.join("ascend-toolkit", "latest"), os.path.join("nnae", "latest"), "cann")

CannLookup = collections.namedtuple("CannLookup", "version text info_file searched")
CannLookup.__doc__ = """What lookup found: version, the release's leading numbers as a tuple
((6, 0, 1) for 6.0.1, (6, 3) for 6.3.RC1; compare it with tuples), or None when no
info file could be read; text, the release as the installer wrote it; info_file, the
file it came from; searched, the folders looked in, in order."""
UNKNOWN = CannLookup(None, None, None, ())


def parse_version(text):
    """'6.0.1' -> (6, 0, 1); '6.3.RC1' -> (6, 3); '7.0.0.alpha003' -> (7, 0, 0);
    '8.0.RC2' -> (8, 0); None when the text does not start with a number."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return tuple(int(n) for n in match.group(1).split(".")) if match else None


def install_folders(environ, root="/"):
    """The folders that may hold an .info file, most telling first: those
    set_env.sh exports, then ~/Ascend's and <root>/usr/local/Ascend's."""
    folders = [environ[name] for name in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME")
               if environ.get(name)]
    if environ.get("ASCEND_OPP_PATH"):
        folders.append(os.path.dirname(os.path.normpath(environ["ASCEND_OPP_PATH"])))
    homes = [os.path.join(environ["HOME"], "Ascend")] if environ.get("HOME") else []
    homes.append(os.path.join(root, "usr", "local", "Ascend"))
    folders += [os.path.join(home, install) for home in homes for install in INSTALLS]
    return [f for i, f in enumerate(folders) if f not in folders[:i]]


def _version_line(info_file):
    try:
        with open(info_file) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() == "version":
                    return value.strip()
    except (IOError, OSError, ValueError):  # unreadable, or not text
        pass
    return None


def lookup(environ, root="/"):
    """The CANN installed here, as a CannLookup (version None when no info
    file with a version line was found). environ: the process environment;
    root: the file system root the default install folders are under."""
    searched = tuple(install_folders(environ, root))
    for folder in searched:
        for pattern in INFO_FILES:
            for info_file in sorted(glob.glob(os.path.join(folder, pattern))):
                text = _version_line(info_file)
                if parse_version(text):
                    return CannLookup(parse_version(text), text, info_file, searched)
    return CannLookup(None, None, None, searched)

