"""The crawler service: polls due sources and publishes article pages to ``sokbo.pages``."""

from __future__ import annotations

import asyncio

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo_crawler.fetch import Fetcher
from sokbo_crawler.poller import Poller
from sokbo_crawler.schedule import Scheduler


def register(ctx: ServiceContext) -> None:
    """Add the crawler's polling workers to *ctx*.

    Sources come from the config; a reloaded config (file change or SIGHUP) updates
    them without a restart.  The schedule is shared through Redis with the other
    crawler replicas.
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
            fetcher = Fetcher(client, max_body_bytes=settings.max_body_bytes,
                              per_host_delay=settings.per_host_delay,
                              deadline=2 * settings.timeout)
            poller = Poller(ctx.redis, fetcher,
                            lambda page: ctx.publish(page, streams.PAGES),
                            ctx.dead_letter, settings,
                            max_attempts=ctx.settings.delivery.max_deliveries)
            scheduler = Scheduler(ctx.redis)
            state.update(poller=poller, scheduler=scheduler)
            await poller.run(ctx.settings.sources, scheduler)

    ctx.background.append(run)
