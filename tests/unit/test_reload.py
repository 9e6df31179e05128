"""Config reload: a changed file or SIGHUP swaps settings; an invalid file is refused."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from sokbo.config import Settings, load_settings
from sokbo.context import ServiceContext
from sokbo.runtime import watch_config

RULES = """
rules:
  - {{id: {rule}, query: '{query}', channels: [out]}}
channels: [{{id: out, kind: console}}]
"""


def write(path: Path, rule: str, query: str) -> None:
    path.write_text(RULES.format(rule=rule, query=query), encoding="utf-8")
    stat = path.stat()  # make sure the mtime moves even on coarse clocks
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))


async def until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not reloaded in time")


@pytest.fixture
async def watched(tmp_path: Path):
    path = tmp_path / "sokbo.yaml"
    write(path, "first", "소버린AI")
    ctx = ServiceContext(settings=load_settings(path), broker=None, redis=None)  # type: ignore[arg-type]
    seen: list[Settings] = []
    ctx.on_reload(seen.append)
    task = asyncio.create_task(watch_config(ctx, path, period=0.05))
    yield path, ctx, seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_changed_file_is_reloaded(watched) -> None:
    path, ctx, seen = watched
    write(path, "second", '"OpenAI 코리아"')
    await until(lambda: seen)
    assert [r.id for r in ctx.settings.rules] == ["second"]


async def test_an_invalid_file_is_refused_and_the_old_rules_stay(watched, capsys) -> None:
    path, ctx, seen = watched
    write(path, "broken", "(unbalanced OR")
    await asyncio.sleep(0.4)
    assert seen == [] and [r.id for r in ctx.settings.rules] == ["first"]
    write(path, "third", "반도체")
    await until(lambda: seen)
    assert [r.id for r in ctx.settings.rules] == ["third"]


async def test_a_reloader_can_refuse_new_settings(watched) -> None:
    path, ctx, seen = watched

    def refuse(settings: Settings) -> None:
        raise ValueError("no")

    ctx.reloaders.insert(0, refuse)
    write(path, "second", "반도체")
    await asyncio.sleep(0.4)
    assert [r.id for r in ctx.settings.rules] == ["first"] and seen == []


async def test_sighup_reloads(watched) -> None:
    path, ctx, seen = watched
    await asyncio.sleep(0.1)  # the watcher has installed its handler
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: seen)
    assert [r.id for r in ctx.settings.rules] == ["first"]
