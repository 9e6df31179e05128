"""Retry delays shared by the Slack and SMTP senders.

See "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015).
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay", "equal_jitter_delay"]


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Return a full-jitter delay in seconds for retry *attempt* (1-based).

    U(0, min(*max_delay*, *base_delay* · 2^(attempt-1))): spreads retries of many
    clients; a single one may retry almost at once.
    """
    return random.uniform(0.0, min(max_delay, base_delay * 2 ** (max(attempt, 1) - 1)))


def equal_jitter_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Return an equal-jitter delay in seconds for retry *attempt* (1-based).

    Half the capped exponential delay plus U(0, the other half): never shorter than
    half of it, so a failing remote side always gets a real pause.
    """
    ceiling = min(max_delay, base_delay * 2 ** (min(max(attempt, 1), 32) - 1))
    return ceiling / 2 + random.uniform(0.0, ceiling / 2)
