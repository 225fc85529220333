"""A stand-in for ModelArts' moxing: obs://bucket/path maps to
$MOXING_STANDIN_ROOT/bucket/path; every call is recorded in CALLS."""

from moxing import file  # noqa: F401

CALLS = file.CALLS
