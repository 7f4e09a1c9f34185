"""The argo-engine exception tree.

Every error the engine raises on purpose belongs to this tree, and the class decides what
happens next (retry, stop, skip), never the message text::

    ArgoError(Exception)
    ├── ConfigurationError(ArgoError, ValueError)  bad settings or parameters; never retried
    ├── TransientError(ArgoError)                   retry with backoff (network, 5xx, rate limit)
    │   └── ProviderUnavailable                     a feed or broker is unreachable for now
    ├── TerminalError(ArgoError)                    stop and tell a human
    │   ├── AuthenticationError                     credentials refused by a venue
    │   ├── PersistenceError                        output path unusable (disk full, permissions)
    │   └── RecoveryError                           stored state cannot be reconciled
    ├── StrategyError(ArgoError)                    user strategy code raised; bar skipped
    └── DataError(ArgoError, ValueError)            bad market data; bar rejected and logged
"""

from __future__ import annotations

from typing import Any


class ArgoError(Exception):
    """Root of all argo-engine errors.

    Args:
        message: Human-readable description naming the problem.
        **attrs: Structured context (field names, paths, symbols) kept for reports.
    """

    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.attrs: dict[str, Any] = attrs

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable across process and Prefect boundaries, attrs included.
        return (_rebuild_error, (type(self), self.message, self.attrs))


def _rebuild_error(cls: type[ArgoError], message: str, attrs: dict[str, Any]) -> ArgoError:
    return cls(message, **attrs)


class ConfigurationError(ArgoError, ValueError):
    """Invalid settings or parameters. The message names the offending field."""


class TransientError(ArgoError):
    """A failure that is expected to pass; the operation may be retried with backoff."""


class ProviderUnavailable(TransientError):
    """A market-data feed or broker could not be reached or answered with a 5xx/429."""


class TerminalError(ArgoError):
    """A failure a retry cannot fix; the session stops and a human must look."""


class AuthenticationError(TerminalError):
    """A venue refused our credentials or signature."""


class PersistenceError(TerminalError):
    """The output path cannot be written (disk full, permissions, unusable files)."""


class RecoveryError(TerminalError):
    """Stored state of a run cannot be reconciled with itself or with the broker."""


class StrategyError(ArgoError):
    """User strategy code raised or returned something invalid; the bar is skipped."""


class DataError(ArgoError, ValueError):
    """Market data is invalid (NaN, negative prices, high < low, out of order)."""
