"""PrometheusSource against a REAL Prometheus (Debian's /usr/bin/prometheus on a loopback port),
scraping an exporter this module controls every second.

The real server covers: mapping of a vector onto targets, missing series, two series for one
target, NaN and +/-Inf, staleness (past/future query times, a series that stopped being
exposed), scalars for one target, custom target labels, PromQL rejected by Prometheus, the
server going away and coming back, one HTTP request per query whatever the number of targets
(counted by Prometheus itself), TLS with a custom CA, and basic auth with a rotated password.

A small HTTP stub (``StubPrometheus``) is used ONLY for answers a real Prometheus cannot be made
to give on demand: 503/429/500 bursts, a 200 with malformed JSON or ``status: error``, the
matrix/string result types through a proxy that mangles them, values that are not numbers, a
response slower than the client's deadline, and wrong paths/credentials at a gateway. It also
records request headers (bearer tokens) and the number of queries in flight.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import math
import random
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from controller.adapters.prometheus import InvalidPrometheusConfig, PrometheusConfig, PrometheusSource, map_vector
from controller.errors import (MetricsUnavailable, PrometheusBadQuery, PrometheusBadResponse, PrometheusError,
                               PrometheusUnreachable)
from controller.model import DEFAULT_TARGET_LABELS, TargetLabels, TargetRef
from controller.ports import PodMetricsSource, PodSeries, Samples
from controller.bundled import bundled_policy
from controller.policy import load_policies, load_policy_text
from controller.policy.import_files import import_files
from tests.support.prometheus_server import MetricsExporter, prometheus_server, self_signed_cert

IMPORT_FIXTURES = Path(__file__).resolve().parents[1] / "policy" / "imports"


def refs(*keys: str, kind: str = "Deployment") -> list[TargetRef]:
    """``refs("shop/web", "shop/api")`` -> TargetRefs."""
    return [TargetRef(*k.split("/"), kind=kind) for k in keys]


# ---------------------------------------------------------------------------------------------
# The real server, shared by the module
# ---------------------------------------------------------------------------------------------

EXPOSITION = """\
app_rps{namespace="shop",deployment="web"} 12
app_rps{namespace="shop",deployment="api"} 30
app_rps{namespace="other",deployment="web"} 99
app_rps{namespace="shop",deployment="cart",pod="cart-a"} 5
app_rps{namespace="shop",deployment="cart",pod="cart-b"} 7
app_rps{namespace="shop",deployment="nan"} NaN
app_rps{namespace="shop",deployment="inf"} +Inf
app_rps{namespace="shop",deployment="neginf"} -Inf
app_blink{namespace="shop",deployment="web"} 1
app_replicas{namespace="db",statefulset="pg"} 3
container_cpu_usage_seconds_total{namespace="catalog",pod="indexer-0",container="app"} 5
kube_pod_container_resource_requests{namespace="catalog",pod="indexer-0",container="app",resource="cpu"} 0.5
container_memory_working_set_bytes{namespace="batch",pod="worker-0",container="app"} 300000000
"""


@pytest.fixture(scope="module")
def exporter():
    with MetricsExporter(EXPOSITION) as e:
        yield e


@pytest.fixture(scope="module")
def prom(exporter):
    with prometheus_server([exporter.address], scrape_interval="1s") as server:
        server.wait_for("count(app_rps) == 8 and count(app_blink) == 1", timeout_s=10)
        yield server


@pytest.fixture
def source(prom):
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5.0)) as s:
        yield s


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("expr, targets, values, present, conflict", [
    pytest.param("app_rps", refs("shop/api", "shop/web", "other/web"), [30, 12, 99], [1, 1, 1], [0, 0, 0],
                 id="values-mapped-to-their-targets-in-target-order"),
    pytest.param("app_rps", refs("shop/web", "shop/absent", "nowhere/web"), [12, NAN, NAN], [1, 0, 0], [0, 0, 0],
                 id="missing-series-is-not-present"),
    pytest.param("app_rps", refs("shop/cart", "shop/web"), [NAN, 12], [0, 1], [1, 0],
                 id="two-series-for-one-target-is-a-conflict-for-that-target-only"),
    pytest.param("sum by (namespace, deployment) (app_rps)", refs("shop/cart"), [12], [1], [0],
                 id="aggregating-by-the-target-labels-resolves-the-conflict"),
    pytest.param("app_rps", refs("shop/nan", "shop/inf", "shop/neginf"), [NAN, INF, -INF], [1, 1, 1], [0, 0, 0],
                 id="nan-and-infinite-gauges-pass-through-as-present"),
    pytest.param("(app_rps - app_rps) / (app_rps - app_rps)", refs("shop/web"), [NAN], [1], [0],
                 id="zero-over-zero-is-nan-and-present"),
    pytest.param("app_rps / (app_rps - app_rps)", refs("shop/web"), [INF], [1], [0],
                 id="division-by-zero-is-inf-and-present"),
    pytest.param('scalar(app_rps{namespace="shop",deployment="web"})', refs("shop/web"), [12], [1], [0],
                 id="scalar-for-a-single-target"),
    pytest.param('sum(app_rps{namespace="shop"})', refs("shop/api"), [NAN], [1], [0],
                 id="one-unlabelled-series-for-a-single-target-nan-sum"),
    pytest.param('sum(app_rps{namespace="shop",deployment=~"web|api"})', refs("shop/api"), [42], [1], [0],
                 id="one-unlabelled-series-for-a-single-target"),
    pytest.param('app_rps{namespace="nowhere"}', refs("shop/web", "shop/api"), [NAN, NAN], [0, 0], [0, 0],
                 id="empty-vector-means-all-missing"),
    pytest.param("app_rps", [], [], [], [], id="no-targets-no-rows"),
])
def test_vector_results_are_mapped_onto_targets(source, expr, targets, values, present, conflict):
    s = source.query(expr, targets, time.time())
    np.testing.assert_array_equal(s.values, np.array(values, float))
    np.testing.assert_array_equal(s.present, np.array(present, bool))
    np.testing.assert_array_equal(s.conflict, np.array(conflict, bool))
    assert s.values.shape == s.present.shape == s.age_s.shape == s.conflict.shape == (len(targets),)


@pytest.mark.parametrize("expr, expect", [
    pytest.param('app_rps{deployment="cart"}', {("shop", "cart-a"): 5.0, ("shop", "cart-b"): 7.0},
                 id="series-with-a-pod-label-are-per-pod-samples"),
    pytest.param('sum by (namespace, deployment) (app_rps{deployment="cart"})', [12.0],
                 id="an-expression-that-aggregates-pods-away-gives-workload-values"),
])
def test_query_pods_returns_per_pod_series_or_workload_values(source, expr, expect):
    got = source.query_pods(expr, refs("shop/cart"), time.time())
    if isinstance(expect, dict):
        assert isinstance(got, PodSeries) and not isinstance(got, Samples)
        assert dict(zip(zip(got.namespaces, got.pods), got.values.tolist())) == expect
        assert (got.age_s >= 0).all() and (got.age_s < 30).all()
    else:
        assert isinstance(got, Samples) and got.values.tolist() == expect and got.present.all()


def test_prometheus_source_declares_the_per_pod_capability():
    assert issubclass(PrometheusSource, PodMetricsSource)


def test_custom_target_labels_match_statefulsets(prom):
    """``target_labels`` names the labels a series is matched on; per-call ``labels`` overrides it.
    A StatefulSet is matched by ``statefulset`` by default: app_replicas (``statefulset="pg"``) is
    its series; with (namespace, deployment) for every kind it is not."""
    targets = refs("db/pg", kind="StatefulSet")
    with PrometheusSource(PrometheusConfig.from_url(prom.url, target_labels=("namespace", "statefulset"))) as src:
        assert src.query("app_replicas", targets, time.time()).values.tolist() == [3.0]
    with PrometheusSource(prom.url) as src:
        assert src.query("app_replicas", targets, time.time()).values.tolist() == [3.0]
        assert not src.query("app_replicas", targets, time.time(), labels=("namespace", "deployment")).present.any()
    every = TargetLabels.every_kind("namespace", "deployment")
    with PrometheusSource(PrometheusConfig.from_url(prom.url, target_labels=every)) as src:
        assert not src.query("app_replicas", targets, time.time()).present.any()


def test_a_statefulset_named_by_deployment_is_said_once_with_the_two_fixes(prom, caplog):
    """A StatefulSet's query whose series name it by ``deployment`` (policies before per-kind
    labels): the metric is missing, and the log says why and how to fix it, once per query; under
    --target-labels statefulset=namespace,deployment the same series is its."""
    sts = refs("shop/web", kind="StatefulSet")
    with PrometheusSource(prom.url) as src, caplog.at_level("WARNING", "controller.adapters.prometheus"):
        for _ in range(2):
            assert not src.query("app_blink", sts, time.time()).present.any()
        assert src.query("app_blink", refs("shop/web"), time.time()).values.tolist() == [1.0]  # a Deployment's
    said = [r.getMessage() for r in caplog.records if "app_blink" in r.getMessage()]
    assert said == ["query 'app_blink': no series names StatefulSet/shop/web by its labels (namespace, statefulset), "
                    "and one names it by deployment=\"web\": a StatefulSet's series are matched by statefulset; group "
                    "by (namespace, statefulset), or run with --target-labels statefulset=namespace,deployment"]
    old = DEFAULT_TARGET_LABELS.replaced("StatefulSet", ("namespace", "deployment"))
    with PrometheusSource(PrometheusConfig.from_url(prom.url, target_labels=old)) as src:
        assert src.query("app_blink", sts, time.time()).values.tolist() == [1.0]


def _shipped_statefulset_example():
    return load_policies([bundled_policy("hpa-behavior.yaml")])[0]


def _imported_statefulset_hpa():
    return load_policy_text(import_files([str(IMPORT_FIXTURES / "behavior-disabled.yaml")]).text)[0]


@pytest.mark.parametrize("policy, target, value", [
    pytest.param(_shipped_statefulset_example, "catalog/indexer", 0.0, id="shipped-example-hpa-behavior"),
    pytest.param(_imported_statefulset_hpa, "batch/worker", 3e8, id="setpoint-import-of-a-statefulset-hpa"),
])
def test_a_statefulset_policy_reads_its_metric_under_the_default_target_labels(prom, policy, target, value):
    """The shipped StatefulSet example and `setpoint import`'s StatefulSet policies group by
    (namespace, statefulset), the label a StatefulSet's series are matched by under the default
    target labels (label_replace from the pod): the metric is the target's."""
    loaded = policy()
    (ref,) = refs(target, kind="StatefulSet")
    prom.wait_for('count(rate(container_cpu_usage_seconds_total{namespace="catalog"}[2m])) == 1', timeout_s=10)
    with PrometheusSource(prom.url) as src:
        got = src.query(loaded.model.spec.scaling.metrics[0].query, [ref], time.time())
    assert (got.present.tolist(), got.values.tolist()) == ([True], [value])


@pytest.mark.parametrize("offset_s, present", [
    pytest.param(-3600.0, False, id="query-before-any-data-is-missing"),
    pytest.param(+60.0, True, id="query-within-prometheus-lookback-is-present"),
    pytest.param(+400.0, False, id="query-past-the-5m-lookback-is-missing"),
])
def test_query_time_relative_to_the_data(source, offset_s, present):
    """Prometheus resolves staleness itself: a sample older than its lookback delta (5 min) is gone.

    Instant-query results carry the evaluation time as their timestamp, so ``age_s`` is 0.
    """
    at = time.time() + offset_s
    s = source.query("app_rps", refs("shop/web"), at)
    assert s.present.tolist() == [present]
    assert s.age_s.tolist() == [0.0]


def test_series_that_stopped_being_exposed_is_missing(prom, exporter, source):
    """Prometheus writes a staleness marker on the first scrape without the series."""
    target = refs("shop/web")
    before = time.time()
    assert source.query("app_blink", target, before).values.tolist() == [1.0]
    exporter.set(EXPOSITION.replace('app_blink{namespace="shop",deployment="web"} 1\n', ""))
    try:
        exporter.wait_scrapes(2, timeout_s=10)
        assert source.query("app_blink", target, time.time()).present.tolist() == [False]
        assert source.query("app_blink", target, before).present.tolist() == [True]  # history is kept
    finally:
        exporter.set(EXPOSITION)


@pytest.mark.parametrize("expr, targets, error, words", [
    pytest.param("app_rps{", refs("shop/web"), PrometheusBadQuery, ["HTTP 400", "bad_data", "parse error"],
                 id="syntax-error-is-a-bad-query"),
    pytest.param("rate(app_rps)", refs("shop/web"), PrometheusBadQuery, ["HTTP 400", "range vector"],
                 id="type-error-is-a-bad-query"),
    pytest.param("app_rps + on() app_rps", refs("shop/web"), PrometheusBadQuery, ["HTTP 422", "execution"],
                 id="many-to-many-match-is-a-bad-query"),
    pytest.param("app_rps[1m]", refs("shop/web"), PrometheusBadResponse, ["'matrix'"],
                 id="range-vector-result-is-a-bad-response"),
    pytest.param('"text"', refs("shop/web"), PrometheusBadResponse, ["'string'"],
                 id="string-result-is-a-bad-response"),
    pytest.param("scalar(app_rps{deployment=\"api\"})", refs("shop/web", "shop/api"), PrometheusBadResponse,
                 ["a scalar", "2 targets"], id="scalar-for-several-targets-is-a-bad-response"),
    pytest.param("sum(app_rps)", refs("shop/web", "shop/api"), PrometheusBadResponse,
                 ["without the labels", "2 targets"], id="unlabelled-series-for-several-targets-is-a-bad-response"),
])
def test_queries_prometheus_rejects_or_we_cannot_map(source, expr, targets, error, words):
    sent = source.requests_sent
    with pytest.raises(error) as info:
        source.query(expr, targets, time.time())
    assert isinstance(info.value, MetricsUnavailable)
    for word in words:
        assert word in str(info.value)
    assert expr[:10] in str(info.value)
    assert source.requests_sent - sent == 1, "a permanent error must not be retried"


def test_one_http_request_per_query_whatever_the_number_of_targets(prom, source):
    """Counted by Prometheus itself (prometheus_http_requests_total{handler="/api/v1/query"})."""
    targets = refs("shop/web", "shop/api", *(f"shop/absent-{i:04d}" for i in range(998)))
    before = prom.http_requests("/api/v1/query")
    s = source.query("app_rps", targets, time.time())
    assert prom.http_requests("/api/v1/query") - before == 1
    assert s.present.sum() == 2 and s.values[:2].tolist() == [12.0, 30.0]

    before = prom.http_requests("/api/v1/query")
    results = source.query_many(["app_rps", "app_rps * 2", "app_rps{"], targets, time.time(), return_exceptions=True)
    assert prom.http_requests("/api/v1/query") - before == 3
    assert [type(r).__name__ for r in results] == ["Samples", "Samples", "PrometheusBadQuery"]
    assert results[1].values[:2].tolist() == [24.0, 60.0]
    with pytest.raises(PrometheusBadQuery):
        source.query_many(["app_rps", "app_rps{"], targets, time.time())


def test_prometheus_down_is_unreachable_quickly_and_recovery_is_seen(tmp_path):
    """stop() / start() keep the port and the data directory: the source recovers on its own.

    Its own server, without scrape targets (Prometheus applies scrape targets only after ~5 s),
    with one backfilled sample a minute old to show the data survives the restart.
    """
    seen_at = round(time.time()) - 60.0
    history = f'# TYPE app_rps gauge\napp_rps{{namespace="shop",deployment="web"}} 12 {seen_at}\n# EOF\n'
    with prometheus_server([], workdir=tmp_path, history=history) as server:
        target = refs("shop/web")
        with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=2.0, retries=2, backoff_s=0.1)) as src:
            assert src.query("app_rps", target, seen_at).values.tolist() == [12.0]
            url = server.url
            server.stop()
            sent, started = src.requests_sent, time.monotonic()
            with pytest.raises(PrometheusUnreachable, match="refused"):
                src.query("app_rps", target, time.time())
            assert time.monotonic() - started < 2.0
            assert src.requests_sent - sent == 3, "connection errors are retried: 1 + retries attempts"
            server.start()
            assert server.url == url
            assert src.query("app_rps", target, seen_at).values.tolist() == [12.0]


# ---------------------------------------------------------------------------------------------
# TLS and basic auth, against the real server (Prometheus' --web.config.file)
# ---------------------------------------------------------------------------------------------

BCRYPT_S3CRET = "$2b$04$d.S1iV3SER3/sK7nhFjZTORuDo060jRyq5SMIvQtyblMnjscNHgg6"  # bcrypt("s3cret"), cost 4


@pytest.fixture(scope="module")
def tls_prom(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    try:
        cert, key = self_signed_cert(directory)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"cannot make a test certificate: {exc}")
    web = {"tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
           "basic_auth_users": {"alice": BCRYPT_S3CRET}}
    with prometheus_server([], web_config=web, probe_auth=("alice", "s3cret")) as server:
        yield server, cert, directory


@pytest.mark.parametrize("options, password, error, words", [
    pytest.param({"ca_file": "CERT"}, "s3cret", None, [], id="custom-ca-verifies-the-server"),
    pytest.param({"verify_tls": False}, "s3cret", None, [], id="verification-off"),
    pytest.param({}, "s3cret", PrometheusUnreachable, ["TLS", "certificate verify failed"],
                 id="self-signed-without-ca-is-a-tls-failure"),
    pytest.param({"ca_file": "CERT"}, "wrong", PrometheusUnreachable, ["HTTP 401", "credentials"],
                 id="wrong-password-is-refused-without-retry"),
])
def test_tls_and_basic_auth_against_real_prometheus(tls_prom, tmp_path, options, password, error, words):
    server, cert, _ = tls_prom
    (tmp_path / "password").write_text(password + "\n")
    options = {k: (str(cert) if v == "CERT" else v) for k, v in options.items()}
    config = PrometheusConfig.from_url(server.url, basic_auth_user="alice",
                                       basic_auth_password_file=str(tmp_path / "password"), **options)
    with PrometheusSource(config) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning for verify_tls=False
        if error is None:
            assert src.query("vector(7)", refs("a/b"), time.time()).values.tolist() == [7.0]
            return
        with pytest.raises(error) as info:
            src.query("vector(7)", refs("a/b"), time.time())
        assert src.requests_sent == 1
    for word in words:
        assert word in str(info.value)
    assert password not in str(info.value)


def test_ca_file_wins_over_a_ca_bundle_from_the_environment(tls_prom, tmp_path, monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA bundle unless the
    request passes ``verify`` itself: the configured ca_file must still be the one used."""
    server, cert, _ = tls_prom
    other_ca, _ = self_signed_cert(tmp_path)  # a CA that did not sign the server's certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other_ca))
    (tmp_path / "password").write_text("s3cret")
    config = PrometheusConfig.from_url(server.url, ca_file=str(cert), basic_auth_user="alice",
                                       basic_auth_password_file=str(tmp_path / "password"))
    with PrometheusSource(config) as src:
        assert src.query("vector(7)", refs("a/b"), time.time()).values.tolist() == [7.0]


def test_rotated_password_file_is_read_again(tls_prom, tmp_path):
    server, cert, _ = tls_prom
    password = tmp_path / "password"
    password.write_text("old-and-wrong")
    config = PrometheusConfig.from_url(server.url, ca_file=str(cert), basic_auth_user="alice",
                                       basic_auth_password_file=str(password))
    with PrometheusSource(config) as src:
        with pytest.raises(PrometheusUnreachable, match="401"):
            src.query("vector(1)", refs("a/b"), time.time())
        password.write_text("s3cret\n")
        assert src.query("vector(1)", refs("a/b"), time.time()).present.all()


# ---------------------------------------------------------------------------------------------
# The stub: only what a real Prometheus cannot be made to answer on demand
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body``: a dict is sent as JSON, a str as is, a callable gets the query params."""

    status: int = 200
    body: dict | str | Callable[[dict], dict] = ""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


def vector(*series: tuple[dict, str]) -> dict:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": m, "value": [1700000000.0, v]} for m, v in series]}}


WEB = {"namespace": "shop", "deployment": "web"}
OK = Reply(body=vector((WEB, "12")))


@dataclass
class StubPrometheus:
    """/api/v1/query on 127.0.0.1 answering ``replies`` in order (the last one repeats).

    Records each request's query parameters and headers, and the most requests in flight.
    """

    replies: list[Reply]
    requests: list[dict] = field(default_factory=list)
    max_in_flight: int = 0
    _in_flight: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._closing = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                stub.answer(self)

            def log_message(self, *_a):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        with self._lock:
            reply = self.replies[min(len(self.requests), len(self.replies) - 1)]
            request = {"path": parsed.path, "params": dict(urllib.parse.parse_qsl(parsed.query)),
                       "headers": dict(handler.headers)}
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        counted = True
        try:
            if reply.delay_s:
                self._closing.wait(reply.delay_s)
            body = reply.body(request["params"]) if callable(reply.body) else reply.body
            body = json.dumps(body) if isinstance(body, dict) else body
            # no longer in flight before the first byte goes out: a client asking one query after
            # another sends its next as soon as it has read this answer, which may be before this
            # thread would reach its finally (max_in_flight then read 2 for a sequential client)
            with self._lock:
                self._in_flight -= 1
                counted = False
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            for k, v in reply.headers:
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(body.encode())))
            handler.end_headers()
            handler.wfile.write(body.encode())
        except OSError:
            pass  # the client gave up (timeout): nothing to answer
        finally:
            if counted:
                with self._lock:
                    self._in_flight -= 1

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def stub(*replies: Reply):
    s = StubPrometheus(list(replies))
    try:
        yield s
    finally:
        s.close()


def fast(url: str, **options) -> PrometheusSource:
    """A source with short backoff so retry rows stay quick; options override."""
    return PrometheusSource(PrometheusConfig.from_url(url, **({"backoff_s": 0.01, "timeout_s": 3.0} | options)))


E503 = Reply(503, {"status": "error", "errorType": "unavailable", "error": "overloaded"})
E500 = Reply(500, {"status": "error", "errorType": "internal", "error": "boom"})


@pytest.mark.parametrize("replies, options, expect, words, n_requests", [
    pytest.param([E503, OK], {}, 12.0, [], 2, id="503-then-success-is-retried"),
    pytest.param([Reply(429, "slow down", "text/plain", (("Retry-After", "0"),)), OK], {}, 12.0, [], 2,
                 id="429-then-success-is-retried"),
    pytest.param([Reply(502, "<html>bad gateway</html>", "text/html"), E503, OK], {}, 12.0, [], 3,
                 id="two-transient-failures-then-success"),
    pytest.param([E500], {}, PrometheusUnreachable, ["3 attempts", "HTTP 500", "boom"], 3,
                 id="500-forever-is-unreachable-after-1-plus-retries-attempts"),
    pytest.param([E500], {"retries": 0}, PrometheusUnreachable, ["1 attempt within"], 1,
                 id="no-retries-means-one-attempt"),
    pytest.param([Reply(503, "", headers=(("Retry-After", "60"),))], {"timeout_s": 2.0}, PrometheusUnreachable,
                 ["1 attempt within", "HTTP 503"], 1, id="retry-after-beyond-the-deadline-gives-up-at-once"),
    pytest.param([Reply(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})], {},
                 PrometheusBadQuery, ["HTTP 400", "bad_data: parse error"], 1, id="400-is-a-bad-query-never-retried"),
    pytest.param([Reply(200, '{"status": "success", "data": {"resultT')], {}, PrometheusBadResponse,
                 ["invalid JSON", "resultT"], 1, id="truncated-json"),
    pytest.param([Reply(200, "<html>login</html>", "text/html")], {}, PrometheusBadResponse, ["<html>login"], 1,
                 id="html-from-a-proxy"),
    pytest.param([Reply(200, {"status": "error", "errorType": "internal", "error": "disk full"})], {},
                 PrometheusBadResponse, ["expected status 'success', got 'error'", "internal: disk full"], 1,
                 id="status-error-with-http-200"),
    pytest.param([Reply(200, {"status": "success"})], {}, PrometheusBadResponse, ["'data' object"], 1,
                 id="success-without-data"),
    pytest.param([Reply(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})], {},
                 PrometheusBadResponse, ["'matrix'"], 1, id="result-type-matrix"),
    pytest.param([Reply(200, {"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}})], {},
                 PrometheusBadResponse, ["'string'"], 1, id="result-type-string"),
    pytest.param([Reply(200, {"status": "success", "data": {"resultType": "streams", "result": []}})], {},
                 PrometheusBadResponse, ["'streams'"], 1, id="result-type-unknown"),
    pytest.param([Reply(200, vector((WEB, "twelve")))], {}, PrometheusBadResponse, ["'twelve'"], 1,
                 id="value-not-a-number"),
    pytest.param([Reply(200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}})],
                 {}, PrometheusBadResponse, ["expected a series"], 1, id="series-without-metric"),
    pytest.param([Reply(200, {"status": "success", "data": {"resultType": "vector",
                                                             "result": [{"metric": WEB, "value": [1.0]}]}})],
                 {}, PrometheusBadResponse, ["[timestamp"], 1, id="sample-without-value"),
    pytest.param([Reply(404, "404 page not found", "text/plain")], {}, PrometheusBadResponse,
                 ["expected HTTP 200", "HTTP 404", "/api/v1/query"], 1, id="wrong-path-prefix-404"),
    pytest.param([Reply(403, "forbidden", "text/plain")], {}, PrometheusUnreachable, ["HTTP 403", "credentials"],
                 1, id="403-is-not-retried"),
    pytest.param([Reply(delay_s=5.0, body=vector((WEB, "1")))], {"timeout_s": 0.5}, PrometheusUnreachable,
                 ["no complete answer within 0.5s"], 1, id="slower-than-the-deadline"),
])
def test_awkward_answers_a_real_server_cannot_give_on_demand(replies, options, expect, words, n_requests):
    budget_s = options.get("timeout_s", 3.0) + 1.0
    with stub(*replies) as s, fast(s.url, **options) as src:
        started = time.monotonic()
        if isinstance(expect, float):
            assert src.query("app_rps", refs("shop/web"), 1700000000.0).values.tolist() == [expect]
        else:
            with pytest.raises(expect) as info:
                src.query("app_rps", refs("shop/web"), 1700000000.0)
            for word in words:
                assert word in str(info.value), str(info.value)
        assert time.monotonic() - started < budget_s
        assert len(s.requests) == n_requests


def matrix(*series: tuple[dict, list[tuple[float, str]]]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix",
                                          "result": [{"metric": m, "values": [list(p) for p in v]} for m, v in series]}}


THREE_SAMPLES = matrix((WEB, [(1700000000, "1"), (1700000015, "NaN"), (1700000030, "+Inf")]))
MATRIX = Reply(body=json.dumps(THREE_SAMPLES, separators=(",", ":")))  # spelled as Prometheus writes it


@pytest.mark.parametrize("replies, expect, words, n_requests", [
    pytest.param([MATRIX], [1.0, NAN, INF], [], 1, id="matrix-decoded-nan-and-inf-pass-through"),
    pytest.param([Reply(body=THREE_SAMPLES)], [1.0, NAN, INF], [], 1,  # json.dumps' spaces: not Prometheus' spelling
                 id="body-in-another-spelling-is-decoded-the-ordinary-way"),
    pytest.param([E503, MATRIX], [1.0, NAN, INF], [], 2, id="503-then-success-is-retried"),
    pytest.param([Reply(200, '{"status": "success", "data": {"resultT')], PrometheusBadResponse,
                 ["invalid JSON"], 1, id="truncated-json"),
    pytest.param([OK], PrometheusBadResponse, ["expected resultType 'matrix'", "'vector'"], 1,
                 id="vector-from-a-range-query"),
    pytest.param([Reply(200, {"status": "error", "errorType": "internal", "error": "disk full"})],
                 PrometheusBadResponse, ["expected status 'success'", "disk full"], 1, id="status-error-with-http-200"),
    pytest.param([Reply(422, {"status": "error", "errorType": "execution", "error": "too many samples"})],
                 PrometheusBadQuery, ["HTTP 422", "too many samples"], 1, id="422-is-a-bad-query"),
    pytest.param([Reply(404, "404 page not found", "text/plain")], PrometheusBadResponse,
                 ["HTTP 404", "/api/v1/query_range"], 1, id="wrong-path-prefix-names-the-range-api"),
])
def test_range_query_answers(replies, expect, words, n_requests):
    """The range API's answers go through the same classification as the instant API's."""
    with stub(*replies) as s, fast(s.url) as src:
        if isinstance(expect, list):
            (series,) = src.query_range("app_rps", 1700000000.0, 1700000030.0, 15.0)
            assert series.labels == WEB
            np.testing.assert_array_equal(series.values, np.array(expect))
            np.testing.assert_array_equal(series.times, [1700000000.0, 1700000015.0, 1700000030.0])
        else:
            with pytest.raises(expect) as info:
                src.query_range("app_rps", 1700000000.0, 1700000030.0, 15.0)
            for word in words:
                assert word in str(info.value), str(info.value)
    assert len(s.requests) == n_requests
    request = s.requests[0]
    assert request["path"] == "/api/v1/query_range"
    assert {k: request["params"][k] for k in ("query", "start", "end", "step")} == {
        "query": "app_rps", "start": "1700000000", "end": "1700000030", "step": "15s"}
    assert 0 < float(request["params"]["timeout"]) <= 3.0 * 6


def test_request_carries_time_in_ms_and_a_server_side_timeout():
    with stub(OK) as s, fast(s.url, timeout_s=2.0) as src:
        src.query("app_rps", refs("shop/web"), 1700000000.123456)
    params = s.requests[0]["params"]
    assert s.requests[0]["path"] == "/api/v1/query"
    assert params["query"] == "app_rps" and params["time"] == "1700000000.123"
    assert 0 < float(params["timeout"]) <= 2.0


def test_backoff_doubles_with_jitter_and_honours_retry_after():
    """Waits are backoff_s * 2**k * U(0.5, 1), and never shorter than the server's Retry-After."""
    waits: list[float] = []
    with stub(E503) as s:
        src = PrometheusSource(PrometheusConfig.from_url(s.url, retries=3, backoff_s=0.1, timeout_s=5.0),
                               sleep=waits.append, rng=random.Random(7))
        with src, pytest.raises(PrometheusUnreachable):
            src.query("up", refs("shop/web"), 1700000000.0)
    assert len(waits) == 3
    for k, w in enumerate(waits):
        assert 0.1 * 2 ** k * 0.5 <= w <= 0.1 * 2 ** k
    waits.clear()
    with stub(Reply(429, "", headers=(("Retry-After", "1"),)), OK) as s:
        with PrometheusSource(s.url, sleep=waits.append) as src:
            assert src.query("up", refs("shop/web"), 1700000000.0).present.all()
    assert waits and waits[0] >= 1.0


def test_query_many_bounds_concurrency_and_keeps_order():
    echo = Reply(body=lambda params: vector((WEB, params["query"].lstrip("q"))), delay_s=0.2)
    with stub(echo) as s, fast(s.url, max_concurrency=4) as src:
        started = time.monotonic()
        results = src.query_many([f"q{i}" for i in range(8)], refs("shop/web", "shop/api"), 1700000000.0)
        elapsed = time.monotonic() - started
    assert [r.values[0] for r in results] == [float(i) for i in range(8)]
    assert all(r.present.tolist() == [True, False] for r in results)
    assert len(s.requests) == 8
    assert 2 <= s.max_in_flight <= 4
    assert elapsed < 8 * 0.2  # ran concurrently


def test_bearer_token_file_is_sent_and_re_read_after_rotation(tmp_path):
    token = tmp_path / "token"
    token.write_text("first-token\n")
    with stub(OK) as s, fast(s.url, bearer_token_file=str(token), headers={"X-Scope-OrgID": "team-a"}) as src:
        src.query("up", refs("shop/web"), 1700000000.0)
        token.write_text("rotated-token-with-a-new-length\n")
        src.query("up", refs("shop/web"), 1700000000.0)
        assert "first-token" not in repr(src) and "team-a" not in repr(src)
    seen = [r["headers"].get("Authorization") for r in s.requests]
    assert seen == ["Bearer first-token", "Bearer rotated-token-with-a-new-length"]
    assert s.requests[0]["headers"].get("X-Scope-OrgID") == "team-a"


def test_missing_token_file_is_a_clear_source_error(tmp_path):
    with stub(OK) as s, fast(s.url, bearer_token_file=str(tmp_path / "absent")) as src:
        with pytest.raises(PrometheusError, match="cannot read the bearer token file .*absent"):
            src.query("up", refs("shop/web"), 1700000000.0)
        assert s.requests == []


def test_secrets_never_appear_in_repr_or_errors(tmp_path):
    config = PrometheusConfig.from_url("http://admin:hunter2@127.0.0.1:1/", headers={"Authorization": "Bearer xyz"},
                                       timeout_s=0.5, retries=0)
    with PrometheusSource(config) as src:
        with pytest.raises(PrometheusUnreachable) as info:
            src.query("up", refs("shop/web"), 1700000000.0)
    for text in (repr(config), repr(src), str(info.value)):
        assert "hunter2" not in text and "xyz" not in text and "admin" not in text


@pytest.mark.parametrize("options, words", [
    pytest.param({"url": "prometheus:9090"}, ["url: expected http(s)://"], id="url-without-scheme"),
    # urlsplit's own ValueErrors came out bare ("Invalid IPv6 URL"), naming neither option nor value
    pytest.param({"url": "http://[::1"}, ["url: expected http(s)://", "'http://[::1' (Invalid IPv6 URL)"],
                 id="broken-ipv6"),
    pytest.param({"url": "http://prom:99999"}, ["'http://prom:99999' (Port out of range"], id="port-out-of-range"),
    pytest.param({"url": "http://admin:hunter2@[::1"}, ["got 'http://[::1' (Invalid IPv6 URL)"],
                 id="broken-url-keeps-its-password-out"),
    pytest.param({"timeout_s": 0}, ["timeout_s: expected seconds > 0 and <= 3600, got 0"], id="zero-timeout"),
    pytest.param({"timeout_s": -1.0}, ["timeout_s: expected seconds > 0 and <= 3600, got -1.0"], id="negative-timeout"),
    pytest.param({"timeout_s": math.nan}, ["timeout_s: expected seconds > 0 and <= 3600, got nan"], id="nan-timeout"),
    # inf and 1e12 overflowed socket.settimeout: an OverflowError at the first query
    pytest.param({"timeout_s": math.inf}, ["timeout_s: expected seconds > 0 and <= 3600, got inf"], id="inf-timeout"),
    pytest.param({"timeout_s": 1e12}, ["got 1000000000000.0"], id="timeout-beyond-an-hour"),
    pytest.param({"timeout_s": True}, ["got True"], id="boolean-timeout"),
    pytest.param({"retries": -1, "backoff_s": -1}, ["retries: expected an integer >= 0, got -1",
                                                    "backoff_s: expected >= 0, got -1"], id="every-problem-at-once"),
    pytest.param({"max_concurrency": 0}, ["max_concurrency"], id="no-concurrency"),
    pytest.param({"bearer_token_file": "/t", "basic_auth_user": "u", "basic_auth_password_file": "/p"},
                 ["at most one of them"], id="bearer-and-basic-auth"),
    pytest.param({"basic_auth_user": "u"}, ["expected both or neither"], id="basic-auth-without-password-file"),
    pytest.param({"target_labels": ("namespace",)}, ["target_labels"], id="one-target-label"),
])
def test_invalid_configuration_names_field_expected_and_found(options, words):
    url = options.pop("url", "http://127.0.0.1:9090")
    with pytest.raises(InvalidPrometheusConfig) as info:
        PrometheusConfig.from_url(url, **options)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_configuration_can_be_worded_with_option_names():
    with pytest.raises(InvalidPrometheusConfig) as info:
        PrometheusConfig.from_url("prometheus:9090", timeout_s=math.inf, retries=-1)
    assert [field for field, _ in info.value.problems] == ["url", "timeout_s", "retries"]
    assert info.value.renamed({"url": "--prometheus", "timeout_s": "--prometheus-timeout"}) == (
        "invalid Prometheus configuration: --prometheus: expected http(s)://host[:port][/prefix], got "
        "'prometheus:9090'; --prometheus-timeout: expected seconds > 0 and <= 3600, got inf; retries: expected "
        "an integer >= 0, got -1")


def test_from_url_normalizes_and_repr_shows_header_names_only():
    c = PrometheusConfig.from_url("http://prom:9090/", headers={"X-Scope-OrgID": "t"}, target_labels=["ns", "app"])
    assert c.url == "http://prom:9090" and c.headers == (("X-Scope-OrgID", "t"),)
    assert c.target_labels == TargetLabels.every_kind("ns", "app")  # a pair: the same for every kind
    assert "X-Scope-OrgID" in repr(c) and "'t'" not in repr(c)


def test_map_vector_ignores_series_of_other_workloads():
    """The query may cover more workloads than the policy: those series are not errors."""
    result = [{"metric": {"namespace": "shop", "deployment": d}, "value": [10.0, "1"]} for d in ("web", "x", "y")]
    s = map_vector(result, refs("shop/web"), at=12.5)
    assert s.values.tolist() == [1.0] and s.age_s.tolist() == [2.5]


def test_a_stopping_controller_sends_no_more_queries(prom, source):
    # SIGTERM: the running cycle's remaining queries fail at once (the metric unknown: a hold),
    # so that it ends within the stop's grace period (cli/live.py _stop_within)
    source.stop_requests()
    before = (source.requests_sent, prom.http_requests("/api/v1/query"))
    with pytest.raises(PrometheusUnreachable, match="not sent, the controller is stopping"):
        source.query("app_rps", refs("shop/web"), time.time())
    assert (source.requests_sent, prom.http_requests("/api/v1/query")) == before


# (name, this controller's clock minus the real one, s; warned?): the real Prometheus' Date
# header against an injected wall clock
SKEWS = [
    ("in step", 0.0, False),
    ("5 s ahead, within the estimate's noise and NTP's usual", 5.0, False),
    ("a minute ahead: rate() reads low", 60.0, True),
    ("a minute behind: readings a minute old", -60.0, True),
]


@pytest.mark.parametrize("name, offset_s, warned", SKEWS, ids=[r[0] for r in SKEWS])
def test_a_controller_clock_off_from_prometheus_is_measured_and_warned_once(name, offset_s, warned, prom, caplog):
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5.0),
                          wall=lambda: time.time() + offset_s) as skewed:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                skewed.query("app_rps", refs("shop/web"), time.time())
        assert skewed.clock_skew_s == pytest.approx(offset_s, abs=1.6)
        said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
        assert len(said) == warned  # once, not every query
        if warned:
            assert ("ahead of" if offset_s > 0 else "behind") in said[0] and "NTP" in said[0]


def test_a_clock_fixed_again_is_said_once(prom, caplog):
    offset = [60.0]
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5.0),
                          wall=lambda: time.time() + offset[0]) as skewed:
        with caplog.at_level(logging.WARNING):
            skewed.query("app_rps", refs("shop/web"), time.time())
            offset[0] = 0.0
            skewed.query("app_rps", refs("shop/web"), time.time())
            skewed.query("app_rps", refs("shop/web"), time.time())
        said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
        assert len(said) == 2 and "agrees with Prometheus' again" in said[1]


def test_the_skew_is_a_gauge_read_at_each_scrape(prom):
    from controller.runtime.telemetry import Telemetry

    telemetry = Telemetry()
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=5.0), wall=lambda: time.time() - 30) as src:
        telemetry.track_clock_skew(lambda: src.clock_skew_s)
        assert math.isnan(telemetry.registry.get_sample_value("setpoint_prometheus_clock_skew_seconds"))
        src.query("app_rps", refs("shop/web"), time.time())
        assert telemetry.registry.get_sample_value("setpoint_prometheus_clock_skew_seconds") == \
            pytest.approx(-30, abs=1.6)
