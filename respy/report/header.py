"""The line a run prints before it starts (``☎️   1000 requests to URL...``), apart from the rest of the
printing: a plain run prints it before its first request, and loading the table's and JSON's machinery
(``render``) then would only delay that request."""

from __future__ import annotations

import sys
from typing import TextIO

PHONE = "☎️"


def can_encode(text: str, stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None)
    if encoding is None:  # an in-memory text stream holds any character
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def header_line(
    url: str, planned: int | None, duration: float | None, stream: TextIO = sys.stdout, *, sequential: bool = False
) -> str:
    """The original respy's signature line: ``☎️   1000 requests to URL...``."""
    icon = PHONE if can_encode(PHONE, stream) else "=>"
    if sequential:
        what = f"up to {planned:,} requests (until the verdict is clear)"
    elif planned is None and duration:
        what = f"requests for {duration:g} s"
    elif duration:
        what = f"up to {planned:,} requests for {duration:g} s"
    else:
        what = f"{planned:,} requests"
    return f"{icon}   {what} to {url}..."
