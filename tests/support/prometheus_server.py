"""A real Prometheus server for tests and benchmarks, on a loopback port, with bounded waits.

Three pieces, usable alone:

- ``PrometheusServer``: writes a config into a work directory, starts ``/usr/bin/prometheus`` on
  ``127.0.0.1:<free port>`` in its own process group, waits for ``/-/ready``, and stops it
  (SIGTERM to the group, then SIGKILL). ``stop()`` / ``start()`` bring it down and back on the
  same port and data directory, so a test can see a Prometheus outage and the recovery.
  ``load_openmetrics()`` backfills history with ``promtool tsdb create-blocks-from openmetrics``
  (while stopped: Prometheus reads new blocks at start).
- ``prometheus_server(...)``: a context manager for tests that skips when the binary is missing
  (fails instead when ``SETPOINT_REQUIRE_PROMETHEUS=1``) and never leaves a process behind.
- ``MetricsExporter``: a tiny exposition-format endpoint whose text a test controls, and
  ``write_openmetrics()`` to write history files for ``load_openmetrics()``.

Nothing here listens on anything but 127.0.0.1, and every wait is bounded.

Timing to plan for: Prometheus is ready ~0.2 s after start, but it applies scrape targets only
on its service-discovery tick (5 s), so the first scrape lands ~5-6 s after a start. Tests
that need data at once load it as history instead; tests that scrape share one server.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

PROMETHEUS_BIN = os.environ.get("SETPOINT_PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("SETPOINT_PROMTOOL_BIN", "/usr/bin/promtool")
REQUIRE_ENV = "SETPOINT_REQUIRE_PROMETHEUS"
LOOPBACK = "127.0.0.1"


class PrometheusNotInstalled(RuntimeError):
    """The prometheus (or promtool) binary is not where we expected it."""


class PrometheusStartError(RuntimeError):
    """Prometheus exited or did not become ready in time; the message holds the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint for Prometheus to scrape: ``address`` is ``127.0.0.1:PORT``."""

    address: str
    job: str = "test"
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, target: "ScrapeTarget | str") -> "ScrapeTarget":
        return target if isinstance(target, ScrapeTarget) else cls(address=target)


def render_config(targets: Sequence[ScrapeTarget], scrape_interval: str) -> str:
    """prometheus.yml text (JSON is valid YAML). One job per (job, path); labels kept as exposed."""
    jobs: dict[tuple[str, str], list[dict]] = {}
    for t in targets:
        jobs.setdefault((t.job, t.metrics_path), []).append({"targets": [t.address], "labels": dict(t.labels)})
    scrape_configs = [
        # honor_labels: keep the exporter's own labels (namespace, deployment...) as a workload's
        # exporter would expose them, instead of renaming clashes to exported_*.
        {"job_name": job if i == 0 else f"{job}-{i}", "metrics_path": path, "honor_labels": True,
         "static_configs": statics}
        for i, ((job, path), statics) in enumerate(jobs.items())
    ]
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "scrape_configs": scrape_configs,
    }
    return json.dumps(config, indent=2)


def http_get(url: str, timeout_s: float = 2.0, auth: tuple[str, str] | None = None,
             method: str = "GET") -> tuple[int, bytes]:
    """(status, body) of a GET (or ``method``); status 0 when nothing answered.

    For https the certificate is not verified: this only probes our own loopback server.
    """
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
    try:
        req = urllib.request.Request(url, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


# Servers still running at interpreter exit are killed: a crashed test run must not leave a
# prometheus process behind.
_LIVE: "weakref.WeakSet[PrometheusServer]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


class PrometheusServer:
    """One Prometheus process on 127.0.0.1, with its config, data and log under ``workdir``.

    ``port`` 0 picks a free port once; later ``start()`` calls reuse it, and the data directory,
    so samples written before a ``stop()`` are still there after the next ``start()``.
    """

    def __init__(self, workdir: str | Path, scrape_targets: Iterable[ScrapeTarget | str] = (),
                 scrape_interval: str = "1s", retention: str = "1d", port: int = 0,
                 ready_timeout_s: float = 20.0, extra_args: Sequence[str] = (),
                 web_config: Mapping | None = None, probe_auth: tuple[str, str] | None = None,
                 binary: str = PROMETHEUS_BIN, promtool: str = PROMTOOL_BIN):
        self.workdir = Path(workdir)
        self.scrape_targets = [ScrapeTarget.of(t) for t in scrape_targets]
        self.scrape_interval = scrape_interval
        self.retention = retention
        self.ready_timeout_s = ready_timeout_s
        self.extra_args = tuple(extra_args)
        self.binary = binary
        self.promtool = promtool
        # web_config: Prometheus' --web.config.file content (tls_server_config, basic_auth_users);
        # probe_auth: the (user, password) our own readiness probes and reads use then.
        self.web_config = dict(web_config) if web_config else None
        self.probe_auth = probe_auth
        self._port_fixed = port != 0
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None
        self._log = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)

    # -- paths and addresses --------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.web_config and "tls_server_config" in self.web_config else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------
    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
            *([f"--web.config.file={self.workdir / 'web.yml'}"] if self.web_config else []),
            *self.extra_args,
        ]

    def start(self) -> "PrometheusServer":
        """Start and wait for ``/-/ready`` (at most ``ready_timeout_s``). No-op when running."""
        if self.running:
            return self
        if not os.access(self.binary, os.X_OK):
            raise PrometheusNotInstalled(f"expected an executable Prometheus at {self.binary}, found none")
        self.config_path.write_text(render_config(self.scrape_targets, self.scrape_interval))
        if self.web_config:
            (self.workdir / "web.yml").write_text(json.dumps(self.web_config, indent=2))
        # The port was free when picked but another process may have taken it since: on the
        # first start with a port we picked ourselves, try a fresh one (bounded: 3 tries).
        tries = 1 if self._port_fixed else 3
        for attempt in range(tries):
            try:
                self._launch()
                self._wait_ready()
                self._port_fixed = True  # from now on stop()/start() keep this port
                return self
            except PrometheusStartError:
                self.kill()
                if attempt == tries - 1 or "address already in use" not in self.log_tail():
                    raise
                self.port = free_port()
        return self

    def _launch(self) -> None:
        self._log = open(self.log_path, "ab")
        # start_new_session: Prometheus gets its own process group, so stop() can signal the
        # group and nothing it spawned outlives it.
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        _LIVE.add(self)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrometheusStartError(f"prometheus exited with code {self._proc.returncode} before it was "
                                           f"ready:\n{self.log_tail()}")
            status, _ = http_get(f"{self.url}/-/ready", timeout_s=1.0, auth=self.probe_auth)
            if status == 200:
                return
            time.sleep(0.05)
        raise PrometheusStartError(f"prometheus not ready at {self.url}/-/ready within {self.ready_timeout_s:g}s:\n"
                                   f"{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``timeout_s``, then SIGKILL. Keeps port and data."""
        if self._proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, or the last resort of stop())."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        try:
            self._proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
        self._reap()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)
        self._proc = None

    def restart(self) -> "PrometheusServer":
        self.stop()
        return self.start()

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    # -- configuration and data -------------------------------------------------------------
    def set_scrape_targets(self, targets: Iterable[ScrapeTarget | str]) -> None:
        """Replace the scrape targets; a running server reloads its config (``/-/reload``)."""
        self.scrape_targets = [ScrapeTarget.of(t) for t in targets]
        self.config_path.write_text(render_config(self.scrape_targets, self.scrape_interval))
        if self.running:
            status, body = http_get(f"{self.url}/-/reload", timeout_s=5.0, auth=self.probe_auth, method="POST")
            if status != 200:
                raise RuntimeError(f"expected HTTP 200 from /-/reload, got {status}: {body[:300]!r}")

    def load_openmetrics(self, source: str | Path, timeout_s: float = 300.0) -> str:
        """Backfill the data directory from an OpenMetrics file (or text ending with ``# EOF``).

        Must run while stopped: Prometheus only reads the new blocks when it starts. Returns
        promtool's output. Raises RuntimeError with promtool's message on failure.
        """
        if self.running:
            raise RuntimeError("load_openmetrics() needs the server stopped: Prometheus reads blocks at start")
        if not os.access(self.promtool, os.X_OK):
            raise PrometheusNotInstalled(f"expected an executable promtool at {self.promtool}, found none")
        path = Path(source) if isinstance(source, Path) else None
        if path is None:
            path = self.workdir / f"backfill-{time.monotonic_ns()}.om.txt"
            text = source if source.endswith("\n") else source + "\n"
            path.write_text(text if text.rstrip().endswith("# EOF") else text + "# EOF\n")
        proc = subprocess.run([self.promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                               str(path), str(self.data_dir)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=self.workdir)
        if proc.returncode != 0:
            raise RuntimeError(f"promtool create-blocks-from openmetrics failed ({proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc.stdout

    # -- reading it back -----------------------------------------------------------------
    def query(self, expr: str, at: float | None = None, timeout_s: float = 5.0) -> dict:
        """The ``data`` of an instant query (urllib, not the adapter under test)."""
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout_s,
                                auth=self.probe_auth)
        if status != 200:
            raise RuntimeError(f"query {expr!r}: expected HTTP 200, got {status}: {body[:300]!r}")
        return json.loads(body)["data"]

    def wait_for(self, expr: str, predicate: Callable[[list], bool] = bool, timeout_s: float = 10.0) -> list:
        """Poll an instant query (now) until ``predicate(result)`` holds; returns the result."""
        deadline = time.monotonic() + timeout_s
        result: list = []
        while time.monotonic() < deadline:
            result = self.query(expr)["result"]
            if predicate(result):
                return result
            time.sleep(0.1)
        raise TimeoutError(f"{expr!r} did not satisfy the condition within {timeout_s:g}s; last result: {result!r:.500}")

    def http_requests(self, handler: str = "/api/v1/query") -> float:
        """Prometheus' own ``prometheus_http_requests_total`` for one handler, summed over codes."""
        status, body = http_get(f"{self.url}/metrics", auth=self.probe_auth)
        if status != 200:
            raise RuntimeError(f"expected HTTP 200 from {self.url}/metrics, got {status}")
        total = 0.0
        needle = f'handler="{handler}"'
        for line in body.decode().splitlines():
            if line.startswith("prometheus_http_requests_total{") and needle in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


def self_signed_cert(directory: str | Path, common_name: str = LOOPBACK) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for 127.0.0.1, valid one day, made with the openssl command.

    The certificate is its own CA, so a client verifies it with ``ca_file=cert.pem``.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("expected the openssl command to make a test certificate, found none")
    directory = Path(directory)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}",
                    "-addext", f"subjectAltName=IP:{common_name}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def require_prometheus() -> None:
    """Skip the calling test when Prometheus is missing; fail instead if SETPOINT_REQUIRE_PROMETHEUS=1."""
    import pytest

    missing = [b for b in (PROMETHEUS_BIN, PROMTOOL_BIN) if not os.access(b, os.X_OK)]
    if not missing:
        return
    reason = (f"the real Prometheus is needed and {', '.join(missing)} is missing "
              "(Debian package 'prometheus': apt-get install prometheus)")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def prometheus_server(scrape_targets: Iterable[ScrapeTarget | str] = (), scrape_interval: str = "1s",
                      retention: str = "1d", workdir: str | Path | None = None, history: str | Path | None = None,
                      **options) -> Iterator[PrometheusServer]:
    """A started PrometheusServer for a test; stopped (and its temp dir removed) at exit.

    ``history``: an OpenMetrics file or text loaded with promtool before the first start.
    Skips when Prometheus is not installed (see ``require_prometheus``). Other ``options`` go
    to ``PrometheusServer`` (port, ready_timeout_s, extra_args).
    """
    require_prometheus()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="setpoint-prom-")) if own_dir else Path(workdir)
    server = PrometheusServer(root, scrape_targets, scrape_interval=scrape_interval, retention=retention, **options)
    try:
        if history is not None:
            server.load_openmetrics(history)
        server.start()
        yield server
    finally:
        server.stop()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


class MetricsExporter:
    """An exposition-format endpoint on 127.0.0.1 serving text a test controls.

    ``set(text)`` replaces what the next scrape sees; ``scrapes`` counts GET /metrics, so a test
    can wait for Prometheus to have seen a change (``wait_scrapes``).
    """

    def __init__(self, text: str = ""):
        self._text = text
        self._lock = threading.Condition()
        self.scrapes = 0
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with exporter._lock:
                    exporter.scrapes += 1
                    exporter._lock.notify_all()

            def log_message(self, *_args):  # keep test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="metrics-exporter",
                                        daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def text(self) -> str:
        with self._lock:
            return self._text

    def set(self, text: str) -> None:
        with self._lock:
            self._text = text

    def wait_scrapes(self, count: int = 1, timeout_s: float = 10.0) -> None:
        """Block until ``count`` more scrapes have completed (bounded by ``timeout_s``)."""
        with self._lock:
            target = self.scrapes + count
            if not self._lock.wait_for(lambda: self.scrapes >= target, timeout=timeout_s):
                raise TimeoutError(f"expected {count} scrape(s) of {self.address} within {timeout_s:g}s, "
                                   f"saw {self.scrapes - target + count}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "MetricsExporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="1",b="2"}`` with exposition-format escaping; empty string for no labels."""
    if not labels:
        return ""
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(str(v))}"' for k, v in labels.items()) + "}"


def exposition(series: Iterable[tuple[str, Mapping[str, str], float | str]]) -> str:
    """Exposition text from ``(name, labels, value)``; value may be "NaN", "+Inf"..."""
    return "".join(f"{name}{format_labels(labels)} {value}\n" for name, labels, value in series)


def om_value(value: float) -> str:
    """A sample value as OpenMetrics writes it: ``NaN``, ``+Inf``, ``-Inf`` or a number."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass(frozen=True)
class Family:
    """One OpenMetrics metric family: ``samples`` yields (labels, value, timestamp_s).

    For a counter, ``name`` is the family name and samples are written as ``name_total``.
    """

    name: str
    type: str  # "gauge" or "counter"
    samples: Iterable[tuple[Mapping[str, str] | str, float, float]]


def write_openmetrics(path: str | Path, families: Iterable[Family]) -> Path:
    """Write an OpenMetrics file (timestamps in seconds, ending with ``# EOF``) for promtool.

    Labels may be pre-formatted strings (``{a="1"}``) to save time on large files.
    """
    path = Path(path)
    with open(path, "w") as out:
        for fam in families:
            out.write(f"# TYPE {fam.name} {fam.type}\n")
            sample_name = f"{fam.name}_total" if fam.type == "counter" else fam.name
            lines = []
            for labels, value, ts in fam.samples:
                lab = labels if isinstance(labels, str) else format_labels(labels)
                lines.append(f"{sample_name}{lab} {om_value(value)} {ts:.3f}\n")
                if len(lines) >= 50_000:
                    out.writelines(lines)
                    lines.clear()
            out.writelines(lines)
        out.write("# EOF\n")
    return path
