"""Every Event Setpoint writes fits in 1024 bytes, and sim serve refuses one that the real
apiserver would.

The apiserver (pkg/apis/core/validation/events.go, legacyValidateEvent) holds an Event whose
``eventTime`` is set to events.k8s.io/v1's rules on core/v1 too: its message at most 1024 bytes
(NoteLengthLimit), reason, action and reportingInstance at most 128, each required with
reportingComponent; without eventTime core/v1 has no limit on the message. The adapter's
recorder (the one place Event bodies are built) sets eventTime and cuts a longer message at a word
with " …", an action Event's tail (`` (policy NAME)``, read back by prior_actions) kept. Before, a
RevisionWorseRecorded message of two checks passed 1 KB and was written whole (no eventTime:
nothing refused it), one long line in kubectl describe."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import EVENT_MESSAGE_BYTES, fit_event_message
from controller.model import Action, ActionKind
from controller.runtime.healing import revision_worse_notice
from tests.adapters.kube_helpers import api_client, server  # noqa: F401 (fixtures)
from tests.adapters.test_kubernetes_adapter import WEB, make_cluster
from tests.runtime.test_revision_worse_said import LONG, TWO_CHECKS, long_status, two_checks_judged

WORDS = "the canary serves errors " * 60  # 1500 bytes, words of 3 to 7 letters

FIT_ROWS = {
    # name: (message, tail, limit, expected)
    "fits: unchanged": ("revision 2 is worse", "", 1024, "revision 2 is worse"),
    "exactly the limit: unchanged": ("a" * 1024, "", 1024, "a" * 1024),
    "over: cut at the last whole word, an ellipsis": ("alpha beta gamma delta", "", 16, "alpha beta …"),
    "a cut after punctuation drops it": ("alpha; beta gamma", "", 12, "alpha …"),
    "the tail kept whole": ("reason: alpha beta gamma", " (policy p)", 30, "reason: alpha …" + " (policy p)"),
    "one long word: cut inside it": ("x" * 40, "", 12, "x" * 8 + " …"),  # " …": 4 bytes
    "never half a multi-byte character": ("é" * 20, "", 12, "é" * 4 + " …"),
}


@pytest.mark.parametrize("name", list(FIT_ROWS))
def test_a_message_is_fitted(name):
    message, tail, limit, expected = FIT_ROWS[name]
    fitted = fit_event_message(message, tail, limit)
    assert fitted == expected and len(fitted.encode()) <= limit, fitted


def _event(message: str, *, event_time: bool = True, **fields) -> dict:
    """A core/v1 Event on web as the adapter writes one, ``fields`` changed (None: left out)."""
    body = {"metadata": {"generateName": "web."}, "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                     "name": "web", "namespace": "shop"},
            "reason": "RevisionWorseRecorded", "message": message, "type": "Warning", "action": "RevisionWorseRecorded",
            "source": {"component": "setpoint"}, "reportingComponent": "setpoint", "reportingInstance": "setpoint-0",
            "firstTimestamp": "2026-05-28T20:26:40Z", "lastTimestamp": "2026-05-28T20:26:40Z", "count": 1}
    if event_time:
        body["eventTime"] = "2026-05-28T20:26:40.123456Z"
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


SIM_ROWS = {
    # name: (body, the apiserver's field error or None: created)
    "1024 bytes with eventTime: created": (_event("é" * 512), None),
    "1025 bytes with eventTime: refused": (_event("é" * 512 + "x"), 'message: Invalid value: "": can have at most 1024 '
                                                                     "characters"),
    "a long message without eventTime: created (core/v1 has no limit)": (_event("x" * 5000, event_time=False), None),
    "eventTime without action: refused": (_event("short", action=None), "action: Required value"),
    "eventTime without reportingComponent: refused": (_event("short", reportingComponent=None),
                                                      "reportingComponent: Required value"),
    "a reason of 129 bytes: refused": (_event("short", reason="R" * 129), 'reason: Invalid value: "": can have at most '
                                                                          "128 characters"),
}


@pytest.mark.parametrize("name", list(SIM_ROWS))
def test_sim_serve_validates_an_event_as_the_apiserver(name, api_client):  # noqa: F811
    body, error = SIM_ROWS[name]
    core = client.CoreV1Api(api_client)
    if error is None:
        created = core.create_namespaced_event("shop", body)
        assert created.message == body["message"]
        return
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_event("shop", body)
    status = json.loads(raised.value.body)
    assert raised.value.status == 422 and status["message"].endswith(f" is invalid: {error}"), status


def _events(api_client, reason: str) -> list:  # noqa: F811
    return [e for e in client.CoreV1Api(api_client).list_namespaced_event(WEB.namespace, _request_timeout=5).items
            if e.reason == reason]


def test_a_two_check_revision_worse_event_is_written_cut_to_1kb(server, api_client, tmp_path):  # noqa: F811
    """The notice of two checks (over 1 KB) reaches the cluster, cut at its end: the revisions,
    both checks' names, the verdict and the undo kept. Without the cut sim serve refuses it. (The
    notice of StatefulSet LONG, written on web: the namespace sim serve has.)"""
    params, judged = two_checks_judged()
    notice = revision_worse_notice(params, judged, 0, long_status(), LONG, "payments-ledger-healing")
    assert len(notice.encode()) > EVENT_MESSAGE_BYTES
    kc = make_cluster(server, tmp_path)
    try:
        kc.record_event(WEB, "RevisionWorseRecorded", notice, warning=True)
        assert kc.events.flush()
        failed = kc.events.failed
    finally:
        kc.close()
    assert failed == 0
    (event,) = _events(api_client, "RevisionWorseRecorded")
    message = event.message
    assert len(message.encode()) <= EVENT_MESSAGE_BYTES and message.endswith(" …"), message
    assert notice.startswith(message[:-2]), message
    assert (f"of StatefulSet {LONG.name} is worse than the stable revision 1 by {TWO_CHECKS[0]}, {TWO_CHECKS[1]}; "
            "recorded only: `kubectl rollout undo") in message, message
    assert event.event_time is not None and event.action == "RevisionWorseRecorded", event


def test_an_action_event_with_a_long_reason_reads_back_with_its_policy(server, tmp_path):  # noqa: F811
    """A restart's reason of 1500 bytes: the message is cut inside the reason, `` (policy heal)``
    kept, so a new leader still reads the action back as that policy's."""
    kc = make_cluster(server, tmp_path)
    try:
        kc.observe([WEB])
        kc.apply(Action(ActionKind.ROLLING_RESTART, WEB, WORDS.strip(), policy="heal"))
        assert kc.events.flush()
        failed = kc.events.failed
        found = kc.prior_actions([WEB.namespace])
    finally:
        kc.close()
    assert failed == 0
    (action,) = found.actions
    assert (action.action, action.policy) == ("rolling-restart", "heal"), action
    assert action.reason.endswith(" …") and WORDS.startswith(action.reason[:-2]), action.reason
