"""The ``sokbo`` command: run services, check a config, try a query.

    sokbo run SERVICE|all --config FILE [--metrics-port N]
    sokbo check-config FILE
    sokbo match --query Q (--text T | --file F) [--config FILE]
    sokbo match --batch                 # JSON lines {"query", "text"} on stdin
    sokbo match --config FILE --batch   # JSON lines {"title", "text"}: every rule
    sokbo extract --file F [--url U] [--encoding E]   # the ArticleParsed of a saved page
    sokbo dead-letter list|show ID|replay (ID|--all)|purge (ID|--all|--before AGE)

Exit codes: 0 success (also after SIGTERM/SIGINT), 2 invalid input (configuration,
query, usage), 1 cannot start (Redis unreachable, metrics port taken).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from sokbo.errors import ConfigError, QuerySyntaxError, StartupError

__all__ = ["main"]




def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (0-65535)")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sokbo", description="Korean news monitor.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a service, or all four in one process")
    run.add_argument("service", choices=["crawler", "parser", "keyword-alert", "notifier", "all"])
    run.add_argument("--config", default=os.environ.get("SOKBO_CONFIG"),
                     help="YAML config file (default: $SOKBO_CONFIG)")
    run.add_argument("--metrics-port", type=_port, default=None,
                     help="port for /metrics, /healthz, /readyz (default: config metrics_port)")
    check = commands.add_parser("check-config", help="validate a config file; exit 0 or 2")
    check.add_argument("file")
    match = commands.add_parser(
        "match", help="evaluate a query against a text, or a batch of JSON lines on stdin",
        description="--query Q (--text T | --file F): one JSON object. --batch: JSON lines "
        '{"query", "text"} on stdin. --config FILE --batch: lines {"title", "text"}, '
        "every rule of the config against each.")
    match.add_argument("--query")
    match.add_argument("--config", help="use this config's synonyms (and rules, with --batch)")
    source = match.add_mutually_exclusive_group()
    source.add_argument("--text")
    source.add_argument("--file", type=Path)
    source.add_argument("--batch", action="store_true", help="read JSON lines from stdin")
    sources = commands.add_parser(
        "sources", help="each source's last success, last error, failures, items, next poll",
        description="Reads the crawler's state from the config's Redis.")
    sources.add_argument("--config", default=os.environ.get("SOKBO_CONFIG"),
                         help="YAML config file (default: $SOKBO_CONFIG)")
    sources.add_argument("--json", action="store_true", help="one JSON object per source")
    extract = commands.add_parser(
        "extract", help="print the article the parser would publish for a saved page",
        description="Decode and extract a saved HTML page as the parser service does and "
        "print its ArticleParsed as JSON. Exit 2 for a missing file or a page without an "
        "article.")
    extract.add_argument("--file", type=Path, required=True, help="the page, as fetched (bytes)")
    extract.add_argument("--url", help="the URL it was fetched from (default: the file's "
                         "file:// URI); canonical URL and article_id derive from it")
    dead = commands.add_parser(
        "dead-letter", help="list, show, replay or purge entries of sokbo.dead-letter",
        description="list [--stage S] [--count N] [--json] | show ID | replay (ID | --all "
        "[--stage S]) | purge (ID | --all | --before AGE). Replay puts the original back "
        "where it failed (a page is fetched again on its source's next poll; an alert a "
        "channel refused goes back for that channel only).")
    dead.add_argument("action", choices=["list", "show", "replay", "purge"])
    dead.add_argument("entry_id", nargs="?", help="a dead-letter entry id (from list)")
    dead.add_argument("--config", default=os.environ.get("SOKBO_CONFIG"),
                      help="YAML config file (default: $SOKBO_CONFIG)")
    dead.add_argument("--stage", help="only entries of this stage (crawler, parser, ...)")
    dead.add_argument("--count", type=int, default=100, help="list at most this many")
    dead.add_argument("--all", action="store_true", help="replay or purge every entry")
    dead.add_argument("--before", help="purge entries older than this age (e.g. 7d)")
    dead.add_argument("--json", action="store_true", help="list as JSON lines")
    extract.add_argument("--encoding", help="a charset label that overrides the page's, "
                         "e.g. euc-kr")
    return parser


def _load(path: str | None, metrics_port: int | None = None):
    from sokbo.config import load_settings

    if not path:
        raise ConfigError("no configuration: pass --config FILE or set SOKBO_CONFIG")
    settings = load_settings(path)
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    return settings


def _run(args: argparse.Namespace) -> int:
    from sokbo.logs import configure_logging
    from sokbo.runtime import SERVICES, run

    settings = _load(args.config, args.metrics_port)
    names = list(SERVICES) if args.service == "all" else [args.service]
    configure_logging(settings.log_level, service=args.service)
    asyncio.run(run(settings, names, Path(args.config)))
    return 0


def _check(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    print(f"{args.file}: ok ({len(settings.sources)} sources, {len(settings.rules)} rules, "
          f"{len(settings.channels)} channels)")
    return 0


def _match(args: argparse.Namespace) -> int:
    from sokbo.matching import match

    settings = _load(args.config) if args.config else None
    synonyms = settings.synonyms if settings else []
    if args.batch:
        return _match_rules(settings) if settings else _match_queries(synonyms)
    try:
        text = args.text if args.text is not None else args.file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{args.file}: not UTF-8 text (byte {exc.start}); convert it, "
                          "e.g. iconv -f cp949 -t utf-8") from None
    matched, hits = match(args.query, text, synonyms=synonyms)
    _emit({"matched": matched, "highlights": [[h.start, h.end] for h in hits]})
    return 0


def _extract(args: argparse.Namespace) -> int:
    """Print the ``ArticleParsed`` of a saved page (pretty JSON, UTF-8); 2 if there is none."""
    from datetime import UTC, datetime

    from sokbo.charsets import codec_for_label
    from sokbo.errors import PermanentError
    from sokbo.messages import PageFetched

    try:
        from sokbo_parser.article import parse_page
    except ImportError:
        print("sokbo: extract needs the parser service (package sokbo-parser)", file=sys.stderr)
        return 1
    if args.encoding is not None and codec_for_label(args.encoding) is None:
        print(f"sokbo: unknown encoding label {args.encoding!r} (try euc-kr, utf-8)",
              file=sys.stderr)
        return 2
    try:
        body = args.file.read_bytes()
    except OSError as exc:
        print(f"sokbo: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    url = args.url or args.file.resolve().as_uri()
    now = datetime.now(UTC)
    page = PageFetched(source_id="cli", url=url, final_url=url, status=200, body=body,
                       discovered_at=now, fetched_at=now)
    try:
        article = parse_page(page, now=now, encoding=args.encoding).article
    except PermanentError as exc:
        print(f"sokbo: no article in {args.file}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(orjson.dumps(article.model_dump(mode="json"),
                                         option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()
    return 0


def _emit(obj: dict) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


def _lines() -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (line number, parsed object or None, error or None) for stdin's JSON lines."""
    for number, line in enumerate(sys.stdin.buffer, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, None, f"line {number}: not JSON ({exc})"
            continue
        if not isinstance(obj, dict):
            yield number, None, f"line {number}: expected a JSON object"
            continue
        yield number, obj, None


def _match_queries(synonyms: list[list[str]]) -> int:
    from sokbo.matching import match

    for number, obj, error in _lines():
        if error or obj is None:
            _emit({"error": error})
            continue
        query, text, title = obj.get("query"), obj.get("text"), obj.get("title") or ""
        if not all(isinstance(value, str) for value in (query, text, title)):
            _emit({"error": f'line {number}: "query" and "text" (and "title") must be strings'})
            continue
        try:
            matched, hits = match(query, text, title=title, synonyms=synonyms)
        except QuerySyntaxError as exc:
            _emit({"error": str(exc)})
            continue
        _emit({"matched": matched,
               "highlights": [[h.start, h.end] for h in hits if h.field == "text"]})
    return 0


def _match_rules(settings) -> int:
    from sokbo.matching import RuleSet

    ruleset = RuleSet([(r.id, r.query) for r in settings.rules], settings.synonyms)
    for number, obj, error in _lines():
        if error or obj is None:
            _emit({"error": error})
            continue
        title, text = obj.get("title") or "", obj.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            _emit({"error": f'line {number}: "title" and "text" must be strings'})
            continue
        matches = ruleset.evaluate(title, text)
        _emit({"rules": [m.rule_id for m in matches],
               "hits": [{"rule": m.rule_id, **hit.message().model_dump(exclude_none=True)}
                        for m in matches for hit in m.hits]})
    return 0


def _sources(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    import redis.asyncio as aioredis

    from sokbo_crawler.schedule import read_status, render_status

    settings = _load(args.config)

    async def read() -> list:
        client = aioredis.from_url(settings.redis_url, socket_connect_timeout=3)
        try:
            return await read_status(client, settings.sources)
        except aioredis.RedisError as exc:
            raise StartupError(f"cannot read the crawler's state from Redis at "
                               f"{_redact(settings.redis_url)}: {exc}; is Redis up and "
                               "redis_url (or REDIS_URL) right?") from None
        finally:
            await client.aclose()

    statuses = asyncio.run(read())
    if args.json:
        for status in statuses:
            print(orjson.dumps(dataclasses.asdict(status)).decode())
    else:
        print(render_status(statuses, time.time()))
    return 0


def _dead_letter(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    needs_target = args.action in ("show", "replay", "purge")
    if needs_target and not (args.entry_id or args.all or args.before):
        raise ConfigError(f"dead-letter {args.action} needs an entry id"
                          + (" or --all" if args.action != "show" else "")
                          + (" or --before AGE" if args.action == "purge" else ""))
    settings = _load(args.config)

    async def act() -> int:
        client = aioredis.from_url(settings.redis_url, socket_connect_timeout=3)
        try:
            return await _dead_letter_action(args, client, settings)
        except aioredis.ResponseError as exc:  # Redis answered: the input was wrong
            raise ConfigError(f"Redis refused {args.entry_id or 'the request'}: {exc}; an "
                              "entry id looks like 1732900000000-0 (see `sokbo dead-letter "
                              "list`)") from None
        except aioredis.RedisError as exc:
            raise StartupError(f"cannot reach Redis at {_redact(settings.redis_url)}: {exc}; "
                               "is Redis up and redis_url (or REDIS_URL) right?") from None
        finally:
            await client.aclose()

    return asyncio.run(act())


async def _dead_letter_action(args: argparse.Namespace, client: Any, settings: Any) -> int:
    """Carry out one ``sokbo dead-letter`` action; return the exit code."""
    from datetime import UTC, datetime, timedelta

    from faststream.redis import RedisBroker

    from sokbo import deadletters
    from sokbo.config import parse_duration

    if args.action == "list":
        letters = await deadletters.read(client, count=args.count, stage=args.stage)
        for letter in letters:
            summary = letter.summary()
            if args.json:
                print(orjson.dumps(summary).decode())
            else:
                about = " ".join(f"{k}={v}" for k, v in summary["about"].items())
                channel = f" channel={summary['channel_id']}" if summary["channel_id"] else ""
                print(f"{summary['id']}  {summary['failed_at'][:19]}  {summary['stage']:<13} "
                      f"{summary['stream']}{channel}  {about}\n    {summary['error']}")
        if not args.json:
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        return 0
    if args.action == "show":
        found = await deadletters.read(client, entry_id=args.entry_id)
        if not found:
            print(f"sokbo: no dead letter {args.entry_id}", file=sys.stderr)
            return 2
        print(orjson.dumps({"id": found[0].entry_id, **found[0].record.model_dump(mode="json")},
                           option=orjson.OPT_INDENT_2).decode())
        return 0
    if args.action == "purge":
        before = (datetime.now(UTC) - timedelta(seconds=parse_duration(args.before))
                  if args.before else None)
        removed = await deadletters.purge(client, entry_id=args.entry_id, before=before)
        print(f"purged {removed} dead letter(s)")
        return 0
    letters = (await deadletters.read(client, entry_id=args.entry_id) if args.entry_id
               else await deadletters.read(client, count=10**9, stage=args.stage))
    if not letters:
        print(f"sokbo: no dead letter {args.entry_id or ''} to replay", file=sys.stderr)
        return 2
    failed = 0
    async with RedisBroker(settings.redis_url) as broker:
        async def publish(body: bytes, stream: str) -> None:
            await broker.publish(body, stream=stream)

        for letter in letters:
            try:
                print(f"{letter.entry_id}: {await deadletters.replay(client, letter, publish)}")
            except ValueError as exc:
                failed += 1
                print(f"sokbo: {exc}", file=sys.stderr)
    return 2 if failed else 0


def _redact(url: str) -> str:
    """Hide a password in a Redis URL."""
    import re

    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def main(argv: list[str] | None = None) -> int:
    """Run the ``sokbo`` command line; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "match":
        if args.batch and args.query is not None:
            parser.error("--batch reads queries from stdin: drop --query")
        if not args.batch and (args.query is None or (args.text is None and args.file is None)):
            parser.error("match needs --query Q with --text T or --file F, or --batch")
    handler = {"run": _run, "check-config": _check, "match": _match,
               "sources": _sources, "extract": _extract,
               "dead-letter": _dead_letter}[args.command]
    try:
        return handler(args)
    except QuerySyntaxError as exc:
        print(f"sokbo: invalid query: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"sokbo: invalid input:\n{exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"sokbo: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sokbo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
