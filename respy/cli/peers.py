"""Flags hey and oha users type by habit, and what respy makes of them.

``-m`` (hey's and oha's method), ``--disable-keepalive`` (oha's; hey's is ``-disable-keepalive``) and
``--host`` (hey's ``-host``, oha's ``--host``: the Host header) are accepted as they are. ``-q`` is a rate
in both, but not the same one: hey's is per worker (``-q 50 -c 10`` sends up to 500 requests/s), oha's is
the total. respy's ``-q`` is ``--quiet``; a number after it is neither's meaning for sure, so it is refused
with the conversion to respy's ``--rate`` (the total) spelled out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from respy._errors import UsageError


def refuse_rate_q(argv: Sequence[str]) -> None:
    """A usage error for ``-q NUMBER`` (hey's or oha's rate), naming ``--rate``."""
    pairs = [(flag, value) for flag, value in pairwise(argv) if flag == "-q"]
    pairs += [("-q", flag[2:]) for flag in argv if flag.startswith("-q") and len(flag) > 2]  # -q50
    for _, value in pairs:
        if _is_number(value):
            raise UsageError(
                f"-q {value} is a rate in hey (per worker: {value} × -c in total) and in oha (in total); respy's -q "
                f"is --quiet. Say the total rate with --rate: hey's -q {value} -c C is --rate {value}×C, oha's "
                f"-q {value} is --rate {value}"
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
