"""Unit tests for sokbo.config: the YAML loader, its error messages and env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sokbo.config import EmailChannel, Settings, SlackChannel, load_settings, parse_duration
from sokbo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"

# environment variables the loader reads; cleared so the developer's shell cannot leak in
_OVERRIDES = ("REDIS_URL", "SOKBO_LOG_LEVEL", "SOKBO_METRICS_PORT")

_CONSOLE = "channels:\n  - id: console\n    kind: console\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OVERRIDES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write(tmp_path: Path):
    """Write a YAML text to a file in tmp_path and return its path."""

    def _write(text: str, name: str = "sokbo.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


# --- the shipped configurations ----------------------------------------------------------


def test_demo_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SITE", "http://127.0.0.1:8123")
    settings = load_settings(CONFIG / "demo.yaml")
    assert [(s.id, s.kind) for s in settings.sources] == [
        ("demo-daily", "feed"), ("hangul-shinmun", "feed"), ("demo-sitemap", "sitemap"),
        ("demo-section", "page")]
    assert settings.sources[2].longest_interval == 60.0
    assert settings.sources[3].link_pattern == r"/news/[a-z0-9-]+\.html$"
    assert settings.sources[0].url == "http://127.0.0.1:8123/feeds/demo.xml"
    assert settings.sources[0].interval == 10.0
    assert settings.crawler.allow_private_networks is True
    assert settings.crawler.per_host_delay == pytest.approx(0.1)
    assert settings.delivery.claim_idle == 30.0
    assert [r.id for r in settings.rules] == ["openai-korea", "sovereign-ai"]
    assert settings.channel("console").kind == "console"
    assert settings.synonyms == [["OpenAI", "오픈AI", "오픈에이아이"]]


def test_demo_config_without_demo_site_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_SITE", raising=False)
    message = _error(CONFIG / "demo.yaml")
    assert "DEMO_SITE" in message
    assert "sources[0].url" in message
    assert "demo.yaml" in message


def test_korea_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/XYZ")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    settings = load_settings(CONFIG / "korea.example.yaml")
    assert {s.id for s in settings.sources} >= {"yonhap", "donga", "hani", "fetv"}
    assert settings.streams.maxlen == 200_000
    slack = settings.channel("pr-slack")
    assert isinstance(slack, SlackChannel)
    assert slack.webhook_url == "https://hooks.slack.com/services/T0/B0/XYZ"
    mail = settings.channel("pr-mail")
    assert isinstance(mail, EmailChannel)
    assert mail.password == "s3cret"
    assert mail.from_ == "sokbo <alerts@example.com>"
    assert mail.starttls is True and mail.use_tls is False
    assert settings.rules[0].channels == ["pr-slack", "pr-mail"]


@pytest.mark.parametrize("missing", ["SLACK_WEBHOOK_URL", "SMTP_PASSWORD"])
def test_korea_example_missing_secret(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/XYZ")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    monkeypatch.delenv(missing)
    message = _error(CONFIG / "korea.example.yaml")
    assert missing in message
    expected_path = {"SLACK_WEBHOOK_URL": "channels[0].webhook_url",
                     "SMTP_PASSWORD": "channels[1].password"}[missing]
    assert expected_path in message


def test_settings_channel_lookup_unknown_raises_key_error(write) -> None:
    settings = load_settings(write(_CONSOLE))
    with pytest.raises(KeyError):
        settings.channel("nope")


# --- ${NAME} substitution ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${HOOK}", {"HOOK": "https://hooks.example/a"}, "https://hooks.example/a"),
        ("${BASE}/hook/${TOKEN}", {"BASE": "https://h.example", "TOKEN": "t0k"},
         "https://h.example/hook/t0k"),
        ("https://plain.example/no-refs", {}, "https://plain.example/no-refs"),
    ],
)
def test_env_substitution(monkeypatch: pytest.MonkeyPatch, write, value: str,
                          env: dict[str, str], expected: str) -> None:
    for name, val in env.items():
        monkeypatch.setenv(name, val)
    path = write(f"channels:\n  - id: hook\n    kind: slack\n    webhook_url: '{value}'\n")
    assert load_settings(path).channel("hook").webhook_url == expected


def test_env_substitution_into_an_integer_field(monkeypatch: pytest.MonkeyPatch, write) -> None:
    monkeypatch.setenv("SMTP_PORT", "2525")
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: localhost\n"
        "    smtp_port: ${SMTP_PORT}\n    from: a@example.com\n    to: [b@example.com]\n"
    )
    assert load_settings(path).channel("mail").smtp_port == 2525


def test_env_substitution_inside_lists(monkeypatch: pytest.MonkeyPatch, write) -> None:
    monkeypatch.setenv("TEAM", "pr@example.com")
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: localhost\n"
        "    from: a@example.com\n    to: [ops@example.com, '${TEAM}']\n"
    )
    assert load_settings(path).channel("mail").to == ["ops@example.com", "pr@example.com"]


@pytest.mark.parametrize(
    ("text", "path_in_message"),
    [
        ("channels:\n  - id: hook\n    kind: slack\n    webhook_url: ${SOKBO_TEST_UNSET_VAR}\n",
         "channels[0].webhook_url"),
        ("redis_url: redis://${SOKBO_TEST_UNSET_VAR}:6379/0\n", "redis_url"),
        ("sources:\n  - id: a\n    url: https://a.example/\n  - id: b\n"
         "    url: ${SOKBO_TEST_UNSET_VAR}/rss\n", "sources[1].url"),
    ],
)
def test_missing_env_var_is_named_with_its_key_path(monkeypatch: pytest.MonkeyPatch, write,
                                                     text: str, path_in_message: str) -> None:
    monkeypatch.delenv("SOKBO_TEST_UNSET_VAR", raising=False)
    path = write(text)
    message = _error(path)
    assert "SOKBO_TEST_UNSET_VAR" in message
    assert path_in_message in message
    assert str(path) in message


# --- unknown keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key_path", "key"),
    [
        ("redis_ur: redis://localhost:6379/0\n", "redis_ur", "redis_ur"),
        ("crawler:\n  per_host_dealy: 1s\n", "crawler.per_host_dealy", "per_host_dealy"),
        ("delivery:\n  max_delivery: 3\n", "delivery.max_delivery", "max_delivery"),
        ("streams:\n  max_len: 5000\n", "streams.max_len", "max_len"),
        ("sources:\n  - id: a\n    url: https://a.example/\n    intervall: 60s\n",
         "sources[0].intervall", "intervall"),
        ("rules:\n  - id: r\n    query: a\n    channels: [console]\n    chanels: [x]\n" + _CONSOLE,
         "rules[0].chanels", "chanels"),
        ("channels:\n  - id: hook\n    kind: slack\n    webhook_url: https://h.example/\n"
         "    channel: '#pr'\n", "channels[0].channel", "channel"),
    ],
)
def test_unknown_key(write, text: str, key_path: str, key: str) -> None:
    path = write(text)
    message = _error(path)
    assert str(path) in message
    assert key_path in message
    assert "unknown key" in message
    assert key in message


# --- duplicate ids and references --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("sources:\n  - id: fetv\n    url: https://a.example/rss\n"
         "  - id: fetv\n    url: https://b.example/rss\n", "sources[1].id"),
        ("rules:\n  - id: r1\n    query: a\n    channels: [console]\n"
         "  - id: r1\n    query: b\n    channels: [console]\n" + _CONSOLE, "rules[1].id"),
        ("channels:\n  - id: console\n    kind: console\n  - id: console\n    kind: console\n",
         "channels[1].id"),
    ],
)
def test_duplicate_id(write, text: str, where: str) -> None:
    path = write(text)
    message = _error(path)
    assert "duplicate" in message
    assert where in message
    assert str(path) in message


def test_rule_naming_an_unknown_channel(write) -> None:
    path = write("rules:\n  - id: r\n    query: 소버린AI\n    channels: [console, pr-slack]\n"
                 + _CONSOLE)
    message = _error(path)
    assert "rules[0].channels" in message
    assert "unknown channel" in message
    assert "pr-slack" in message


# --- queries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ['"OpenAI 코리아', "(a OR b", "a AND", "a OR", "()"],
)
def test_unparsable_query(write, query: str) -> None:
    quoted = "'" + query.replace("'", "''") + "'"
    path = write(f"rules:\n  - id: r\n    query: {quoted}\n    channels: [console]\n" + _CONSOLE)
    message = _error(path)
    assert str(path) in message
    assert "rules[0].query" in message
    assert "column" in message


@pytest.mark.parametrize(
    "query",
    ['"OpenAI 코리아" OR "오픈AI 코리아"', "소버린AI", "(a OR b) AND c", "삼성 -갤럭시"],
)
def test_valid_query_accepted(write, query: str) -> None:
    quoted = "'" + query.replace("'", "''") + "'"
    path = write(f"rules:\n  - id: r\n    query: {quoted}\n    channels: [console]\n" + _CONSOLE)
    assert load_settings(path).rules[0].query == query


# --- identifiers -------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["Yonhap", "yonhap_news", "-fetv", "연합", "a b", ""])
def test_invalid_source_id(write, bad_id: str) -> None:
    path = write(f"sources:\n  - id: '{bad_id}'\n    url: https://a.example/\n")
    message = _error(path)
    assert "sources[0].id" in message


@pytest.mark.parametrize("good_id", ["yonhap", "fetv-2", "0news", "a"])
def test_valid_source_id(write, good_id: str) -> None:
    path = write(f"sources:\n  - id: '{good_id}'\n    url: https://a.example/\n")
    assert load_settings(path).sources[0].id == good_id


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("60s", 60.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("90", 90.0),
        (" 2 m ", 120.0),
        (5, 5.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["ten seconds", "", "1w", "-1s", "1h30m", "s", True, None],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("yaml_value", "seconds"),
    [("500ms", 0.5), ("60s", 60.0), ("15m", 900.0), ("1h", 3600.0), ("1d", 86400.0),
     ("45", 45.0), ("2.5", 2.5)],
)
def test_durations_in_the_file(write, yaml_value: str, seconds: float) -> None:
    path = write(f"delivery:\n  claim_idle: {yaml_value}\n")
    assert load_settings(path).delivery.claim_idle == pytest.approx(seconds)


@pytest.mark.parametrize("interval", ["500ms", "0.5", "1ms"])
def test_a_source_interval_under_a_second_is_refused(write, interval: str) -> None:
    path = write(f"sources:\n  - id: a\n    url: https://a.example/\n    interval: {interval}\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.interval"):
        load_settings(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules: []\nrules: []\n", "appears twice"),
        ("1: a\n", "mapping of named keys"),
        ("sources:\n  - {id: a, url: 'http://'}\n", "not an http(s) URL"),
        ("channels:\n  - {id: s, kind: slack, webhook_url: 'hooks.slack.com/services/T/B/Secret'}"
         "\n", "channels[0].webhook_url: the value is not an http(s) URL"),
        ("channels:\n  - {id: m, kind: email, smtp_host: '', from: a@b.kr, to: [c@d.kr]}\n",
         "smtp_host"),
        ("channels:\n  - {id: m, kind: email, smtp_host: h, from: nobody, to: [c@d.kr]}\n",
         "not an e-mail address"),
        ("synonyms: [[OpenAI]]\n", "synonyms[0]"),
        ("synonyms: [[OpenAI, '']]\n", "is empty"),
        ("rules:\n  - {id: r, query: a, channels: [c, c]}\nchannels: [{id: c, kind: console}]\n",
         "listed twice"),
        ("redis_url: notaurl\n", "redis_url"),
        ("redis_url: redis://127.0.0.1:6379/abc\n", "redis_url"),
    ],
)
def test_more_invalid_configs(write, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(body))
    assert message in str(info.value)
    assert "Secret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("crawler:\n  per_host_delay: ten seconds\n", "crawler.per_host_delay"),
        ("delivery:\n  claim_idle: soon\n", "delivery.claim_idle"),
        ("sources:\n  - id: a\n    url: https://a.example/\n    interval: 1w\n",
         "sources[0].interval"),
    ],
)
def test_bad_duration(write, text: str, where: str) -> None:
    message = _error(write(text))
    assert where in message
    assert "duration" in message


@pytest.mark.parametrize(
    "text",
    [
        "sources:\n  - id: a\n    url: https://a.example/\n    interval: 0s\n",
        "delivery:\n  claim_idle: 0\n",
        "crawler:\n  per_host_delay: -1\n",
    ],
)
def test_non_positive_durations_rejected(write, text: str) -> None:
    _error(write(text))


def test_zero_per_host_delay_allowed(write) -> None:
    assert load_settings(write("crawler:\n  per_host_delay: 0s\n")).crawler.per_host_delay == 0


# --- crawler, email and other settings ---------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_allow_private_networks(write, value: bool) -> None:
    path = write(f"crawler:\n  allow_private_networks: {str(value).lower()}\n")
    assert load_settings(path).crawler.allow_private_networks is value


def test_email_channel_both_tls_modes_rejected(write) -> None:
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: smtp.example.com\n"
        "    starttls: true\n    use_tls: true\n    from: a@example.com\n    to: [b@example.com]\n"
    )
    message = _error(path)
    assert "channels[0]" in message
    assert "starttls" in message and "use_tls" in message


@pytest.mark.parametrize(("starttls", "use_tls"), [(True, False), (False, True), (False, False)])
def test_email_channel_one_tls_mode_accepted(write, starttls: bool, use_tls: bool) -> None:
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: smtp.example.com\n"
        f"    starttls: {str(starttls).lower()}\n    use_tls: {str(use_tls).lower()}\n"
        "    from: a@example.com\n    to: [b@example.com]\n"
    )
    mail = load_settings(path).channel("mail")
    assert (mail.starttls, mail.use_tls) == (starttls, use_tls)


def test_email_from_maps_to_from_(write) -> None:
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: smtp.example.com\n"
        "    from: \"소보 알림 <alerts@example.com>\"\n    to: [b@example.com]\n"
    )
    mail = load_settings(path).channel("mail")
    assert isinstance(mail, EmailChannel)
    assert mail.from_ == "소보 알림 <alerts@example.com>"
    assert mail.smtp_port == 587


def test_email_without_from_is_missing(write) -> None:
    path = write(
        "channels:\n  - id: mail\n    kind: email\n    smtp_host: smtp.example.com\n"
        "    to: [b@example.com]\n"
    )
    message = _error(path)
    assert "channels[0].from" in message
    assert "missing" in message


def test_unknown_channel_kind(write) -> None:
    message = _error(write("channels:\n  - id: pager\n    kind: pagerduty\n"))
    assert "channels[0]" in message
    assert "pagerduty" in message


def test_invalid_log_level(write) -> None:
    message = _error(write("log_level: verbose\n"))
    assert "log_level" in message


# --- environment overrides ---------------------------------------------------------------


_FILE_SCALARS = "redis_url: redis://from-file:6379/1\nlog_level: warning\nmetrics_port: 1234\n"


def test_file_scalars_used_without_env(write) -> None:
    settings = load_settings(write(_FILE_SCALARS))
    assert settings.redis_url == "redis://from-file:6379/1"
    assert settings.log_level == "warning"
    assert settings.metrics_port == 1234


def test_redis_url_env_overrides_file(monkeypatch: pytest.MonkeyPatch, write) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/2")
    settings = load_settings(write(_FILE_SCALARS))
    assert settings.redis_url == "redis://from-env:6379/2"
    assert settings.log_level == "warning"


@pytest.mark.parametrize(("env", "expected"), [("debug", "debug"), ("ERROR", "error")])
def test_log_level_env_overrides_file(monkeypatch: pytest.MonkeyPatch, write, env: str,
                                      expected: str) -> None:
    monkeypatch.setenv("SOKBO_LOG_LEVEL", env)
    settings = load_settings(write(_FILE_SCALARS))
    assert settings.log_level == expected
    assert settings.redis_url == "redis://from-file:6379/1"


def test_metrics_port_env_overrides_file(monkeypatch: pytest.MonkeyPatch, write) -> None:
    monkeypatch.setenv("SOKBO_METRICS_PORT", "9999")
    assert load_settings(write(_FILE_SCALARS)).metrics_port == 9999


def test_env_overrides_apply_to_an_empty_file(monkeypatch: pytest.MonkeyPatch, write) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/3")
    assert load_settings(write("")).redis_url == "redis://from-env:6379/3"


# --- file-level errors and defaults ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("redis_url: x\ncrawler:\n  per_host_delay: [1\n  x: : :\n", 4),
        ("log_level: info\nrules: b\n  c: d\n", 3),
        ("sources:\n  - id: a\n\turl: https://a.example/\n", 3),
    ],
)
def test_invalid_yaml_names_the_line(write, text: str, line: int) -> None:
    path = write(text)
    message = _error(path)
    assert str(path) in message
    assert f"line {line}" in message


def test_top_level_not_a_mapping(write) -> None:
    message = _error(write("- redis_url\n- rules\n"))
    assert "mapping" in message


def test_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.yaml")
    assert "nope.yaml" in message


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_gives_defaults(write, text: str) -> None:
    settings = load_settings(write(text))
    assert settings == Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.metrics_port == 9464
    assert settings.log_level == "info"
    assert settings.crawler.allow_private_networks is False
    assert settings.crawler.per_host_delay == 1.0
    assert settings.delivery.claim_idle == 60.0
    assert settings.delivery.max_deliveries == 5
    assert settings.streams.maxlen == 100_000
    assert settings.sources == settings.rules == settings.channels == []


def test_settings_are_frozen(write) -> None:
    settings = load_settings(write(""))
    with pytest.raises(ValidationError):
        settings.redis_url = "redis://elsewhere"  # type: ignore[misc]
