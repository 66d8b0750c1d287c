"""An HTTP/1.1 server that slow or idle clients cannot exhaust: per-request read deadlines,
an idle timeout on kept-alive connections and a bound on open connections.

Used by the controller's status server and by the simulated apiserver (``setpoint sim serve``).

- Each connection is served by one thread of a pool of ``max_connections`` threads. A
  connection accepted while all of them are busy is answered at once with ``busy_response``
  (429/503) and closed: it never waits in a queue behind slow clients.
- A kept-alive connection waits at most ``idle_timeout_s`` for the first byte of its next
  request, then it is closed.
- Once the first byte of a request has arrived, its request line, headers and body must all
  arrive within ``read_timeout_s`` (a deadline, not a per-read timeout: a client sending one
  byte a second cannot stretch it), else the connection is closed.
- Writing a response may take at most ``read_timeout_s`` too (a client that stops reading).
- With an ``ssl_context``, each connection's TLS handshake runs on its pool thread (never on the
  accept loop) and must finish within ``read_timeout_s`` (a deadline too). Connections beyond
  the bound are closed without an answer then: a busy response needs a handshake first.

Handlers derive from :class:`BoundedRequestHandler` and call ``body_read()`` once they have
read the request body, before doing the (possibly slow) work of answering it.
"""

from __future__ import annotations

import io
import select
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

#: Defaults, seconds and connections.
IDLE_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 128
#: Closing a connection: at most this long (s) and this much (bytes) read from a client still sending.
DRAIN_S = 0.5
DRAIN_MAX_BYTES = 256 * 1024


class RequestReadTimeout(TimeoutError):
    """The client did not send its whole request within the read deadline."""


class _DeadlineSocketIO(socket.SocketIO):
    """Socket reads that fail once ``deadline`` (time.monotonic() seconds) has passed; each read
    waits at most until the deadline. Without a deadline, the socket's own timeout applies."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock, "rb")
        self.deadline: float | None = None

    def readinto(self, b) -> int | None:
        if self.deadline is not None:
            remaining_s = self.deadline - time.monotonic()
            if remaining_s <= 0:
                raise RequestReadTimeout("the request was not received within the read timeout")
            self._sock.settimeout(remaining_s)
        return super().readinto(b)


class _SocketWriter(io.BufferedIOBase):
    """Unbuffered writes of whole buffers (``sendall``), as StreamRequestHandler's wfile."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes


class BoundedRequestHandler(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler with the idle timeout and read deadline of a BoundedHTTPServer."""

    protocol_version = "HTTP/1.1"
    server: "BoundedHTTPServer"

    def setup(self) -> None:
        self.connection = self.request
        try:  # headers and body go out in two writes: without this, a 40 ms delayed-ACK stall each
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except (OSError, AttributeError):  # not a TCP socket
            pass
        self._raw = _DeadlineSocketIO(self.connection)
        self.rfile = io.BufferedReader(self._raw)
        self.wfile = _SocketWriter(self.connection)

    def handle_one_request(self) -> None:
        # Wait for the next request with the idle timeout; from its first byte on, the deadline.
        self._raw.deadline = None
        self.connection.settimeout(self.server.idle_timeout_s)
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        self._raw.deadline = time.monotonic() + self.server.read_timeout_s
        super().handle_one_request()  # closes the connection on TimeoutError

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # its responses have no status line nor headers: refuse
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return True

    def body_read(self) -> None:
        """The request is fully read: lift the read deadline; writes get ``read_timeout_s``."""
        self._raw.deadline = None
        self.connection.settimeout(self.server.read_timeout_s)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.body_read()  # also for errors answered before the body was read (send_error)
        if self.request_version == "HTTP/0.9":  # not parsed (or refused): answer with a status line
            self.request_version = "HTTP/1.0"
        super().send_response(code, message)


class BoundedHTTPServer(HTTPServer):
    """HTTPServer with at most ``max_connections`` connections open, each on its own pool thread.

    ``busy_response``: the raw HTTP response (bytes) sent to connections beyond the bound.
    """

    allow_reuse_address = True
    request_queue_size = 128  # the accept loop is quick; this only absorbs bursts of connects

    def __init__(self, address: tuple[str, int], handler: type[BoundedRequestHandler], *,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 read_timeout_s: float = READ_TIMEOUT_S, busy_response: bytes | None = None,
                 ssl_context: ssl.SSLContext | None = None):
        if max_connections < 1 or idle_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("max_connections, idle_timeout_s and read_timeout_s must be positive")
        if ":" in address[0]:  # an IPv6 address ([::]:8080 on an IPv6-only cluster): HTTPServer binds IPv4 only
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.read_timeout_s = read_timeout_s
        self.ssl_context = ssl_context
        self.busy_response = busy_response or plain_response(503, "Service Unavailable",
                                                             "too many connections; retry shortly\n")
        self.pool = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="http-conn")
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.admitted = 0  # connections served so far
        self.refused = 0  # connections answered with busy_response

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            admitted = len(self._open) < self.max_connections
            if admitted:
                self._open.add(request)
                self.admitted += 1
            else:
                self.refused += 1
        if admitted:
            self.pool.submit(self._work, request, client_address)
        else:
            self._refuse(request)

    def _refuse(self, request: socket.socket) -> None:
        """Answer busy and close, without reading: the accept loop must never block here."""
        if self.ssl_context is not None:  # an answer needs a handshake, which could block: just close
            self.close_request(request)
            return
        try:
            request.settimeout(0.5)
            request.sendall(self.busy_response)
        except OSError:
            pass
        self.close_request(request)  # no draining: the accept loop must not wait

    def _work(self, request, client_address) -> None:
        try:
            if self.ssl_context is not None:
                raw, request = request, self._tls_handshake(request)
                with self._open_lock:  # wrapping detached the raw socket: track the TLS one
                    self._open.discard(raw)
                    self._open.add(request)
            self.finish_request(request, client_address)
        except (OSError, ValueError):
            pass  # the client went away, timed out or failed the handshake
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)

    def _tls_handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        """``sock`` wrapped in TLS once the handshake finished, within ``read_timeout_s`` in all
        (non-blocking steps: a client sending a byte a second cannot stretch it). RequestReadTimeout
        when it did not, ssl.SSLError when it failed."""
        tls = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            tls.setblocking(False)
            deadline = time.monotonic() + self.read_timeout_s
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    wait = ([tls], [])
                except ssl.SSLWantWriteError:
                    wait = ([], [tls])
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0 or not any(select.select(*wait, [], remaining_s)[:2]):
                    raise RequestReadTimeout("the TLS handshake did not finish within the read timeout")
        except BaseException:
            tls.close()  # it owns the connection now
            raise
        tls.setblocking(True)
        return tls

    def shutdown_request(self, request: socket.socket) -> None:
        """Send FIN, then read what the client still sends (bounded) before closing: closing with
        unread data resets the connection, and the client could lose the response (say a 413)."""
        try:
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + DRAIN_S
            drained = 0
            while drained < DRAIN_MAX_BYTES and (remaining_s := deadline - time.monotonic()) > 0:
                request.settimeout(remaining_s)
                chunk = request.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass
        self.close_request(request)

    def close_connections(self) -> None:
        """Shut open connections down, so that no thread outlives the server by more than a request."""
        with self._open_lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    def stop(self) -> None:
        """Stop serving (``serve_forever`` runs on another thread, if started) and close everything."""
        if getattr(self, "_serving", False):
            self.shutdown()
        self.close_connections()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.server_close()


def plain_response(code: int, reason: str, body: str | bytes, content_type: str = "text/plain; charset=utf-8",
                   headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, as bytes (for busy_response)."""
    data = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {code} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(data)}",
             "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
