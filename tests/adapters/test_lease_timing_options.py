"""`setpoint run --lease-duration/--renew-deadline/--retry-period`: the leader election's timings,
15s / 10s / 2s (client-go's) unless given, validated before anything starts (a renew deadline
shorter than the lease duration, a retry period shorter than the renew deadline), and written to
the Lease the process holds."""

from __future__ import annotations

import os
import signal

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.cli.live import LeaseTimings, lease_timings
from tests.adapters.kube_helpers import server  # noqa: F401 (fixture)
from tests.adapters.test_run_leader_lifecycle import (LEASE, NS, START_TIMEOUT_S, holder, leases,  # noqa: F401
                                                       start_run, wait_exit, wait_until)


@pytest.mark.parametrize("given, expected", [
    pytest.param((None, None, None), (15.0, 10.0, 2.0), id="none-given-client-go-s-defaults"),
    pytest.param(("4s", "3s", "500ms"), (4.0, 3.0, 0.5), id="all-given"),
    pytest.param(("1m", None, None), (60.0, 10.0, 2.0), id="a-longer-lease-alone"),
    pytest.param(("12s", "9s", None), (12.0, 9.0, 2.0), id="the-retry-period-left-to-its-default"),
])
def test_the_timings_given_or_their_defaults(given, expected):
    assert lease_timings(True, *given) == LeaseTimings(*expected)


@pytest.mark.parametrize("leader_elect, given, message", [
    pytest.param(True, ("5s", None, None), "--renew-deadline (10s) must be shorter than --lease-duration (5s)",
                 id="a-shorter-lease-with-the-default-renew-deadline"),
    pytest.param(True, ("4s", "4s", "1s"), "--renew-deadline (4s) must be shorter than --lease-duration (4s)",
                 id="renew-deadline-equal-to-the-lease"),
    pytest.param(True, ("4s", "3s", "3s"), "--retry-period (3s) must be shorter than --renew-deadline (3s)",
                 id="retry-period-equal-to-the-renew-deadline"),
    pytest.param(True, (None, "1s", None), "--retry-period (2s) must be shorter than --renew-deadline (1s)",
                 id="a-short-renew-deadline-with-the-default-retry-period"),
    pytest.param(True, ("15", None, None), "--lease-duration: expected a duration", id="a-bare-number"),
    pytest.param(True, (None, None, "0s"), "--retry-period: expected a duration above 0, got 0s", id="zero"),
    pytest.param(True, (None, "soon", None), "--renew-deadline: expected a duration", id="not-a-duration"),
    pytest.param(False, ("4s", None, "1s"), "--lease-duration, --retry-period: the Lease's timings apply to "
                 "--leader-elect only", id="without-leader-elect"),
])
def test_timings_that_cannot_work_are_refused_naming_the_option(leader_elect, given, message):
    with pytest.raises(ValueError) as caught:
        lease_timings(leader_elect, *given)
    assert str(caught.value).startswith(message), str(caught.value)


def test_run_refuses_them_in_one_line_before_starting(tmp_path):
    (tmp_path / "p.yaml").write_text("not read: the options are refused first")
    result = CliRunner().invoke(app, ["run", "-p", str(tmp_path / "p.yaml"), "--prometheus", "http://127.0.0.1:9",
                                      "--leader-elect", "--lease-duration", "4s", "--renew-deadline", "5s"])
    assert result.exit_code == 1, result.output
    assert "--renew-deadline (5s) must be shorter than --lease-duration (4s)" in result.stderr
    assert "Traceback" not in result.output


def test_the_lease_held_says_the_duration_given(server, leases, tmp_path):  # noqa: F811
    """A standby reads the holder's leaseDurationSeconds: the duration given is the one written."""
    proc = start_run(server, tmp_path, "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms")
    try:
        wait_until(lambda: holder(leases) is not None, START_TIMEOUT_S, "the Lease to be taken")
        assert leases.read_namespaced_lease(LEASE, NS, _request_timeout=5).spec.lease_duration_seconds == 4
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc, 20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
