"""A DELETE's grace and a StatefulSet's terminating pods, through the official client against sim
serve, as the real API and StatefulSet controller behave:

- ``DeleteOptions.gracePeriodSeconds`` replaces the pod's terminationGracePeriodSeconds (30 s
  here), in the query (``grace_period_seconds=``) or in the body (``body=V1DeleteOptions(...)``;
  with a body the apiserver reads no query: DeleteResource); 0 removes the pod at once; a negative
  one counts as 1 s (rest.BeforeDelete), not an error; a non-integer is a 400 (the query's
  strconv error; the body's encoding/json error, a 400 since Kubernetes 1.35); a second DELETE may
  only shorten the grace (0: gone now);
- a StatefulSet's deleted pod is replaced under its name only once it is gone, and an OrderedReady
  scale-down removes the next pod only once the last is gone (stateful_set_control.go waits on
  terminating pods); meanwhile status.replicas counts the terminating pod, readyReplicas,
  currentReplicas and updatedReplicas do not (computeReplicaStatus).

The engine is stepped by hand: ticks of 5 s, start-up 10 s.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, official_client
from tests.adapters.test_statefulset_contract import STS_YAML, serve_sts

NS = "shop"
#: web a StatefulSet of 3 pods (web-0..2); api a Deployment of 3
STS3_YAML = STS_YAML.replace("      initialReplicas: 2\n", "      initialReplicas: 3\n", 1)
assert STS3_YAML.count("initialReplicas: 3") == 2


@pytest.fixture
def server():
    yield from serve_sts(STS3_YAML)


@pytest.fixture
def apis(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.CoreV1Api(c), client.AppsV1Api(c)
    c.close()


def pods(core, app: str) -> dict:
    """``app``'s pods by name: "T" terminating (with its deletionGracePeriodSeconds), "R" Ready, "-" not."""
    out = {}
    for p in core.list_namespaced_pod(NS, label_selector=f"app={app}").items:
        if p.metadata.deletion_timestamp is not None:
            out[p.metadata.name] = f"T{p.metadata.deletion_grace_period_seconds}"
        else:
            ready = next((c.status for c in p.status.conditions or () if c.type == "Ready"), "False")
            out[p.metadata.name] = "R" if ready == "True" else "-"
    return out


def api_pod(core) -> str:
    return sorted(pods(core, "api"))[0]


# ------------------------------------------------------------------ gracePeriodSeconds
def in_query(grace):
    return lambda core, name: core.delete_namespaced_pod(name, NS, grace_period_seconds=grace)


def in_body(grace):
    return lambda core, name: core.delete_namespaced_pod(name, NS, body=client.V1DeleteOptions(
        grace_period_seconds=grace))


def body_and_query(body_grace, query_grace):
    return lambda core, name: core.delete_namespaced_pod(name, NS, grace_period_seconds=query_grace,
                                                         body=client.V1DeleteOptions(grace_period_seconds=body_grace))


@pytest.mark.parametrize("delete, grace_s", [
    pytest.param(in_query(10), 10, id="query-10s"),
    pytest.param(in_body(10), 10, id="body-10s"),
    pytest.param(in_query(0), 0, id="query-0-gone-at-once"),
    pytest.param(in_body(0), 0, id="body-0-gone-at-once"),
    pytest.param(in_query(-5), 1, id="query-negative-counts-as-1s"),
    pytest.param(in_body(-5), 1, id="body-negative-counts-as-1s"),
    pytest.param(body_and_query(15, 5), 15, id="body-read-query-not"),
    pytest.param(in_query(None), 30, id="none-the-templates-30s"),
])
def test_a_delete_s_grace_period_replaces_the_template_s(server, apis, delete, grace_s):
    """Returned and listed terminating with the DELETE's grace, gone once it has passed."""
    core, _ = apis
    victim = api_pod(core)
    returned = delete(core, victim)
    assert returned.metadata.deletion_grace_period_seconds == grace_s
    looks = []
    for _ in range(8):
        looks.append(pods(core, "api").get(victim))
        server.world.advance(1)
    terminating = -(-grace_s // 5)  # looks of 5 s while it terminates (the deletion's look included)
    assert looks == [f"T{grace_s}"] * terminating + [None] * (8 - terminating), looks


def delete_raw(core, name: str, query: list[tuple[str, str]], body) -> tuple[int, dict]:
    """A DELETE of pod ``name`` through the official client's transport (its auth, TLS and JSON
    encoding) with what its typed methods refuse to send: (status, decoded body)."""
    api = core.api_client
    method, url, headers, data, _ = api.param_serialize(
        "DELETE", f"/api/v1/namespaces/{NS}/pods/{name}", query_params=query,
        header_params={"Content-Type": "application/json"}, body=body, auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, data, _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    return response.status, json.loads(response.data)


@pytest.mark.parametrize("query, body, message", [
    pytest.param([("gracePeriodSeconds", "abc")], None, 'strconv.ParseInt: parsing "abc": invalid syntax',
                 id="query-not-a-number"),
    pytest.param([("gracePeriodSeconds", "2.5")], None, 'strconv.ParseInt: parsing "2.5": invalid syntax',
                 id="query-not-an-integer"),
    pytest.param([], {"gracePeriodSeconds": "ten"},
                 "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
                 id="body-a-string"),
    pytest.param([], {"gracePeriodSeconds": 2.5},
                 "json: cannot unmarshal number 2.5 into Go struct field DeleteOptions.gracePeriodSeconds of type "
                 "int64", id="body-not-an-integer"),
    pytest.param([], {"gracePeriodSeconds": True},
                 "json: cannot unmarshal bool into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
                 id="body-a-bool"),
])
def test_a_grace_period_that_is_not_an_integer_is_a_bad_request(server, apis, query, body, message):
    core, _ = apis
    victim = api_pod(core)
    status, answer = delete_raw(core, victim, query, body)
    assert (status, answer["reason"], answer["message"]) == (400, "BadRequest", message)
    assert pods(core, "api")[victim] == "R"  # not deleted


@pytest.mark.parametrize("second_grace, after_second", [
    pytest.param(40, "T30", id="longer-ignored"),
    pytest.param(20, "T20", id="shorter-taken"),
    pytest.param(0, None, id="zero-gone-now"),
])
def test_a_second_delete_only_shortens_the_grace(server, apis, second_grace, after_second):
    core, _ = apis
    victim = api_pod(core)
    core.delete_namespaced_pod(victim, NS)
    server.world.advance(1)
    again = core.delete_namespaced_pod(victim, NS, grace_period_seconds=second_grace)
    assert again.metadata.name == victim
    assert pods(core, "api").get(victim) == after_second


# ------------------------------------------------------------------ a StatefulSet's terminating pods
def sts_status(apps) -> tuple:
    st = apps.read_namespaced_stateful_set("web", NS).status
    return st.replicas, st.ready_replicas, st.current_replicas, st.updated_replicas


def deleted_web_1(core, apps) -> None:
    core.delete_namespaced_pod("web-1", NS)


def deleted_web_1_with_10s(core, apps) -> None:
    core.delete_namespaced_pod("web-1", NS, grace_period_seconds=10)


def scaled_to_1(core, apps) -> None:
    apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 1}})


def web(pods_now: dict) -> str:
    return " ".join(f"{name}:{state}" for name, state in sorted(pods_now.items()))


@pytest.mark.parametrize("act, looks", [
    # 30 s of grace: web-1 terminating for 6 looks, then recreated under its name (starting), Ready 10 s later
    pytest.param(deleted_web_1, [("web-0:R web-1:T30 web-2:R", (3, 2, 2, 2))] * 6 + [
        ("web-0:R web-1:- web-2:R", (3, 2, 3, 3))] * 2 + [("web-0:R web-1:R web-2:R", (3, 3, 3, 3))],
        id="deleted-pod-replaced-under-its-name-once-gone"),
    pytest.param(deleted_web_1_with_10s, [("web-0:R web-1:T10 web-2:R", (3, 2, 2, 2))] * 2 + [
        ("web-0:R web-1:- web-2:R", (3, 2, 3, 3))] * 2 + [("web-0:R web-1:R web-2:R", (3, 3, 3, 3))] * 5,
        id="deleted-with-10s-replaced-sooner"),
    # OrderedReady: web-2 at the write; web-1 only once web-2 is gone (30 s), then gone 30 s later
    pytest.param(scaled_to_1, [("web-0:R web-1:R web-2:T30", (3, 2, 2, 2))] * 6 + [
        ("web-0:R web-1:T30", (2, 1, 1, 1))] * 6 + [("web-0:R", (1, 1, 1, 1))],
        id="ordered-scale-down-waits-for-each-pod-to-be-gone"),
])
def test_a_statefulset_waits_for_its_terminating_pods(server, apis, act, looks):
    """Pods and (replicas, ready, current, updated) at the change and after each tick: a terminating
    pod counts in replicas only; its replacement (same name) or the next removal waits until it is gone."""
    core, apps = apis
    act(core, apps)
    seen = []
    for _ in looks:
        seen.append((web(pods(core, "web")), sts_status(apps)))
        server.world.advance(1)
    assert seen == looks


def test_a_statefulset_s_pod_deleted_again_with_no_grace_is_replaced_at_once(server, apis):
    """``kubectl delete pod web-1 --grace-period=0 --force`` on a terminating pod: gone now, and
    the StatefulSet controller recreates it under its name at once."""
    core, apps = apis
    core.delete_namespaced_pod("web-1", NS)
    server.world.advance(1)
    assert web(pods(core, "web")) == "web-0:R web-1:T30 web-2:R"
    core.delete_namespaced_pod("web-1", NS, grace_period_seconds=0)
    assert (web(pods(core, "web")), sts_status(apps)) == ("web-0:R web-1:- web-2:R", (3, 2, 3, 3))


@pytest.mark.parametrize("declared, template_field, listed", [
    pytest.param("", None, "T30", id="default-30s-not-written-in-the-template"),
    pytest.param("      terminationGracePeriod: 10s\n", 10, "T10", id="scenario-10s"),
])
def test_the_scenario_sets_the_pods_grace(tmp_path, declared, template_field, listed):
    """A scenario's ``terminationGracePeriod`` is its pods' terminationGracePeriodSeconds."""
    yaml = STS3_YAML.replace("      kind: StatefulSet\n", "      kind: StatefulSet\n" + declared)
    for srv in serve_sts(yaml):
        c = official_client(srv, tmp_path)
        core, apps = client.CoreV1Api(c), client.AppsV1Api(c)
        template = apps.read_namespaced_stateful_set("web", NS).spec.template.spec
        assert template.termination_grace_period_seconds == template_field
        core.delete_namespaced_pod("web-1", NS)
        assert pods(core, "web")["web-1"] == listed
        c.close()
