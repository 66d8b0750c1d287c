"""A small HTTP/1.1 server with a bounded worker pool, for the simulated apiserver and its metrics.

An *app* is any object with ``handle(request: Request) -> Response``; the server only moves
bytes. Connections are kept alive (clients such as urllib3 pool them) but an idle connection
is closed after ``idle_timeout_s`` so it cannot hold a worker for long; ``stop()`` also shuts
open connections down so that no worker outlives the server by more than a request.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("setpoint.sim.http")

#: Largest request body accepted (bytes); bigger ones get 413.
MAX_BODY_BYTES = 3 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self):
        """The decoded JSON body (None when empty); ValueError when it is not JSON."""
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj) -> "Response":
        return cls(status, json.dumps(obj, separators=(",", ":")).encode())

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> "Response":
        return cls(status, text.encode(), content_type)


class App(Protocol):
    def handle(self, request: Request) -> Response: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: "PooledHTTPServer"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s
        super().setup()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(Response.json(413, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                           "message": "request entity too large", "reason": "RequestEntityTooLarge",
                                           "code": 413}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            response = self.server.app.handle(request)
        except Exception:  # the app has a bug: answer 500 rather than drop the connection
            log.exception("unhandled error serving %s %s", self.command, self.path)
            response = Response.json(500, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                           "message": "internal error", "reason": "InternalError", "code": 500})
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose connections are served by a bounded ThreadPoolExecutor."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, max_workers: int = 32, idle_timeout_s: float = 5.0):
        super().__init__(address, _Handler)
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sim-http")
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        self.pool.submit(self._work, request, client_address)

    def _work(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except (ConnectionError, TimeoutError, OSError):
            pass  # the client went away
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class HttpService:
    """Runs a PooledHTTPServer on a background thread: ``start()``, ``stop()``, ``port``."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, max_workers: int = 32,
                 idle_timeout_s: float = 5.0):
        self.server = PooledHTTPServer((host, port), app, max_workers, idle_timeout_s)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-http-{self.port}", daemon=True)

    @property
    def host(self) -> str:
        return self.server.server_address[0]

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "HttpService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_connections()
        self.server.pool.shutdown(wait=True, cancel_futures=True)
        self.server.server_close()
        self._thread.join(timeout=5)
