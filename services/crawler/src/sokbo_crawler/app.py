"""The crawler service: polls due sources and publishes article pages to ``sokbo.pages``."""

from __future__ import annotations

import asyncio

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo_crawler.fetch import Fetcher, user_agent
from sokbo_crawler.hosts import HostGate
from sokbo_crawler.poller import Poller
from sokbo_crawler.robots import RobotsCache, http_fetch
from sokbo_crawler.schedule import Scheduler


def register(ctx: ServiceContext) -> None:
    """Add the crawler's polling workers to *ctx*.

    Sources come from the config; a reloaded config (file change or SIGHUP) updates
    them without a restart.  The schedule, the per-host politeness (one request at a
    time, ``per_host_delay`` apart, robots.txt ``Crawl-delay`` and ``Retry-After``
    pauses) and the robots.txt cache are shared through Redis with the other crawler
    replicas.
    """
    settings = ctx.settings.crawler
    state: dict[str, Poller | Scheduler] = {}
    updates: set[asyncio.Task[None]] = set()  # strong references until done

    def reload(new: Settings) -> None:
        poller, scheduler = state.get("poller"), state.get("scheduler")
        if isinstance(poller, Poller) and isinstance(scheduler, Scheduler):
            task = asyncio.get_running_loop().create_task(poller.update(new.sources, scheduler))
            updates.add(task)
            task.add_done_callback(updates.discard)

    ctx.on_reload(reload)

    async def run() -> None:
        async with Fetcher.client(settings.timeout, settings.user_agent,
                                  allow_private_networks=settings.allow_private_networks
                                  ) as client:
            gate = HostGate(ctx.redis, settings.per_host_delay)
            robots = RobotsCache(ctx.redis, http_fetch(client),
                                 settings.user_agent or user_agent(),
                                 on_fetched=gate.set_crawl_delay)
            fetcher = Fetcher(client, max_body_bytes=settings.max_body_bytes,
                              deadline=2 * settings.timeout, gate=gate)
            poller = Poller(ctx.redis, fetcher,
                            lambda page: ctx.publish(page, streams.PAGES),
                            ctx.dead_letter, settings,
                            max_attempts=ctx.settings.delivery.max_deliveries,
                            robots=robots, throttles=gate,
                            claim_ttl=max(ctx.settings.delivery.claim_idle,
                                          2 * settings.timeout + 5))
            scheduler = Scheduler(ctx.redis, lease=max(ctx.settings.delivery.claim_idle, 3.0))
            state.update(poller=poller, scheduler=scheduler)
            await poller.run(ctx.settings.sources, scheduler)

    ctx.background.append(run)
