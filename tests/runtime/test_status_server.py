"""The controller's /metrics, /healthz, /readyz server against idle and slow clients: the
threads stay bounded, idle connections are closed after the timeout, connections beyond the
bound get 503 at once, and a real Prometheus still scrapes it.

Loopback only; timeouts are set short (about a second) so that each test takes a few seconds.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Gauge

from controller.runtime.http import StatusServer
from tests.support.prometheus_server import prometheus_server

TIMEOUT_S = 5.0


def status_server(registry: CollectorRegistry | None = None, **options) -> StatusServer:
    return StatusServer("127.0.0.1:0", registry or CollectorRegistry(), lambda: (True, "ok"),
                        lambda: (False, "no cycle yet"), **options).start()


def get(sock: socket.socket, path: str) -> tuple[int, bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def read_until_closed(sock: socket.socket, timeout_s: float = TIMEOUT_S) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it does not)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def wait_until(condition, timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_300_idle_connections_keep_threads_bounded_and_are_closed_after_the_idle_timeout():
    threads_before = threading.active_count()
    server = status_server(max_connections=16, idle_timeout_s=5.0)
    conns: list[socket.socket] = []
    try:
        for _ in range(10):  # in batches the accept loop keeps up with (it shares this process' GIL)
            conns += [socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) for _ in range(30)]
            assert wait_until(lambda: server.server.admitted + server.server.refused == len(conns))
        assert (server.server.admitted, server.server.refused) == (16, 284)
        assert threading.active_count() <= threads_before + 16 + 1  # + the accept loop
        answers = [read_until_closed(c) for c in conns]  # all closed: 503 at once, or idle timeout
        assert sum(a.startswith(b"HTTP/1.1 503 ") for a in answers) == 284
        assert sum(a == b"" for a in answers) == 16
        assert wait_until(lambda: server.server.open_connections == 0)
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
            assert get(sock, "/healthz") == (200, b"ok\n")
        assert threading.active_count() <= threads_before + 16 + 1
    finally:
        for c in conns:
            c.close()
        server.stop()


def test_a_request_trickling_in_is_cut_off_at_the_read_timeout():
    server = status_server(read_timeout_s=1.0, idle_timeout_s=5.0)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
            started = time.monotonic()
            closed = False
            for byte in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: zzzzzzzzzzzzzzzzzzzz":
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.25)
                if time.monotonic() - started > 4.0:
                    break
            assert closed or read_until_closed(sock) == b""  # closed without an answer
            assert time.monotonic() - started < 4.5  # the 1 s deadline, not the 5 s idle timeout per byte
        assert wait_until(lambda: server.server.open_connections == 0)
    finally:
        server.stop()


def test_keep_alive_serves_several_requests_on_one_connection():
    server = status_server()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
            assert get(sock, "/healthz") == (200, b"ok\n")
            assert get(sock, "/readyz") == (503, b"no cycle yet\n")
            assert get(sock, "/nope")[0] == 404
            assert get(sock, "/metrics")[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize("raw,code", [
    pytest.param(b"GARBAGE\r\n\r\n", 400, id="bad-request-line"),
    pytest.param(b"GET /metrics\r\n\r\n", 400, id="http-0.9"),
    pytest.param(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 501, id="post"),
])
def test_malformed_requests_get_an_error_status(raw, code):
    server = status_server()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(raw)
            assert read_until_closed(sock).startswith(f"HTTP/1.1 {code} ".encode())
    finally:
        server.stop()


def test_a_real_prometheus_scrapes_it_with_the_short_idle_timeout():
    registry = CollectorRegistry()
    Gauge("setpoint_test_value", "A value for the scrape test.", registry=registry).set(42)
    server = status_server(registry, idle_timeout_s=0.5, read_timeout_s=1.0, max_connections=4)
    try:
        with prometheus_server([f"127.0.0.1:{server.port}"], scrape_interval="1s") as prom:
            prom.wait_for('setpoint_test_value{job="test"} == 42', timeout_s=20)
            # scrapes go on after connections were closed as idle (0.5 s < the 1 s interval)
            result = prom.wait_for('count_over_time(up{job="test"}[1m]) >= 4', timeout_s=15)
            assert result
            assert prom.query('min_over_time(up{job="test"}[1m])')["result"][0]["value"][1] == "1"
    finally:
        server.stop()
