"""Counters of ``sim serve`` read simulated per-second rates at any ``--speed``: Prometheus takes
rate() over wall time, so each tick of dt simulated seconds must add rate * dt / speed."""

from __future__ import annotations

import urllib.request

import pytest

from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, start_server
from tests.support.prometheus_server import prometheus_server

WEB = '{namespace="shop",deployment="web"}'
WEB_POD = '{namespace="shop",deployment="web",pod='  # the start of web's per-pod application series
TICKS = 12  # 60 simulated seconds at 5 s a tick


def scrape(server) -> dict[str, float]:
    with urllib.request.urlopen(server.metrics_url, timeout=REQUEST_TIMEOUT_S) as resp:
        text = resp.read().decode()
    return {key: float(value) for key, value in (line.rsplit(" ", 1) for line in text.splitlines()
                                                   if line and not line.startswith("#"))}


@pytest.mark.parametrize("speed", [pytest.param(1.0, id="real-time"), pytest.param(4.0, id="speed-4"),
                                   pytest.param(0.5, id="half-speed"), pytest.param(60.0, id="speed-60")])
def test_counter_increase_per_wall_second_is_the_simulated_rate(speed):
    """web is offered 150 rps; over 12 ticks (60 simulated s = 60/speed wall s) the counters grow
    by 150 rps * 60/speed s, and the served-request count and CPU seconds likewise."""
    srv = start_server(metrics_port=0, speed=speed)
    try:
        tick_s = srv.world.tick_s
        before = scrape(srv)
        srv.world.advance(TICKS)
        after = scrape(srv)
        wall_s = TICKS * tick_s / speed
        def rate(family: str) -> float:  # what PromQL's sum(rate()) does over web's pods (the same pods throughout)
            keys = [k for k in after if k.startswith(family + WEB_POD)]
            assert keys, family
            return sum(after[k] - before.get(k, 0.0) for k in keys) / wall_s

        assert rate("http_requests_total") == pytest.approx(150.0)
        served_rps = srv.world.engine.signals().values["served_rps"][srv.world.engine.index("web")]
        pods = len([k for k in after if k.startswith("http_request_duration_seconds_count" + WEB_POD)])
        # each pod's count is whole requests (floored): up to one short a pod
        assert rate("http_request_duration_seconds_count") == pytest.approx(served_rps, abs=pods / wall_s + 1e-6)
        cpu = [k for k in after if k.startswith("container_cpu_usage_seconds_total") and 'pod="web-' in k]
        used_cores = sum(after[k] - before.get(k, 0.0) for k in cpu) / wall_s
        engine = srv.world.engine.signals().values
        i = srv.world.engine.index("web")
        requested = srv.world.store.workloads[i].config.cpu_request_cores * len(cpu)
        assert used_cores / requested == pytest.approx(engine["utilization_pct"][i] / 100.0, rel=1e-6)
    finally:
        srv.stop()


def test_prometheus_rate_reads_the_simulated_rate_at_speed_4():
    """The issue's case: at --speed 4 a real Prometheus saw four times the simulated request rate.
    The engine runs on wall time here (driven), scraped every second."""
    srv = start_server(metrics_port=0, speed=4.0, drive=True)
    try:
        target = srv.metrics_url.removeprefix("http://").removesuffix("/metrics")
        with prometheus_server([target], scrape_interval="1s") as prom:
            # a tick every 1.25 wall s: a 10 s window with 9+ scrapes spans 7-8 ticks (+-1 tick of 12 %)
            prom.wait_for(f"min(count_over_time(http_requests_total{WEB}[10s])) >= 9", bool, timeout_s=30)
            result = prom.query(f"sum(rate(http_requests_total{WEB}[10s]))")["result"]
            # +-40 %: a loaded machine delays ticks and scrapes; the bug read 4x (600), never within it
            assert float(result[0]["value"][1]) == pytest.approx(150.0, rel=0.4)
    finally:
        srv.stop()
