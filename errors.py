"""The errors a user can fix, with messages that say how. No TensorFlow here:
the command-line entry points and the flag table import it before TensorFlow
loads, so `--help` and a bad flag answer at once."""


class ConfigError(ValueError):
    """A flag value or combination that cannot work; the message says why."""
