"""A local HTTP file server on 127.0.0.1 for the download tests: Range requests, scripted failures."""
from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    drops: list[int] = field(default_factory=list)  # per request, in order: close after this many body bytes
    honour_range: bool = True


class FileServer:
    """Serves `routes[path]`; records (path, Range header) of every request in `requests`."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
                server.requests.append((path, self.headers.get("Range")))
                route = server.routes.get(path)
                if route is None:
                    return self._send(404, b"<html><body>not found</body></html>", "text/html")
                if route.status != 200:
                    return self._send(route.status, route.body, route.content_type)
                start, status, extra = 0, 200, {}
                spec = self.headers.get("Range")
                if spec and route.honour_range:
                    start = int(spec.removeprefix("bytes=").split("-")[0])
                    if start >= len(route.body):
                        return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(route.body)}"})
                    status = 206
                    extra = {"Content-Range": f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"}
                body = route.body[start:]
                drop = route.drops.pop(0) if route.drops else None
                self._send(status, body, route.content_type, extra, drop)

            def _send(self, status, body, content_type, extra=None, drop=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                if drop is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if drop is None else body[:drop])
                self.wfile.flush()
                if drop is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
