"""respy's pytest plugin (entry point ``pytest11: respy``): the ``respy`` fixture and ``--respy-*`` options.

    def test_split(respy):
        respy.assert_split("/version", {"single": 90, "multiple": 10}, headers={"Host": "weather-backend"})

    pytest --respy-url http://127.0.0.1:8080 --respy-requests 2000

pytest loads this module in every session of an environment where respy is installed, so it imports
nothing heavy: the measuring machinery is imported when a test first uses the fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from respy._errors import UsageError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from respy._api import Measurement
    from respy._options import MeasureKwargs
    from respy.check.verdict import Verdict
    from respy.rules.expectation import Expectation
    from respy.sandbox.mesh import Sandbox

DEFAULT_REQUESTS = 1000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("respy", "respy: traffic split checks")
    group.addoption(
        "--respy-url",
        dest="respy_url",
        default=None,
        metavar="URL",
        help="base URL for the respy fixture: relative paths given to respy.measure / respy.assert_split "
        "are joined onto it (e.g. http://127.0.0.1:8080)",
    )
    group.addoption(
        "--respy-requests",
        dest="respy_requests",
        type=int,
        default=None,
        metavar="N",
        help=f"requests per measurement when a test does not say (default {DEFAULT_REQUESTS})",
    )


class RespyFixture:
    """What the ``respy`` fixture offers: ``measure``, ``measure_async``, ``assert_split``, ``expectation``."""

    def __init__(self, base_url: str | None, requests: int) -> None:
        self.base_url = base_url
        self.requests = requests

    def url(self, path: str = "") -> str:
        """``path`` joined onto ``--respy-url`` (an absolute ``http(s)://`` URL is used as given); without
        ``--respy-url`` a relative path skips the test, with the reason in one line."""
        if path.lower().startswith(("http://", "https://")):
            return path
        if not self.base_url:
            pytest.skip(f"respy: {path!r} needs a base URL: run pytest --respy-url http://HOST:PORT")
        if not path:
            return self.base_url
        separator = "" if path.startswith(("?", "#")) else "/"
        return self.base_url.rstrip("/") + separator + path.lstrip("/")

    def measure(self, path: str = "", **options: Unpack[MeasureKwargs]) -> Measurement:
        """``respy.measure`` on ``self.url(path)``; ``requests`` defaults to ``--respy-requests``."""
        from respy._api import measure  # httpx, numpy and scipy load with it: on first use, not with pytest

        options.setdefault("requests", self.requests)
        return measure(self.url(path), **options)

    async def measure_async(self, path: str = "", **options: Unpack[MeasureKwargs]) -> Measurement:
        from respy._api import measure_async  # httpx, numpy and scipy load with it: on first use, not with pytest

        options.setdefault("requests", self.requests)
        return await measure_async(self.url(path), **options)

    def assert_split(
        self, path: str, expectation: Expectation | Mapping[str, float], **options: Unpack[MeasureKwargs]
    ) -> Verdict:
        """``respy.assert_split`` on ``self.url(path)``: the test fails with the table and verdict line."""
        __tracebackhide__ = True
        from respy._api import assert_split  # httpx, numpy and scipy load with it: on first use, not with pytest

        options.setdefault("requests", self.requests)
        return assert_split(self.url(path), expectation, **options)

    async def assert_split_async(
        self, path: str, expectation: Expectation | Mapping[str, float], **options: Unpack[MeasureKwargs]
    ) -> Verdict:
        __tracebackhide__ = True
        from respy._api import assert_split_async  # httpx, numpy and scipy load with it: on first use, not with pytest

        options.setdefault("requests", self.requests)
        return await assert_split_async(self.url(path), expectation, **options)

    def expectation(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        url: str = "",
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        namespace: str = "default",
        gateway: str | None = None,
    ) -> Expectation:
        """From plain ``weights``, or from routing YAML ``files`` resolved for a request to ``url``
        (relative to ``--respy-url``, like ``measure``)."""
        from respy.rules.expectation import Expectation  # yaml loads with respy.rules: on first use, not with pytest

        if (weights is None) == (files is None):
            raise UsageError("respy.expectation needs either weights=... or files=... (not both)")
        if weights is not None:
            return Expectation.from_weights(weights)
        assert files is not None
        paths = [files] if isinstance(files, str | os.PathLike) else list(files)
        return Expectation.from_files(*paths, url=self.url(url), headers=headers, method=method,
                                      namespace=namespace, gateway=gateway)


@pytest.fixture
def respy_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox (a real Envoy programmed from routing YAML): ``mesh = respy_sandbox("rules/")``.

    Takes what ``respy.sandbox`` takes; every sandbox started in the test is stopped when the test ends.
    """
    from respy.sandbox.mesh import sandbox

    started: list[Sandbox] = []

    def start(*rules: str | os.PathLike[str], **options: Any) -> Sandbox:
        mesh = sandbox(*rules, **options).start()
        started.append(mesh)
        return mesh

    try:
        yield start
    finally:
        for mesh in reversed(started):
            mesh.stop()


@pytest.fixture
def respy(request: pytest.FixtureRequest) -> RespyFixture:
    """Measure and check traffic splits: ``respy.assert_split("/version", {"v1": 90, "v2": 10})``."""
    config = request.config
    requests = config.getoption("respy_requests") or DEFAULT_REQUESTS
    return RespyFixture(base_url=config.getoption("respy_url"), requests=requests)
