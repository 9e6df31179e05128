"""The ``sokbo`` command: run services, check a config, try a query.

    sokbo run SERVICE|all --config FILE [--metrics-port N]
    sokbo check-config FILE
    sokbo match --query Q (--text T | --file F)

Exit codes: 0 success (also after SIGTERM/SIGINT), 2 invalid input (configuration,
query, usage), 1 cannot start (Redis unreachable, metrics port taken).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import orjson

from sokbo.errors import ConfigError, QuerySyntaxError, StartupError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sokbo", description="Korean news monitor.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a service, or all four in one process")
    run.add_argument("service", choices=["crawler", "parser", "keyword-alert", "notifier", "all"])
    run.add_argument("--config", default=os.environ.get("SOKBO_CONFIG"),
                     help="YAML config file (default: $SOKBO_CONFIG)")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="port for /metrics, /healthz, /readyz (default: config metrics_port)")
    check = commands.add_parser("check-config", help="validate a config file; exit 0 or 2")
    check.add_argument("file")
    match = commands.add_parser("match", help="evaluate one query against a text")
    match.add_argument("--query", required=True)
    source = match.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--file", type=Path)
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
    asyncio.run(run(settings, names))
    return 0


def _check(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    print(f"{args.file}: ok ({len(settings.sources)} sources, {len(settings.rules)} rules, "
          f"{len(settings.channels)} channels)")
    return 0


def _match(args: argparse.Namespace) -> int:
    from sokbo.matching import match

    text = args.text if args.text is not None else args.file.read_text(encoding="utf-8")
    matched, hits = match(args.query, text)
    highlights = [[h.start, h.end] for h in hits]
    sys.stdout.buffer.write(orjson.dumps({"matched": matched, "highlights": highlights}) + b"\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``sokbo`` command line; return the process exit code."""
    args = _parser().parse_args(argv)
    handler = {"run": _run, "check-config": _check, "match": _match}[args.command]
    try:
        return handler(args)
    except QuerySyntaxError as exc:
        print(f"sokbo: invalid query: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"sokbo: invalid configuration:\n{exc}", file=sys.stderr)
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
