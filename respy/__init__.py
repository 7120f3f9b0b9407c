"""respy: measure how traffic to a service is really split between its versions, and check it."""

from __future__ import annotations

__version__ = "0.1.0"
