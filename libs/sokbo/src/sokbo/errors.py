"""The one exception hierarchy of sokbo.

Handlers decide what to do with a failure by its class alone:

* :class:`RetryableError` — leave the stream entry pending; this replica or the
  claimer retries it later (network down, HTTP 5xx, Slack 429, SMTP unavailable).
* :class:`PermanentError` — retrying cannot help (bad page, 404 webhook): the entry
  is dead-lettered, acked and logged once.
* :class:`ConfigError` — the operator's configuration is wrong; raised at start-up
  and by ``sokbo check-config``, never while running.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PermanentError",
    "QuerySyntaxError",
    "RetryableError",
    "SokboError",
    "StartupError",
]


class SokboError(Exception):
    """Base class of every error sokbo raises on purpose."""


class ConfigError(SokboError):
    """The configuration file, an environment variable or a flag is invalid."""


class StartupError(SokboError):
    """Something a service needs at start-up is unavailable (Redis, its metrics port)."""


class QuerySyntaxError(SokboError, ValueError):
    """A rule query cannot be parsed.

    Attributes:
        query: the query as written.
        column: 1-based column (in code points) where the problem was found.
        reason: what was expected there, e.g. ``"expected ')'"``.
    """

    def __init__(self, query: str, column: int, reason: str) -> None:
        self.query = query
        self.column = column
        self.reason = reason
        super().__init__(f"column {column}: {reason} in query {query!r}")


class RetryableError(SokboError):
    """A transient failure: try the same work again later.

    Attributes:
        retry_after: seconds the remote side asked us to wait, if it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(SokboError):
    """A failure that retrying cannot fix: dead-letter the work and move on."""
