"""Local stand-ins for the outside world: a news site, a Slack webhook, an SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SlackPost:
    at: float
    payload: dict


@dataclass
class SlackServer:
    """A Slack-compatible incoming webhook: records posts, answers from a script.

    ``script`` holds (status, headers, body) answers for the first posts; after it
    runs out every post gets 200 "ok".
    """

    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    posts: list[SlackPost] = field(default_factory=list)
    rejected: int = 0

    def answer(self, body: dict) -> tuple[int, dict[str, str], bytes]:
        """Take the next scripted answer for a post of *body* and record it (under a lock)."""
        status, headers, answer = self.script.pop(0) if self.script else (200, {}, b"ok")
        if status == 200:
            self.posts.append(SlackPost(time.monotonic(), body))
        else:
            self.rejected += 1
        return status, headers, answer

    def start(self) -> str:
        outer, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    status, headers, answer = outer.answer(body)
                time.sleep(getattr(outer, "delay", 0.0))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/secret"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=email.policy.default))
        return "250 OK"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting what it receives."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class NewsSite:
    """The demo news-site server (scripts/demo_site.py) over a folder the test owns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def add_page(self, name: str, source: Path | bytes) -> None:
        target = self.root / "news" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, target)
        else:
            target.write_bytes(source)

    def write_feed(self, name: str, title: str, items: list[tuple[str, str]], *,
                   encoding: str = "utf-8") -> None:
        """Write an RSS 2.0 feed of (page name, title) items, in *encoding*."""
        from xml.sax.saxutils import escape

        lines = [f'<?xml version="1.0" encoding="{encoding}"?>', '<rss version="2.0">',
                 f"<channel><title>{escape(title)}</title><link>{{{{BASE}}}}/</link>"]
        for page, item_title in items:
            lines.append(f"<item><title>{escape(item_title)}</title>"
                         f"<link>{{{{BASE}}}}/news/{page}</link></item>")
        lines.append("</channel></rss>\n")
        codec = "cp949" if encoding.lower() == "euc-kr" else encoding
        target = self.root / "feeds" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes("\n".join(lines).encode(codec))
        tmp.replace(target)

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "demo_site.py"), "--root", str(self.root),
             "--port", str(self.port)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("demo site did not start")

    def stop(self) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(5)


# --- appended for the notifier's pacing, burst and digest tests ----------------------


@dataclass
class SlackRequest:
    """One request a RecordingSlackServer received: when, how it was answered, the body."""

    at: float
    status: int
    payload: dict


@dataclass
class RecordingSlackServer(SlackServer):
    """A SlackServer that also keeps every request, answered 200 or not, in ``requests``.

    ``delay`` seconds pass between reading a request and answering it (a slow Slack).
    """

    requests: list[SlackRequest] = field(default_factory=list)
    delay: float = 0.0

    def answer(self, body: dict) -> tuple[int, dict[str, str], bytes]:
        status, headers, answer = super().answer(body)
        self.requests.append(SlackRequest(time.monotonic(), status, body))
        return status, headers, answer


class _RecordingInbox:
    """Keeps raw envelopes; leaves *drop* out of the EHLO reply; answers DATA from a script."""

    def __init__(self, drop: tuple[str, ...], replies: list[str], delay: float) -> None:
        self.drop = drop
        self.replies = replies
        self.delay = delay
        self.envelopes: list = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return [r for r in responses
                if not any(r[4:].upper().startswith(ext) for ext in self.drop)]

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        import asyncio

        await asyncio.sleep(self.delay)
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            self.envelopes.append(envelope)
        return reply


class RecordingSmtpServer:
    """An aiosmtpd server that keeps the raw DATA and MAIL options of what it accepts.

    It never announces SMTPUTF8 (aiosmtpd's default); *drop* removes more extensions
    from its EHLO reply (e.g. ``("8BITMIME",)``).  *replies* answer the first DATA
    commands (``"451 4.3.0 busy"``, ``"550 5.7.1 no"``); later ones get ``250 OK``.
    *delay* seconds pass before each DATA answer.
    """

    def __init__(self, *, drop: tuple[str, ...] = (), replies: list[str] | None = None,
                 delay: float = 0.0) -> None:
        self.inbox = _RecordingInbox(drop, list(replies or []), delay)
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def raw(self) -> list[bytes]:
        """The DATA of each accepted message, as received."""
        return [envelope.original_content for envelope in self.inbox.envelopes]

    @property
    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for raw in self.raw]

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
