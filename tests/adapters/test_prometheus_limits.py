"""PrometheusSource's bounds: every request ends by its deadline (headers and body, however
slowly they come), no answer is read past its size bound, and the timeout itself is bounded.

The real Prometheus (loaded with history by promtool) answers the ordinary queries and the
answers larger than a lowered size bound, both declared (Content-Length) and streamed (chunked).
``FaultServer``, a raw loopback HTTP server, gives only what a real Prometheus cannot be made to
give on demand: headers or a body that trickle in, an answer that never ends, a Content-Length it
never sends, over plain HTTP and TLS.
"""

from __future__ import annotations

import contextlib
import os
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from controller.adapters.prometheus import (MAX_TIMEOUT_S, QUERY_PATH, QUERY_RANGE_PATH, PrometheusConfig,
                                            PrometheusSource)
from controller.cli import app
from controller.errors import PrometheusBadResponse, PrometheusUnreachable
from controller.model import TargetRef
from tests.support.prometheus_server import prometheus_server, self_signed_cert

START = 1_793_491_200  # 2026-11-01T00:00:00Z
WEB = [TargetRef("shop", "web")]
OK_BODY = b'{"status":"success","data":{"resultType":"vector","result":[' \
          b'{"metric":{"namespace":"shop","deployment":"web"},"value":[1793491200,"12"]}]}}'


# ---------------------------------------------------------------------------------------------
# The real server
# ---------------------------------------------------------------------------------------------

def history(series: int = 40, points: int = 240) -> str:
    """OpenMetrics text: app_rps for ``series`` workloads of shop, ``points`` samples 15 s apart."""
    lines = ["# TYPE app_rps gauge"]
    for i in range(series):
        name = f'app_rps{{namespace="shop",deployment="w{i:03d}"}}'
        lines += [f"{name} {100 + i}.25 {START + 15 * k}" for k in range(points)]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=history(), retention="3650d") as s:
        yield s


# ---------------------------------------------------------------------------------------------
# The fault server
# ---------------------------------------------------------------------------------------------

DRIP_S = 0.05  # one byte (or one chunk) this often
MOST_WRITES = 400  # a faulty answer stops by itself after this many writes (20 s of dripping)


class FaultServer:
    """HTTP/1.1 on 127.0.0.1 (TLS with ``tls``) answering request k with ``modes[k]`` (the last
    repeats): ``ok`` (a vector), ``503``, ``drip-headers`` (a status line, then one header byte
    at a time), ``drip-body`` (headers with Content-Length, then one body byte at a time),
    ``drip-chunked`` (one 1-byte chunk at a time), ``endless`` (1 MiB chunks, never a last one),
    ``false-length`` (Content-Length 10 GB, then nothing)."""

    def __init__(self, *modes: str, tls: tuple | None = None):
        self.modes = list(modes)
        self.requests = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        fault = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with contextlib.suppress(OSError, ValueError):
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    fault.answer(self.wfile, fault.next_mode())

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, address = super().get_request()
                if tls is not None:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.load_cert_chain(*tls)
                    sock = context.wrap_socket(sock, server_side=True)
                return sock, address

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def next_mode(self) -> str:
        with self._lock:
            self.requests += 1
            return self.modes[min(self.requests, len(self.modes)) - 1]

    def answer(self, out, mode: str) -> None:
        head = "HTTP/1.1 {}\r\nContent-Type: application/json\r\nConnection: close\r\n{}\r\n"
        if mode in ("ok", "503"):
            body = OK_BODY if mode == "ok" else b'{"status":"error","errorType":"unavailable","error":"busy"}'
            out.write(head.format("200 OK" if mode == "ok" else "503 Service Unavailable",
                                  f"Content-Length: {len(body)}\r\n").encode() + body)
            return
        first, each = {
            "drip-headers": ("HTTP/1.1 200 OK\r\nX-Slow: ", b"x"),
            "drip-body": (head.format("200 OK", "Content-Length: 1000000\r\n"), b" "),
            "drip-chunked": (head.format("200 OK", "Transfer-Encoding: chunked\r\n"), b"1\r\n \r\n"),
            "endless": (head.format("200 OK", "Transfer-Encoding: chunked\r\n"),
                        b"100000\r\n" + b" " * 2**20 + b"\r\n"),
            "false-length": (head.format("200 OK", "Content-Length: 10000000000\r\n"), b""),
        }[mode]
        out.write(first.encode())
        for _ in range(MOST_WRITES):
            if self.closing.wait(0 if mode == "endless" else DRIP_S):
                return
            out.write(each)  # raises once the client has gone: the handler ends

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def fault_server(*modes: str, tls: tuple | None = None):
    server = FaultServer(*modes, tls=tls)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory):
    try:
        return self_signed_cert(tmp_path_factory.mktemp("tls"))
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"cannot make a test certificate: {exc}")


# ---------------------------------------------------------------------------------------------
# 1. Every request ends by its deadline
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("modes, call, tls, words", [
    pytest.param(["drip-body"], "query", False, ["1 attempt within 0.5s", "no complete answer within 0.5s"],
                 id="body-one-byte-at-a-time"),
    pytest.param(["drip-headers"], "query", False, ["no complete answer within 0.5s"], id="headers-one-byte-at-a-time"),
    pytest.param(["drip-chunked"], "query", False, ["no complete answer within 0.5s"], id="chunked-one-byte-at-a-time"),
    pytest.param(["drip-body"], "query_range", False, ["no complete answer within 0.5s"],
                 id="range-query-body-one-byte-at-a-time"),
    pytest.param(["drip-body"], "query", True, ["no complete answer within 0.5s"], id="tls-body-one-byte-at-a-time"),
    # retries share the query's deadline: a 503, a backoff, then a second attempt that trickles
    pytest.param(["503", "drip-body"], "query", False, ["2 attempts within 0.5s", "no complete answer within 0.4"],
                 id="a-retry-gets-what-is-left-of-the-deadline"),
])
def test_an_answer_that_trickles_in_ends_at_the_deadline(tls_cert, modes, call, tls, words):
    """Socket timeouts bound each read, never a request: a byte every 50 ms kept one going for
    minutes. Now the whole query (connect, headers, body, retries) ends by its timeout_s."""
    with fault_server(*modes, tls=tls_cert if tls else None) as server:
        config = PrometheusConfig.from_url(server.url, timeout_s=0.5, backoff_s=0.01, retries=2,
                                           ca_file=str(tls_cert[0]) if tls else None)
        with PrometheusSource(config) as source:
            started = time.monotonic()
            with pytest.raises(PrometheusUnreachable) as info:
                if call == "query":
                    source.query("app_rps", WEB, START)
                else:
                    source.query_range("app_rps", START, START + 600, 15, timeout_s=0.5)
            elapsed = time.monotonic() - started
    # the drip alone would last 20 s; the slack above 0.5 s is a loaded machine's scheduling (0.87 s with
    # two CI runs side by side at load 18)
    assert 0.45 <= elapsed < 2.0, elapsed
    for word in words:
        assert word in str(info.value), str(info.value)
    assert f"at {server.url}" in str(info.value) and "cannot connect" not in str(info.value)


def test_the_deadline_holds_through_an_http_proxy():
    """requests sends the query to the proxy (here the fault server, which drips); the request to
    the proxy is stopped as a direct one is."""
    with fault_server("drip-body") as proxy:
        session = requests.Session()
        session.proxies = {"http": proxy.url}
        with PrometheusSource(PrometheusConfig.from_url("http://prometheus.invalid:9090", timeout_s=0.5),
                              session=session) as source:
            started = time.monotonic()
            with pytest.raises(PrometheusUnreachable, match="no complete answer within 0.5s"):
                source.query("app_rps", WEB, START)
            assert time.monotonic() - started < 0.8
        assert proxy.requests == 1


def test_the_source_recovers_after_a_stalled_answer():
    """The stopped connection is dropped, not reused: the next query gets a fresh one."""
    with fault_server("drip-body", "ok") as server, PrometheusSource(
            PrometheusConfig.from_url(server.url, timeout_s=0.5, retries=0)) as source:
        with pytest.raises(PrometheusUnreachable, match="no complete answer"):
            source.query("app_rps", WEB, START)
        assert source.query("app_rps", WEB, START).values.tolist() == [12.0]


def test_deadlines_leave_no_timer_threads_behind(prom):
    """Each request's watchdog ends with the request, stopped in time or not."""
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5)) as source:
        for _ in range(30):
            assert source.query('app_rps{deployment="w001"}', [TargetRef("shop", "w001")], START + 600).present.all()
    time.sleep(0.05)
    assert [t for t in threading.enumerate() if isinstance(t, threading.Timer)] == []


# ---------------------------------------------------------------------------------------------
# 2. No answer is read past its size bound
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expr, limit, words", [
    pytest.param(QUERY_PATH, "vector(1)", 50, ["at most 50 bytes", "got 101 bytes (its Content-Length)"],
                 id="instant-answer-refused-on-its-content-length"),
    pytest.param(QUERY_PATH, "app_rps", 2048, ["got more than 2,048 bytes"],
                 id="instant-answer-refused-while-streaming"),
    pytest.param(QUERY_RANGE_PATH, "app_rps", 65536, ["got more than 65,536 bytes", "fewer steps"],
                 id="range-answer-refused-while-streaming"),
])
def test_an_answer_larger_than_the_bound_is_refused_not_retried(prom, path, expr, limit, words):
    """Against the real Prometheus, with the bound lowered: it sends a Content-Length for short
    answers (< 2 KiB) and streams longer ones (chunked)."""
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5), max_answer_bytes={path: limit}) as source:
        before = prom.http_requests(path)
        with pytest.raises(PrometheusBadResponse) as info:
            if path == QUERY_PATH:
                source.query(expr, WEB, START + 600)
            else:
                source.query_range(expr, START, START + 3585, 15)
        assert prom.http_requests(path) - before == 1, "too large is permanent: not retried"
    for word in [*words, f"query {expr!r} at {prom.url}", "fewer series", "sum by (namespace, deployment)"]:
        assert word in str(info.value), str(info.value)


def test_answers_within_the_bound_are_read_whole(prom):
    """40 series x 240 samples (~0.3 MB) under the default bounds."""
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5)) as source:
        series = source.query_range('app_rps{namespace="shop"}', START, START + 3585, 15)
    assert len(series) == 40 and all(s.times.size == 240 for s in series)


@pytest.mark.parametrize("mode, words", [
    pytest.param("endless", ["at most 4 MiB", "got more than 4,194,304 bytes"], id="an-answer-that-never-ends"),
    pytest.param("false-length", ["got 10,000,000,000 bytes (its Content-Length)"],
                 id="a-content-length-beyond-the-bound-is-not-waited-for"),
])
def test_faulty_answers_stop_at_the_size_bound(mode, words):
    with fault_server(mode) as server, PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=5),
                                                        max_answer_bytes={QUERY_PATH: 4 << 20}) as source:
        started = time.monotonic()
        with pytest.raises(PrometheusBadResponse) as info:
            source.query("app_rps", WEB, START)
        assert time.monotonic() - started < 2.0
    for word in words:
        assert word in str(info.value), str(info.value)


# ---------------------------------------------------------------------------------------------
# 3. The timeout itself is bounded, and named by the option that sets it
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["inf", "1e12", "nan", "0", "-1", f"{MAX_TIMEOUT_S + 1:g}"])
def test_backtest_prometheus_timeout_out_of_bounds_names_the_option(tmp_path, text):
    """inf and 1e12 overflowed socket.settimeout (exit 70); nan, 0 and -1 named the internal field."""
    (policy := tmp_path / "p.yaml").write_text("not read: the option is checked first\n")
    result = CliRunner().invoke(app, ["backtest", "--policy", str(policy), "--prometheus", "http://127.0.0.1:9",
                                      "--from", "now-1h", "--prometheus-timeout", text])
    assert result.exit_code == 1, result.output
    assert f"--prometheus-timeout: expected seconds > 0 and <= 3600, got {float(text)!r}" in result.output
    assert "timeout_s" not in result.output


@pytest.mark.parametrize("text", ["inf", "nan"])
def test_run_prometheus_timeout_out_of_bounds_is_a_one_line_error(tmp_path, text):
    """The live controller's option goes through the same check: exit 1, not 70 (its own process:
    ``run`` sets up logging for the process)."""
    (policy := tmp_path / "p.yaml").write_text("not read: the option is checked first\n")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--once", "--policies", str(policy),
                           "--prometheus", "http://127.0.0.1:9", "--prometheus-timeout", text],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert proc.returncode == 1, proc.stderr
    assert f"expected seconds > 0 and <= 3600, got {float(text)!r}" in proc.stderr
    assert "Traceback" not in proc.stderr
