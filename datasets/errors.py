"""Errors the data layer raises. Their messages name the file, what is wrong,
and what to do; the command-line tools print them without a traceback."""


class DatasetError(Exception):
    """A dataset is missing, incomplete or malformed."""


class DataFormatError(DatasetError):
    """A file does not hold what its format promises."""


class DownloadError(DatasetError):
    """A file could not be fetched or did not match its checksum."""
