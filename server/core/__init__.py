"""The routing brain: deterministic lifecycle and routing over records, with no I/O and no clock.

Every entry point takes a `Tx` (a snapshot to read, a place to write, and "now") and either records
its changes in it or raises `Refused`, in which case the caller discards the transaction whole.
"""
