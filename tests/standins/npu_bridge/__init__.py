"""A stand-in for CANN's TF adapter, for tests on machines without an NPU.

It offers the documented names and records how they were used: CALLS lists
graph-building calls, EXECUTED counts broadcast ops run in a session. The
"collective" ops act as on a single card (broadcast returns its input)."""

CALLS = []
EXECUTED = {"broadcast": 0}
