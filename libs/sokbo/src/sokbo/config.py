"""The operator's configuration: one YAML file, validated strictly, read in one place.

Shape (see ``config/korea.example.yaml`` and the README's reference)::

    redis_url, metrics_port, log_level, streams{maxlen}, crawler{...}, parser{workers},
    delivery{...},
    sources[...], synonyms[[...]], rules[...], channels[...]

* ``${NAME}`` anywhere in a string value is replaced by the environment variable
  ``NAME`` at load time; a missing one is a :class:`~sokbo.errors.ConfigError`.
* Environment variables ``REDIS_URL``, ``SOKBO_LOG_LEVEL`` and ``SOKBO_METRICS_PORT``
  override the scalar settings of the same name (pydantic-settings).
* Every error names the file, the key path, what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sokbo.errors import ConfigError, QuerySyntaxError

__all__ = [
    "Channel",
    "ConsoleChannel",
    "CrawlerSettings",
    "DeliverySettings",
    "EmailChannel",
    "ParserSettings",
    "Rule",
    "Settings",
    "SlackChannel",
    "Source",
    "StreamSettings",
    "load_settings",
    "parse_duration",
]

class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key written twice in one mapping."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {seen[key]}); keep one",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = r"^[a-z0-9][a-z0-9-]*$"
_HTTP_URL = r"^https?://[^/\s:?#]+(:\d{1,5})?([/?#]\S*)?$"
_ADDRESS = r"^[^@\s]+@[^@\s]+\.[^@\s]+$|^[^<>]*<[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>$"


def parse_duration(value: Any) -> float:
    """Parse ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"250ms"`` or a number into seconds.

    Raises:
        ValueError: for anything else, with the accepted forms in the message.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60s, 15m, 1h")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration: write e.g. 500ms, 60s, 15m, 1h or 1d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
NonNegativeSeconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Identifier = Annotated[str, Field(pattern=_ID, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StreamSettings(_Strict):
    """Stream caps: every service trims each stream to about ``maxlen`` entries.

    Trimming is ``XTRIM MAXLEN ~ maxlen`` every few seconds (:mod:`sokbo.groups`), never
    a delete on ack, so a group an operator adds is not starved (B25).  The default
    is sized so a consumer group that is down for a day loses nothing at 50,000
    articles a day: ``sokbo.articles`` gets one entry per article and ``sokbo.alerts``
    one per (article, rule) match, so 100,000 entries are two days of articles at
    that rate (and of alerts while fewer than two rules match an article on average);
    ``sokbo.pages`` holds only pages not parsed yet (each is deleted once parsed).  A
    group whose lag (entries not yet read) passes 80 % of the cap is logged as
    ``consumer_group_lag_near_cap``; past the cap, trimming removes entries it has not
    read.  Memory for a day's backlog: an article entry is about 5–10 KB, a page entry
    the raw HTML in base64, about 100–300 KB for Korean news pages, so a parser down
    for a day at 50,000 pages holds about 5–15 GB of ``sokbo.pages``: size Redis (and
    ``maxmemory``) for the longest outage to be survived.
    """

    maxlen: int = Field(100_000, ge=1_000)


class CrawlerSettings(_Strict):
    """Fetching politeness and safety."""

    allow_private_networks: bool = False
    per_host_delay: NonNegativeSeconds = 1.0
    timeout: Seconds = 15.0  # read timeout; a whole fetch may take twice this
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    user_agent: str | None = None  # default: sokbo/VERSION (+project URL)
    #: sources polled at once by one crawler replica
    concurrency: int = Field(4, ge=1, le=256)
    #: new article links fetched per poll of one source; the rest wait for the next poll
    max_entries_per_poll: int = Field(100, ge=1)
    #: sitemap entries whose lastmod / news:publication_date is older are not fetched
    sitemap_max_age: Seconds = 2 * 86400.0


class ParserSettings(_Strict):
    """How one parser replica uses the machine.

    ``workers``: pages extracted at once, each in a process of its own (extraction is
    CPU-bound Python, so threads would share one core); ``1`` (the default) extracts
    in a thread of the service process.  On Kubernetes, add replicas rather than
    workers; on one machine, ``workers`` up to its cores shortens the queue.
    """

    workers: int = Field(1, ge=1, le=64)


class DeliverySettings(_Strict):
    """Consumer-group recovery (see :mod:`sokbo.context` and :mod:`sokbo.groups`).

    ``claim_idle``: an entry pending this long on a consumer that stopped working on
    it (a dead replica; live ones keep their entries fresh) is claimed by another.
    ``max_deliveries``: after this many deliveries an entry is dead-lettered.
    ``consumer_expiry``: a consumer with no pending entries that has not read for
    this long is removed from its group (one with pending entries never is).
    ``shutdown_grace``: on SIGTERM, how long in-flight entries may take to finish
    before they are abandoned (left pending for another replica).
    """

    claim_idle: Seconds = 60.0
    max_deliveries: int = Field(5, ge=1)
    consumer_expiry: Seconds = 3600.0
    shutdown_grace: Seconds = 10.0


class Source(_Strict):
    """A news source polled by the crawler.

    ``kind``: ``feed`` (RSS/Atom), ``sitemap`` (a sitemap index or urlset, ``.xml`` or
    gzip, Google News sitemaps included) or ``page`` (a listing page; ``link_pattern``
    is a regex that article links on it match, searched in the absolute URL).
    ``interval`` is the poll period; while polls find nothing new it doubles up to
    ``max_interval`` and returns to ``interval`` as soon as one does.  By default
    ``max_interval`` equals ``interval``: adaptive polling saves requests on quiet
    sources at the cost of alert latency, so it is the operator's choice per source.
    ``encoding`` overrides the charset the source's documents and pages declare (a
    WHATWG label such as ``euc-kr``).
    """

    id: Identifier
    url: Annotated[str, Field(pattern=_HTTP_URL)]
    kind: Literal["feed", "sitemap", "page"] = "feed"
    interval: Annotated[float, BeforeValidator(parse_duration), Field(ge=1)] = 60.0
    max_interval: Annotated[float | None, BeforeValidator(
        lambda v: None if v is None else parse_duration(v)), Field(ge=1)] = None
    enabled: bool = True
    title: str | None = None
    encoding: str | None = None
    link_pattern: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        from sokbo.charsets import codec_for_label

        if value is not None and codec_for_label(value) is None:
            raise ValueError(f"unknown encoding label {value!r}; use a WHATWG label such as "
                             "utf-8, euc-kr or windows-1252")
        return value

    @field_validator("link_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"link_pattern is not a valid regular expression: {exc}; "
                                 "write a Python regex such as '/news/articleView\\.html'"
                                 ) from None
        return value

    @model_validator(mode="after")
    def _kind_options(self) -> Source:
        if self.kind == "page" and not self.link_pattern:
            raise ValueError("a source of kind page needs link_pattern: a regex that the "
                             "article links on the listing page match")
        if self.kind != "page" and self.link_pattern:
            raise ValueError(f"link_pattern applies to kind: page only; remove it or set "
                             f"kind: page (this source is kind: {self.kind})")
        if self.max_interval is not None and self.max_interval < self.interval:
            raise ValueError(f"max_interval ({self.max_interval:g}s) is shorter than "
                             f"interval ({self.interval:g}s); make it at least as long")
        return self

    @property
    def longest_interval(self) -> float:
        """The poll period in seconds that adaptive backing-off never exceeds."""
        return self.max_interval if self.max_interval is not None else self.interval


class Rule(_Strict):
    """An alert rule: a query in sokbo's rule language and the channels it notifies."""

    id: Identifier
    query: str
    channels: list[Identifier] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice; list each once")
        return value

    @field_validator("query")
    @classmethod
    def _query_parses(cls, value: str) -> str:
        from sokbo.query import parse_query

        try:
            parse_query(value)
        except QuerySyntaxError as exc:
            raise ValueError(
                f"invalid query at column {exc.column}: {exc.reason}; "
                "fix the query (terms, \"phrases\", AND, OR, NOT, -, parentheses)"
            ) from None
        return value


class SlackChannel(_Strict):
    """A Slack incoming webhook.

    ``max_per_second``: messages per second to the webhook, counted across every
    notifier replica (Slack allows about one; more earns HTTP 429 and, sustained, a
    disabled webhook).  ``burst``: how many alerts may wait behind the next message
    before all those waiting are sent together as one digest message.
    """

    id: Identifier
    kind: Literal["slack"]
    webhook_url: Annotated[str, Field(pattern=_HTTP_URL)]
    max_per_second: float = 1.0
    burst: int = 5

    @field_validator("max_per_second", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> float:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = float("nan")
        if isinstance(value, bool) or not 0 < rate <= 100:
            raise ValueError(f"max_per_second {value!r} must be a number of messages per second "
                             "above 0 and at most 100; Slack allows about 1 per webhook "
                             "(write e.g. 1, or 0.5 for one every two seconds)")
        return rate

    @field_validator("burst", mode="before")
    @classmethod
    def _burst(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
            raise ValueError(f"burst {value!r} must be a whole number from 0 to 1000: how many "
                             "alerts may wait behind the next message before they are sent "
                             "as one digest (default 5)")
        return value


class EmailChannel(_Strict):
    """An SMTP mailbox (aiosmtplib): STARTTLS or implicit TLS, optional login.

    ``digest``: ``15m``, ``1h`` or ``1d`` to send one e-mail per period (at :00, :15,
    :30 and :45; on the hour; at 00:00 KST) listing the period's alerts by rule;
    absent, one e-mail per alert as soon as it is raised.
    """

    id: Identifier
    kind: Literal["email"]
    smtp_host: Annotated[str, Field(min_length=1)]
    smtp_port: int = Field(587, ge=1, le=65535)
    starttls: bool = False
    use_tls: bool = False
    username: str | None = None
    password: str | None = None
    from_: Annotated[str, Field(pattern=_ADDRESS)] = Field(alias="from")
    to: list[Annotated[str, Field(pattern=_ADDRESS)]] = Field(min_length=1)
    timeout: Seconds = 30.0
    digest: Literal["15m", "1h", "1d"] | None = None

    @field_validator("digest", mode="before")
    @classmethod
    def _digest_period(cls, value: Any) -> Any:
        if value is None or value in ("15m", "1h", "1d"):
            return value
        raise ValueError(f"digest {value!r} is not a digest period: write 15m, 1h or 1d, "
                         "or leave digest out to send one e-mail per alert")

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailChannel:
        if self.starttls and self.use_tls:
            raise ValueError("set either starttls (port 587) or use_tls (port 465), not both")
        return self


class ConsoleChannel(_Strict):
    """Print alerts on stdout: for the demo and development."""

    id: Identifier
    kind: Literal["console"]


Channel = Annotated[SlackChannel | EmailChannel | ConsoleChannel, Field(discriminator="kind")]


#: the only environment variables that override the file, and the setting each sets
ENV_OVERRIDES = {"REDIS_URL": "redis_url", "SOKBO_LOG_LEVEL": "log_level",
                 "SOKBO_METRICS_PORT": "metrics_port"}


class _Overrides(PydanticBaseSettingsSource):
    """Read exactly the variables in ENV_OVERRIDES (a stray ``RULES=`` must not count)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {name: os.environ[var] for var, name in ENV_OVERRIDES.items()
                if os.environ.get(var)}


class Settings(BaseSettings):
    """The whole validated configuration of a sokbo installation."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, env_prefix="", case_sensitive=False
    )

    redis_url: str = "redis://localhost:6379/0"
    metrics_port: int = Field(9464, ge=0, le=65535)
    log_level: str = "info"
    streams: StreamSettings = StreamSettings()
    crawler: CrawlerSettings = CrawlerSettings()
    parser: ParserSettings = ParserSettings()
    delivery: DeliverySettings = DeliverySettings()
    sources: list[Source] = Field(default_factory=list)
    synonyms: list[Annotated[list[Annotated[str, Field(pattern=r"\S")]], Field(min_length=2)]] = (
        Field(default_factory=list))
    rules: list[Rule] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *_, **__):
        # the environment overrides only ENV_OVERRIDES (see _Overrides), then the file
        return (_Overrides(settings_cls), init_settings)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        database = parts.path.strip("/")
        if parts.scheme not in ("redis", "rediss", "unix") or (
                parts.scheme != "unix" and not parts.hostname) or (
                database and parts.scheme != "unix" and not database.isdigit()):
            raise ValueError("is not a Redis URL: write redis://host:6379/0 (the number "
                             "after / is the database)")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("log_level must be one of debug, info, warning, error, critical")
        return value.lower()

    @model_validator(mode="after")
    def _references(self) -> Settings:
        for name, items in (("sources", self.sources), ("rules", self.rules),
                            ("channels", self.channels)):
            seen: set[str] = set()
            for index, item in enumerate(items):
                if item.id in seen:
                    raise ValueError(
                        f"{name}[{index}].id: duplicate id {item.id!r}; ids must be unique"
                    )
                seen.add(item.id)
        channel_ids = {c.id for c in self.channels}
        for index, rule in enumerate(self.rules):
            for channel in rule.channels:
                if channel not in channel_ids:
                    raise ValueError(
                        f"rules[{index}].channels: unknown channel {channel!r}; "
                        f"define it under channels (known: {sorted(channel_ids) or 'none'})"
                    )
        return self

    def channel(self, channel_id: str) -> SlackChannel | EmailChannel | ConsoleChannel:
        """Return the channel with *channel_id*; raise KeyError if there is none."""
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise KeyError(channel_id)


def _substitute(value: Any, path: str, missing: list[str]) -> Any:
    """Replace ``${NAME}`` in every string of *value*; record unset names in *missing*."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                missing.append(f"{path}: environment variable {name} is not set")
                return ""
            return os.environ[name]
        return _ENV_REF.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), missing)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


_PATTERN_HELP = {
    _ID: "is not a valid id: use lowercase letters, digits and hyphens, e.g. 'pr-slack'",
    _HTTP_URL: "is not an http(s) URL with a host, e.g. https://news.example.kr/rss.xml",
    _ADDRESS: "is not an e-mail address, e.g. alerts@example.com or \"sokbo <a@example.com>\"",
    r"\S": "is empty: remove it",
}
#: keys whose values may hold secrets: never echoed in an error
_SECRET_KEYS = ("webhook_url", "password", "username", "redis_url")


def _format_validation(where: str, error: ValidationError, data: Mapping[str, Any]) -> str:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        # a discriminated union adds the tag as a location part: drop it
        path = re.sub(r"\.(slack|email|console)(?=\.|$)", "", path)
        if item["type"] == "extra_forbidden":
            what = f"unknown key {loc[-1]!r}; remove it or check its spelling"
        elif item["type"] == "missing":
            what = "required key is missing; add it"
        elif item["type"] == "string_pattern_mismatch":
            what = _PATTERN_HELP.get(item["ctx"]["pattern"], item["msg"])
            secret = any(str(part) in _SECRET_KEYS for part in loc)
            what = f"the value {what}" if secret else f"{item['input']!r} {what}"
        else:
            what = item["msg"].removeprefix("Value error, ")
        source = next((f" (from the environment variable {var})" for var, name
                       in ENV_OVERRIDES.items() if name == path and os.environ.get(var)), "")
        lines.append(f"{where}: {path}{source}: {what}" if path else f"{where}: {what}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read, substitute and validate the YAML configuration at *path*.

    Args:
        path: the YAML file.

    Returns:
        the validated :class:`Settings`.

    Raises:
        ConfigError: the file is missing or not YAML, a ``${NAME}`` is unset, or a
            value is invalid; the message names the file, the key path and the fix.
    """
    where = str(path)
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; pass --config or set SOKBO_CONFIG") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory; pass the YAML file itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{where}: {at}not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"{where}: the top level must be a mapping of named keys "
                          "(redis_url:, sources:, rules:, …)")
    missing: list[str] = []
    data = _substitute(raw, "", missing)
    if missing:
        raise ConfigError("\n".join(f"{where}: {line}" for line in missing) + "\n"
                          "export each before starting (secrets are never written in the file)")
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(where, exc, data)) from None
