"""The controller's own HTTP endpoints: /metrics, /healthz, /readyz, /status (JSON).

Served by a :class:`~controller.runtime.bounded_http.BoundedHTTPServer`: idle connections are
closed after ``idle_timeout_s``, a request must arrive within ``read_timeout_s``, and at most
``max_connections`` are open at once (more get 503 at once), so idle or slow clients cannot
pile up threads. Scrapers and probes need one connection each.
"""

from __future__ import annotations

import json
import threading
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller.runtime.bounded_http import IDLE_TIMEOUT_S, READ_TIMEOUT_S, BoundedHTTPServer, BoundedRequestHandler

#: Connections open at once: a few scrapers and the kubelet's probes need far fewer.
STATUS_MAX_CONNECTIONS = 32


def parse_listen(listen: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """``0.0.0.0:8080``, ``[::1]:8080`` or ``:8080`` (``default_host``) -> (host, port), the port
    0-65535. Raises ValueError naming the expected form."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as {default_host}:8080 (a port from 0 to 65535), got {listen!r}")
    return host.strip("[]") or default_host, int(port)


class StatusServer:
    """Serves metrics and probes in a daemon thread.

    healthy: the process works (the scheduler thread is alive); ready: policies are loaded
    and every policy completed a cycle recently. Each check returns (ok, text). status: the
    JSON document of GET /status (per policy and target, see controller.runtime.status).
    """

    def __init__(self, listen: str, registry: CollectorRegistry, healthy: Callable[[], tuple[bool, str]],
                 ready: Callable[[], tuple[bool, str]], *, status: Callable[[], dict] | None = None,
                 max_connections: int = STATUS_MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S):
        host, port = parse_listen(listen)
        outer = self

        class Handler(BoundedRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                has_body = self.headers.get("Content-Length", "0").strip() not in ("", "0")
                if has_body or self.headers.get("Transfer-Encoding"):
                    self.close_connection = True  # a GET with a body: not read, so the connection cannot be reused
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif self.path in ("/healthz", "/readyz"):
                    ok, text = (outer.healthy if self.path == "/healthz" else outer.ready)()
                    self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
                elif self.path.split("?")[0] == "/status" and outer.status is not None:
                    try:
                        body = json.dumps(outer.status(), indent=1, allow_nan=False).encode() + b"\n"
                    except Exception as exc:  # a bug must not kill the server thread: say so
                        self._send(500, f"status failed: {type(exc).__name__}: {exc}\n".encode(),
                                   "text/plain; charset=utf-8")
                        return
                    self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics, /healthz, /readyz or /status\n",
                               "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # probes every few seconds: keep the logs quiet
                pass

        self.registry, self.healthy, self.ready, self.status = registry, healthy, ready, status
        self.server = BoundedHTTPServer((host, port), Handler, max_connections=max_connections,
                                        idle_timeout_s=idle_timeout_s, read_timeout_s=read_timeout_s)
        self.thread = threading.Thread(target=self.server.serve_forever, name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> "StatusServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
