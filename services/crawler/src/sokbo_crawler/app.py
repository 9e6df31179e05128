"""The crawler service: polls every enabled source and publishes pages to ``sokbo.pages``."""

from __future__ import annotations

import asyncio

from sokbo import streams
from sokbo.context import ServiceContext
from sokbo_crawler.fetch import Fetcher
from sokbo_crawler.poller import Poller


def register(ctx: ServiceContext) -> None:
    """Add the crawler's polling loops to *ctx* (one task per enabled source)."""
    settings = ctx.settings.crawler

    async def run() -> None:
        async with Fetcher.client(settings.timeout, settings.user_agent,
                                  allow_private_networks=settings.allow_private_networks
                                  ) as client:
            fetcher = Fetcher(client, max_body_bytes=settings.max_body_bytes,
                              per_host_delay=settings.per_host_delay,
                              deadline=2 * settings.timeout)
            poller = Poller(ctx.redis, fetcher,
                            lambda page: ctx.publish(page, streams.PAGES),
                            ctx.dead_letter, settings,
                            max_attempts=ctx.settings.delivery.max_deliveries)
            sources = [s for s in ctx.settings.sources if s.enabled]
            await asyncio.gather(*(poller.run_forever(s) for s in sources))

    ctx.background.append(run)
