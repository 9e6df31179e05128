"""Shared fixtures: a real Redis for integration and end-to-end tests.

``make test`` sets SOKBO_TEST_REDIS_URL to database 13 of the Redis it found or
started; tests empty that database before each use.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL (database 13 by default), emptied first."""
    url = os.environ.get("SOKBO_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis at {url} ({exc}); run the tests with `make test`, which "
                    "finds or starts one, or set SOKBO_TEST_REDIS_URL")
    finally:
        client.close()
    return url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client on the emptied test database."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()
