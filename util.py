"""Logging set-up shared by the command-line entry points."""

import logging
import sys


def setup_logging(debug=False):
    """Coloured `[time] LEVEL message` lines on stderr (plain when colorlog is
    missing or stderr is not a terminal). Called from main(), never at import."""
    level = logging.DEBUG if debug else logging.INFO
    fmt = "[%(asctime)s] %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    try:
        import colorlog
        if sys.stderr.isatty():
            handler.setFormatter(colorlog.ColoredFormatter("%(log_color)s" + fmt))
        else:
            handler.setFormatter(logging.Formatter(fmt))
    except ImportError:
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
