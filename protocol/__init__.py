"""Switchboard's wire protocol, version 1: typed frames, codecs, error and close codes.

Pure data and codecs, no I/O: the server, the clients and the conformance suite all import it.
"""

VERSION = "v1"
