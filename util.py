"""Logging for the command-line entry points: `[time] message` lines, coloured
on a terminal, plain in files and pipes, and never broken by a progress bar."""

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile

from tqdm import tqdm

from datasets.errors import DatasetError
from errors import ConfigError

FORMAT = "[%(asctime)s] %(message)s"
FORMAT_NOT_INFO = "[%(asctime)s] %(levelname)s %(message)s"


class _Formatter(logging.Formatter):
    """`[time] message` for INFO (the model card's log lines), with the level
    named for everything else."""

    def __init__(self, color=False):
        logging.Formatter.__init__(self, FORMAT)
        self._plain = {logging.INFO: logging.Formatter(FORMAT)}
        self._other = logging.Formatter(FORMAT_NOT_INFO)
        self._color = None
        if color:
            try:
                import colorlog
                self._color = {logging.INFO: colorlog.ColoredFormatter("%(log_color)s" + FORMAT),
                               None: colorlog.ColoredFormatter("%(log_color)s" + FORMAT_NOT_INFO)}
            except ImportError:
                self._color = None

    def format(self, record):
        if self._color is not None:
            return self._color.get(record.levelno, self._color[None]).format(record)
        return self._plain.get(record.levelno, self._other).format(record)


class _TqdmStreamHandler(logging.StreamHandler):
    """Writes through tqdm.write, so a progress bar on the terminal is redrawn
    below each line instead of being broken by it."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logging(debug=False):
    """Logs to stderr; called from main(), never at import."""
    stream = sys.stderr
    handler = _TqdmStreamHandler(stream)
    handler.setFormatter(_Formatter(color=stream.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def add_log_file(path):
    """Also writes every log line, plain, to `path` (appending)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(_Formatter(color=False))
    logging.getLogger().addHandler(handler)
    return handler


def progress_bar(total, initial=0, desc=None, unit="step"):
    """A tqdm bar with ETA on a terminal; silent otherwise."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None,
                dynamic_ncols=True, leave=False, file=sys.stderr)


# What TensorFlow's libraries print to stderr while they load, whatever
# TF_CPP_MIN_LOG_LEVEL says: absl's notice that it logs before being set up,
# then its INFO lines (oneDNN's notice, the CPU-feature guard) and the guard's
# second line.
START_UP_NOISE = re.compile(r"(WARNING: All log messages before absl::InitializeLog\(\) is called"
                            r"|I\d{4} |To enable the following instructions: )")


@contextlib.contextmanager
def _tensorflow_start_up(quiet):
    """With `quiet`, holds what is written to file descriptor 2 (TensorFlow's
    C++ start-up lines go there directly) and passes on all but START_UP_NOISE
    when the block ends, so an error while loading is still seen."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                held.seek(0)
                for line in held.read().decode("utf-8", "replace").splitlines(True):
                    if not START_UP_NOISE.match(line):
                        sys.stderr.write(line)
                sys.stderr.flush()
    finally:
        os.close(saved)


def load_tensorflow(module_name, debug=False, environ=os.environ):
    """Imports a command's `module_name`, which loads TensorFlow (after the
    flags are parsed: --help and a mistyped flag must not wait for it), and
    returns it. TensorFlow's own log lines are hidden unless debugging or the
    user set TF_CPP_MIN_LOG_LEVEL to 0: its C++ lines below ERROR (the level
    defaults to 2 here), its start-up lines, its Python deprecation notices."""
    quiet = not debug and environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
    if quiet:
        environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _tensorflow_start_up(quiet):
        import tensorflow.compat.v1 as tf
        if quiet:
            tf.logging.set_verbosity(tf.logging.ERROR)
        return importlib.import_module(module_name)


def run_tf_command(body):
    """The common frame of the TensorFlow commands (trainer, evaler, export),
    after load_tensorflow: graph mode as on TF 1.15, and a user mistake
    reported as report_user_errors does."""
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    return report_user_errors(body)


def report_user_errors(body):
    """Runs `body()`, which returns the exit status, or a result that is not
    an int, which means success. A user mistake (ConfigError, DatasetError)
    is reported as one line with exit status 2 instead of a traceback: every
    command's status for a bad flag or dataset, as argparse's for a usage
    error."""
    try:
        status = body()
    except (ConfigError, DatasetError) as e:
        logging.getLogger().error("%s", e)
        return 2
    return status if isinstance(status, int) else 0


def command_parser(doc):
    """An ArgumentParser whose description is the first paragraph of a
    command's module docstring and whose epilog is the rest, kept as written."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   epilog=doc.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
