"""A small HTTP/1.1 server for the simulated apiserver and its metrics, hardened against
slow, idle and malformed clients (see :mod:`controller.runtime.bounded_http`).

An *app* is any object with ``handle(request: Request) -> Response``; the server only moves
bytes. Connections are kept alive (clients such as urllib3 pool them) but an idle connection
is closed after ``idle_timeout_s``; a request must arrive whole within ``read_timeout_s``;
at most ``max_connections`` are open at once (more get 429 with a Status at once).
Malformed requests get a Kubernetes Status: 400 (bad request line, headers, Content-Length,
a body shorter than its Content-Length, or body encoding), 411 (chunked body), 413 (body over :data:`MAX_BODY_BYTES`), 431 (headers
too large). ``stop()`` also shuts open connections down so that no thread outlives the
server by more than a request. With an ``ssl_context`` it serves HTTPS (the handshake bounded
by ``read_timeout_s``). A Response with a ``stream`` is sent chunked, chunk by chunk (watches).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import numpy as np

from controller.runtime.bounded_http import (IDLE_TIMEOUT_S, MAX_CONNECTIONS, READ_TIMEOUT_S, BoundedHTTPServer,
                                             BoundedRequestHandler, plain_response)
from simulators.kubeapi.objects import STATUS_REASONS, status_body

log = logging.getLogger("setpoint.sim.http")

#: Largest request body accepted (bytes, the real apiserver's limit); bigger ones get 413.
MAX_BODY_BYTES = 3 * 1024 * 1024
#: Deepest JSON nesting accepted in a request body (Kubernetes objects nest ~10 deep).
MAX_JSON_DEPTH = 100

_DIGITS = re.compile(r"[0-9]{1,18}")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def nesting_depth(valid_json: bytes) -> int:
    """How deep arrays/objects nest in ``valid_json`` (UTF-8 text that parsed; brackets in
    strings do not count). Linear: strings are cut out by a regex that cannot backtrack on
    valid JSON, then the brackets are summed by numpy."""
    brackets = _OPEN[np.frombuffer(_STRING.sub(b"", valid_json), np.uint8)]
    return int(np.cumsum(brackets, dtype=np.int64).max(initial=0))


def decode_json_body(body: bytes, max_depth: int = MAX_JSON_DEPTH, object_pairs_hook=None):
    """The JSON value of a request body (None when blank). ValueError saying what is wrong when
    it is not UTF-8, not JSON, or nested deeper than ``max_depth``. ``object_pairs_hook``: as
    json.loads's (objects as their key-value pairs, duplicates kept)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the request body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})") \
            from None
    if not text.strip():
        return None
    too_deep = ValueError(f"the request body nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:  # the C parser guards its recursion: deep input fails fast, not with a crash
        raise too_deep from None
    if isinstance(value, (dict, list)) and nesting_depth(body) > max_depth:
        raise too_deep
    return value


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self, object_pairs_hook=None):
        """The decoded JSON body (None when empty); ValueError when it is not UTF-8 JSON or too deep.
        ``object_pairs_hook``: as json.loads's."""
        return decode_json_body(self.body, object_pairs_hook=object_pairs_hook)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: A streamed body (a watch): chunks sent with chunked transfer encoding instead of ``body``.
    stream: Iterable[bytes] | None = None
    #: Warnings for the client, each sent as its own ``Warning: 299 - "text"`` header (see warning_headers).
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, obj) -> "Response":
        return cls(status, json.dumps(obj, separators=(",", ":")).encode())

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> "Response":
        return cls(status, text.encode(), content_type)

    @classmethod
    def status(cls, code: int, message: str) -> "Response":
        """A Kubernetes Status (``status: Failure``) with the reason of ``code``."""
        return cls.json(code, status_body(code, _reason(code), message))


#: The apiserver's bounds on a response's warnings (runes): past TOTAL, every warning is cut to ITEM.
WARNINGS_TOTAL_RUNES = 4 * 1024
WARNING_ITEM_RUNES = 256


def warning_headers(texts: Iterable[str]) -> list[str]:
    """The ``Warning`` header values of ``texts``, as the apiserver's warning recorder writes them:
    ``299 - "text"`` (``"`` and ``\\`` escaped), each text once, none empty or with a control
    character; once they pass WARNINGS_TOTAL_RUNES, all are cut to WARNING_ITEM_RUNES and those past
    the total again are dropped. The values are UTF-8 bytes carried as latin-1 text (what
    http.server writes as they are)."""
    seen: set[str] = set()
    kept: list[str] = []
    written, truncating = 0, False
    for text in texts:
        if not text or text in seen or any(unicodedata.category(ch) == "Cc" for ch in text):
            continue
        if truncating and written >= WARNINGS_TOTAL_RUNES:
            break
        seen.add(text)
        kept.append(text)
        if truncating or written + len(text) <= WARNINGS_TOTAL_RUNES:
            written += min(len(text), WARNING_ITEM_RUNES) if truncating else len(text)
            continue
        truncating, written = True, sum(min(len(t), WARNING_ITEM_RUNES) for t in kept)
    cut = [t[:WARNING_ITEM_RUNES] if truncating else t for t in kept]
    return [_warning_value(t) for t in cut]


def _warning_value(text: str) -> str:
    """One Warning header value: code 299, no agent, the quoted text."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'.encode("utf-8").decode("latin-1")


def _reason(code: int) -> str:
    extra = {408: "Timeout", 411: "LengthRequired", 413: "RequestEntityTooLarge",
             431: "RequestHeaderFieldsTooLarge", 501: "NotImplemented", 505: "HTTPVersionNotSupported"}
    return STATUS_REASONS.get(code) or extra.get(code) or re.sub(r"[^A-Za-z]", "", HTTPStatus(code).phrase)


class App(Protocol):
    def handle(self, request: Request) -> Response: ...


class _BadBody(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.response = Response.status(code, message)


class _Handler(BoundedRequestHandler):
    server: "PooledHTTPServer"

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadBody as bad:
            self.close_connection = True  # the rest of the body, if any, is not read
            self._send(bad.response)
            return
        self.body_read()
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            response = self.server.app.handle(request)
        except Exception:  # the app has a bug: answer 500 rather than drop the connection
            log.exception("unhandled error serving %s %s", self.command, self.path)
            response = Response.status(500, "internal error")
        self._send(response)

    def _read_body(self) -> bytes:
        """The request body, by its Content-Length. _BadBody when the framing is unusable."""
        if self.headers.get("Transfer-Encoding"):
            raise _BadBody(411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return b""
        if len(values) > 1:
            raise _BadBody(400, "conflicting Content-Length headers")
        value = values.pop()
        if not _DIGITS.fullmatch(value):
            raise _BadBody(400, f"invalid Content-Length {value[:40]!r}: expected a non-negative integer")
        length = int(value)
        if length > MAX_BODY_BYTES:
            raise _BadBody(413, f"the request body of {length} bytes is larger than the limit of {MAX_BODY_BYTES}")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client closed early: a partial body must never be acted on
            raise _BadBody(400, f"the request body ended after {len(body)} of its {length} bytes")
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors of the HTTP layer (bad request line, headers): a Status, then close."""
        self.close_connection = True
        try:
            self._send(Response.status(code, message or HTTPStatus(code).phrase))
        except OSError:
            pass

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if response.stream is not None:
            self._send_stream(response)
            return
        self.send_header("Content-Length", str(len(response.body)))
        for k, v in response.headers.items():
            self.send_header(k, v)
        for value in warning_headers(response.warnings):
            self.send_header("Warning", value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _send_stream(self, response: Response) -> None:
        """Headers, then each chunk of ``response.stream`` as it comes (each write bounded by the
        read timeout), then the last chunk; the connection stays usable."""
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.end_headers()
        chunks = iter(response.stream)
        try:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception:  # the stream has a bug: end it cleanly (the headers are gone already)
                    log.exception("the response stream of %s %s failed; ending it", self.command, self.path)
                    break
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(response.stream, "close", None)
            if close:
                close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)


def _busy_response() -> bytes:
    body = json.dumps(status_body(429, "TooManyRequests", "too many open connections; retry shortly"))
    return plain_response(429, "Too Many Requests", body, "application/json", {"Retry-After": "1"})


class PooledHTTPServer(BoundedHTTPServer):
    """A BoundedHTTPServer serving an App (at most ``max_connections`` at once, more get 429)."""

    def __init__(self, address: tuple[str, int], app: App, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S,
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__(address, _Handler, max_connections=max_connections, idle_timeout_s=idle_timeout_s,
                         read_timeout_s=read_timeout_s, busy_response=_busy_response(), ssl_context=ssl_context)
        self.app = app


class HttpService:
    """Runs a PooledHTTPServer on a background thread: ``start()``, ``stop()``, ``port``; HTTPS
    when given an ``ssl_context``."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S,
                 ssl_context: ssl.SSLContext | None = None):
        self.server = PooledHTTPServer((host, port), app, max_connections, idle_timeout_s, read_timeout_s,
                                       ssl_context)
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
        scheme = "https" if self.server.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> "HttpService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
