"""A small scripted HTTP server for crawler tests: answers from a function, records requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: ``answer(path, headers) -> (status, headers, body)``
Answer = Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]


@dataclass
class Seen:
    path: str
    user_agent: str


@dataclass
class StubServer:
    """An HTTP/1.1 server on 127.0.0.1 whose GETs are answered by *answer*.

    ``requests`` records each GET's path and User-Agent, in order.
    """

    answer: Answer
    requests: list[Seen] = field(default_factory=list)
    base: str = ""

    def start(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(Seen(self.path, headers.get("user-agent", "")))
                status, extra, body = outer.answer(self.path, headers)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.base

    def hits(self, path: str) -> int:
        """Return how many GETs asked for *path*."""
        return sum(1 for seen in self.requests if seen.path == path)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
