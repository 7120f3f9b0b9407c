"""respy: measure how traffic to a service is really split between its versions, and check it.

    >>> import respy
    >>> m = respy.measure("http://weather-backend:5000/version", requests=2000)      # doctest: +SKIP
    >>> print(m.check(respy.Expectation.from_weights({"single": 90, "multiple": 10})))  # doctest: +SKIP
    >>> respy.assert_split("http://weather-backend:5000/version", {"single": 90, "multiple": 10})  # doctest: +SKIP

The public names below are imported on first use (module ``__getattr__``), so ``import respy`` and
``respy --version`` stay fast: numpy, scipy, yaml and httpx load only when a measurement or a check needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from respy._errors import (
    ClusterError,
    MappingError,
    NoAnswerError,
    NotRoutedError,
    RespyError,
    RulesError,
    UsageError,
)

if TYPE_CHECKING:
    from respy._api import Measurement, assert_split, assert_split_async, measure, measure_async
    from respy.check.verdict import Verdict
    from respy.rules.expectation import Expectation, Outcome
    from respy.sandbox.mesh import sandbox

__version__ = "0.1.0"

_LAZY = {
    "measure": "respy._api",
    "measure_async": "respy._api",
    "assert_split": "respy._api",
    "assert_split_async": "respy._api",
    "Expectation": "respy.rules.expectation",
    "Outcome": "respy.rules.expectation",
    "Measurement": "respy._api",
    "Verdict": "respy.check.verdict",
    "sandbox": "respy.sandbox",
}

__all__ = [
    "ClusterError",
    "Expectation",
    "MappingError",
    "Measurement",
    "NoAnswerError",
    "NotRoutedError",
    "Outcome",
    "RespyError",
    "RulesError",
    "UsageError",
    "Verdict",
    "__version__",
    "assert_split",
    "assert_split_async",
    "measure",
    "measure_async",
    "sandbox",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'respy' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module_name), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
