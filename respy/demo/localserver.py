"""Moved to ``respy.sandbox.localserver``: the sandbox's backends run on it, and the demo sits above the sandbox.

Kept so that ``from respy.demo.localserver import LocalServer`` (the tests, users' scripts) keeps working.
"""

from respy.sandbox.localserver import (
    MAX_HEAD,
    REASONS,
    Handler,
    LocalServer,
    Request,
    Response,
    Stats,
    encode_response,
    fixed,
    read_request,
    wants_close,
)

__all__ = [
    "MAX_HEAD",
    "REASONS",
    "Handler",
    "LocalServer",
    "Request",
    "Response",
    "Stats",
    "encode_response",
    "fixed",
    "read_request",
    "wants_close",
]
