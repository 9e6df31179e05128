#!/usr/bin/env python3
"""Serve a folder as a small local news site, for `make run` and the end-to-end tests.

Files are read on every request, so a test can add a feed entry while it runs.  In
``.xml`` files the placeholder ``{{BASE}}`` becomes this server's base URL, so feeds
can link to pages on the same server whatever port it got.  HTML is served as
``text/html`` with no charset parameter: pages must declare their own (as many
Korean sites do), which exercises the parser's <meta charset> path.  Every response
carries an ``ETag`` and a ``Last-Modified`` (the file's mtime) and a matching
``If-None-Match`` gets a 304, as real news sites answer sokbo's conditional GETs.

    python scripts/demo_site.py --root config/demo/site [--port 0] [--port-file F]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import os
import sys
from email.utils import formatdate
from pathlib import Path

TYPES = {".xml": "application/rss+xml", ".html": "text/html", ".txt": "text/plain"}


def make_handler(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "sokbo-demo-site/1"

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            # normpath, not resolve: ".." cannot climb out, symlinked pages still serve
            path = Path(os.path.normpath(root / self.path.split("?", 1)[0].lstrip("/")))
            if root not in path.parents or not path.is_file():
                self.send_error(404, "no such page")
                return
            body = path.read_bytes()
            if path.suffix == ".xml":
                host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
                body = body.replace(b"{{BASE}}", f"http://{host}".encode())
            etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    args = parser.parse_args()
    root = args.root.resolve()
    server = http.server.ThreadingHTTPServer((args.host, args.port), make_handler(root))
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(str(port))
    print(f"demo news site: http://{args.host}:{port}/ serving {root}", file=sys.stderr,
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
