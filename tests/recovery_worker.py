"""A sokbo process whose one service is slow, for the graceful-shutdown tests.

    python -m tests.recovery_worker REDIS_URL INSTANCE HOLD_SECONDS JOURNAL [stubborn]

It runs :func:`sokbo.runtime.run` (uvicorn, signals, FastStream) with a ``parser``
service that consumes ``sokbo.pages`` and, per page, writes ``start URL`` to
*JOURNAL*, sleeps *HOLD_SECONDS* and writes ``done URL``.  With ``stubborn``, the
service also runs a background task that ignores cancellation, as one does whose
library turns a cancelled call into another error and carries on.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sokbo import runtime, streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.logs import configure_logging
from sokbo.messages import PageFetched


class EntryPoint:
    """Stands in for an installed ``sokbo.services`` entry point."""

    def __init__(self, register) -> None:
        self._register = register

    def load(self):
        return self._register


async def stubborn() -> None:
    """Loop for ever, swallowing every cancellation."""
    while True:
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            continue


def slow_parser(journal: Path, hold: float, *, with_stubborn_task: bool = False):
    """Return a ``register`` that subscribes a handler taking *hold* seconds per page."""

    async def handle(page: PageFetched) -> None:
        with journal.open("a") as out:
            out.write(f"start {page.url}\n")
        await asyncio.sleep(hold)
        with journal.open("a") as out:
            out.write(f"done {page.url}\n")

    def register(ctx: ServiceContext) -> None:
        ctx.subscribe(streams.PAGES, PageFetched, handle, service="parser")
        if with_stubborn_task:
            ctx.background.append(stubborn)

    return register


def main() -> int:
    redis_url, instance, hold, journal = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
        Path(sys.argv[4])
    register = slow_parser(journal, hold, with_stubborn_task=sys.argv[5:] == ["stubborn"])
    runtime.available_services = lambda: {"parser": EntryPoint(register)}
    settings = Settings(redis_url=redis_url, metrics_port=0,
                        delivery={"claim_idle": 30, "shutdown_grace": 10})
    configure_logging("info", service="parser", json=True)
    asyncio.run(runtime.run(settings, ["parser"], instance=instance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
