"""Unknown and duplicate fields under the ``fieldValidation`` query parameter, as a 1.27+ apiserver
answers them (simulators/kubeapi/field_validation.py): Strict refuses the request naming every
one (400 for a create or update, 422 on field ``patch`` for a patch), Warn (the default) accepts it
with a ``Warning: 299`` header per field, Ignore says nothing; an unknown field is never stored.

Through the official Python client's transport (its typed methods refuse unknown fields before
sending: pydantic models), raw HTTP for duplicate keys (no JSON library writes them), and the real
kubectl's ``apply``/``replace`` with ``--validate`` strict (the default), warn and false. Every
request is bounded by a timeout; the engine stays still (``drive=False``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from simulators.kubeapi import field_validation as FV
from simulators.kubeapi.http import WARNING_ITEM_RUNES, WARNINGS_TOTAL_RUNES, warning_headers
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, TOKEN, official_client, start_server

NS = "shop"
KUBECTL = shutil.which("kubectl")
PROCESS_TIMEOUT_S = 30
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
JSON, MERGE, STRATEGIC, JSON_PATCH = ("application/json", "application/merge-patch+json",
                                      "application/strategic-merge-patch+json", "application/json-patch+json")


@pytest.fixture
def sim(tmp_path):
    """sim serve (engine still) and the official client's ApiClient on it."""
    srv = start_server()
    api_client = official_client(srv, tmp_path)
    yield srv, api_client
    api_client.close()
    srv.stop()


def send(api_client, method: str, path: str, body, content_type: str = JSON,
         field_validation: str | None = None) -> tuple[int, dict, list[str]]:
    """One request through the official client's transport (its auth, TLS and JSON encoding):
    (status, decoded body, Warning header values)."""
    query = [("fieldValidation", field_validation)] if field_validation is not None else []
    method, url, headers, body, _ = api_client.param_serialize(
        method, path, query_params=query, header_params={"Content-Type": content_type}, body=body,
        auth_settings=["BearerToken"])
    response = api_client.call_api(method, url, headers, body, _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    return response.status, json.loads(response.data), response.headers.getlist("Warning")


def raw(srv, method: str, path: str, body: bytes, content_type: str = JSON) -> tuple[int, dict, list[str]]:
    """One request with a body sent byte for byte (duplicate keys survive): (status, body, warnings)."""
    request = urllib.request.Request(f"{srv.url}{path}", data=body, method=method, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S, context=srv.client_ssl_context()) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get_all("Warning") or []
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get_all("Warning") or []


def stored(api_client, path: str) -> dict:
    """The object at ``path`` as the server has it (read raw: the client's models would drop what they do not know)."""
    status, obj, _ = send(api_client, "GET", path, None)
    assert status == 200, obj
    return obj


def at(obj, *keys):
    """obj[k0][k1]..., None when a key or index is missing."""
    for key in keys:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def warned(*paths: str) -> list[str]:
    """The Warning header values of unknown fields at ``paths``."""
    return ['299 - "unknown field \\"%s\\""' % p for p in paths]


def deployment_with_container_field(api_client) -> dict:
    """The web Deployment as read, with a misspelt field in its container (a replace of it)."""
    obj = stored(api_client, DEPLOYMENT)
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return obj


HPA_V2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "minReplicas": 2, "maxReplicas": 6,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                       "type": "Utilization", "averageUtilization": 60, "averageUtilisation": 50}}}],
                   "foo": 1}}

# (id, method, path to send to, body or a function of the client making it, content type,
#  path of the object written, strict status, strict message (prefix, suffix), the unknown fields' paths)
UNKNOWN_FIELD_REQUESTS = [
    pytest.param("POST", f"/api/v1/namespaces/{NS}/configmaps",
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"},
                  "dta": {"b": "2"}}, JSON, f"/api/v1/namespaces/{NS}/configmaps/settings", 400,
                 ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                  'unknown field "dta"', ""), ["dta"], id="create-configmap-top-level"),
    pytest.param("POST", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", HPA_V2, JSON,
                 f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/web", 400,
                 ('HorizontalPodAutoscaler in version "v2" cannot be handled as a HorizontalPodAutoscaler: strict '
                  'decoding error: unknown field "spec.metrics[0].resource.target.averageUtilisation", '
                  'unknown field "spec.foo"', ""),
                 ["spec.metrics[0].resource.target.averageUtilisation", "spec.foo"], id="create-hpa-v2-nested-in-a-list"),
    pytest.param("POST", f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers",
                 {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                  "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
                           "targetCPUUtilisationPercentage": 70}}, JSON,
                 f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers/web", 400,
                 ('HorizontalPodAutoscaler in version "v1" cannot be handled as a HorizontalPodAutoscaler: strict '
                  'decoding error: unknown field "spec.targetCPUUtilisationPercentage"', ""),
                 ["spec.targetCPUUtilisationPercentage"], id="create-hpa-through-autoscaling-v1"),
    pytest.param("POST", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
                 {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "holder": "b"}}, JSON,
                 f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/leader", 400,
                 ('Lease in version "v1" cannot be handled as a Lease: strict decoding error: '
                  'unknown field "spec.holder"', ""), ["spec.holder"], id="create-lease"),
    pytest.param("POST", "/api/v1/namespaces", {"metadata": {"name": "team", "lables": {"a": "b"}}}, JSON,
                 "/api/v1/namespaces/team", 400,
                 ('Namespace in version "v1" cannot be handled as a Namespace: strict decoding error: '
                  'unknown field "metadata.lables"', ""), ["metadata.lables"], id="create-namespace-in-metadata"),
    pytest.param("PUT", DEPLOYMENT, deployment_with_container_field, JSON, DEPLOYMENT, 400,
                 ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                  'unknown field "spec.template.spec.containers[0].imagePullPolicyy"', ""),
                 ["spec.template.spec.containers[0].imagePullPolicyy"], id="replace-deployment-in-its-container"),
    pytest.param("PATCH", DEPLOYMENT, {"spec": {"replicas": 3, "replica": 4}}, STRATEGIC, DEPLOYMENT, 422,
                 (' "" is invalid: patch: Invalid value: "map[spec:map[replica:4 replicas:3]]": strict decoding '
                  'error: unknown field "spec.replica"', ""), ["spec.replica"], id="strategic-merge-patch"),
    pytest.param("PATCH", DEPLOYMENT, {"spec": {"paused": False, "pasued": True}}, MERGE, DEPLOYMENT, 422,
                 (' "" is invalid: patch: Invalid value: "{', '}": strict decoding error: unknown field "spec.pasued"'),
                 ["spec.pasued"], id="merge-patch"),
    pytest.param("PATCH", DEPLOYMENT, [{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicyy",
                                        "value": "Always"}], JSON_PATCH, DEPLOYMENT, 422,
                 (' "" is invalid: patch: Invalid value: "{',
                  '}": strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy"'),
                 ["spec.template.spec.containers[0].imagePullPolicyy"], id="json-patch"),
    pytest.param("PATCH", f"{DEPLOYMENT}/scale", {"spec": {"replicas": 3, "replicass": 4}}, MERGE,
                 f"{DEPLOYMENT}/scale", 422,
                 (' "" is invalid: patch: Invalid value: "{', '}": strict decoding error: unknown field "spec.replicass"'),
                 ["spec.replicass"], id="patch-of-the-scale-subresource"),
    pytest.param("PUT", f"{DEPLOYMENT}/scale",
                 {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
                  "spec": {"replicas": 3}, "status": {"replica": 3}}, JSON, f"{DEPLOYMENT}/scale", 400,
                 ('Scale in version "v1" cannot be handled as a Scale: strict decoding error: '
                  'unknown field "status.replica"', ""), ["status.replica"], id="replace-of-the-scale-subresource"),
]


@pytest.mark.parametrize("method, path, body, content_type, written, strict_status, strict_message, unknown",
                         UNKNOWN_FIELD_REQUESTS)
def test_strict_refuses_an_unknown_field_naming_its_path_and_stores_nothing(sim, method, path, body, content_type,
                                                                             written, strict_status, strict_message,
                                                                             unknown):
    srv, api_client = sim
    before = send(api_client, "GET", written, None)
    body = body(api_client) if callable(body) else body
    status, answer, warnings = send(api_client, method, path, body, content_type, "Strict")
    assert (status, answer["reason"]) == (strict_status, "BadRequest" if strict_status == 400 else "Invalid"), answer
    assert answer["message"].startswith(strict_message[0]) and answer["message"].endswith(strict_message[1]), \
        answer["message"]
    assert warnings == []
    assert send(api_client, "GET", written, None)[:2] == before[:2]  # nothing written: not created, not changed


@pytest.mark.parametrize("directive", ["Warn", None, "Ignore"], ids=["warn", "absent-means-warn", "ignore"])
@pytest.mark.parametrize("method, path, body, content_type, written, strict_status, strict_message, unknown",
                         UNKNOWN_FIELD_REQUESTS)
def test_warn_and_ignore_accept_the_request_and_drop_the_unknown_field(sim, directive, method, path, body,
                                                                       content_type, written, strict_status,
                                                                       strict_message, unknown):
    srv, api_client = sim
    body = body(api_client) if callable(body) else body
    status, answer, warnings = send(api_client, method, path, body, content_type, directive)
    assert status in (200, 201), answer
    assert warnings == ([] if directive == "Ignore" else warned(*unknown))
    obj = stored(api_client, written)
    for dotted in unknown:  # never stored: the written object and what a read returns lack it
        keys = [int(k) if k.isdigit() else k for k in dotted.replace("[", ".").replace("]", "").split(".")]
        assert at(answer, *keys) is None and at(obj, *keys) is None, dotted


INVALID_HPA = {**HPA_V2, "spec": {**HPA_V2["spec"], "maxReplicas": 0}}


@pytest.mark.parametrize("directive", ["Warn", "Ignore"])
@pytest.mark.parametrize("method, path, body, content_type, unknown", [
    pytest.param("POST", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", INVALID_HPA, JSON,
                 ["spec.metrics[0].resource.target.averageUtilisation", "spec.foo"], id="create"),
    pytest.param("PATCH", DEPLOYMENT, {"spec": {"replicas": -1, "replica": 4}}, MERGE, ["spec.replica"],
                 id="patch"),
    pytest.param("PUT", f"{DEPLOYMENT}/scale",
                 {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
                  "spec": {"replicas": -1}, "status": {"replica": 3}}, JSON, ["status.replica"],
                 id="replace-of-the-scale-subresource"),
])
def test_a_request_refused_after_its_decoding_still_carries_its_warnings(sim, directive, method, path, body,
                                                                         content_type, unknown):
    """As the apiserver's warning recorder has written them before the 422 (kubectl prints
    ``Warning: unknown field`` above ``is invalid``): the typo that may be the cause is said."""
    srv, api_client = sim
    status, answer, warnings = send(api_client, method, path, body, content_type, directive)
    assert (status, answer["reason"]) == (422, "Invalid"), answer
    assert warnings == ([] if directive == "Ignore" else warned(*unknown))


@pytest.mark.parametrize("path, body, content_type, strict_status, message, warnings, check", [
    pytest.param(f"/api/v1/namespaces/{NS}/configmaps",
                 b'{"metadata": {"name": "twice", "labels": {"a": "1", "a": "2"}}, "data": {"k": "old"},'
                 b' "data": {"k": "new"}}', JSON, 400,
                 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                 'duplicate field "metadata.labels.a", duplicate field "data"',
                 ['299 - "duplicate field \\"metadata.labels.a\\""', '299 - "duplicate field \\"data\\""'],
                 (("metadata", "labels", "a"), "2"), id="create-with-a-duplicate-map-key-and-struct-field"),
    pytest.param(DEPLOYMENT, b'{"spec": {"replicas": 3, "replicas": 4}}', STRATEGIC, 422,
                 ' "" is invalid: patch: Invalid value: "map[spec:map[replicas:4]]": strict decoding error: '
                 'duplicate field "spec.replicas"', ['299 - "duplicate field \\"spec.replicas\\""'],
                 (("spec", "replicas"), 4), id="strategic-merge-patch-last-wins"),
    pytest.param(DEPLOYMENT, b'[{"op": "replace", "path": "/spec/paused", "path": "/spec/replicas", "value": 5}]',
                 JSON_PATCH, 422, 'strict decoding error: json patch duplicate field "[0].path"',
                 ['299 - "json patch duplicate field \\"[0].path\\""'], (("spec", "replicas"), 5),
                 id="json-patch-operation"),
])
@pytest.mark.parametrize("directive", ["Strict", "Warn"])
def test_duplicate_fields_are_strict_errors_and_the_last_one_wins_otherwise(sim, directive, path, body, content_type,
                                                                          strict_status, message, warnings, check):
    srv, api_client = sim
    method = "POST" if path.endswith("configmaps") else "PATCH"
    status, answer, sent_warnings = raw(srv, method, f"{path}?fieldValidation={directive}", body, content_type)
    if directive == "Strict":
        assert status == strict_status and answer["message"].endswith(message), answer
        return
    assert status in (200, 201) and sent_warnings == warnings, answer
    keys, value = check
    assert at(answer, *keys) == value


@pytest.mark.parametrize("method, path, body, content_type, options", [
    pytest.param("POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "a"}}, JSON, "CreateOptions",
                 id="create"),
    pytest.param("PUT", f"{DEPLOYMENT}/scale", {"metadata": {"name": "web"}, "spec": {"replicas": 3}}, JSON,
                 "UpdateOptions", id="update"),
    pytest.param("PATCH", DEPLOYMENT, {"spec": {"replicas": 3}}, MERGE, "PatchOptions", id="patch"),
])
def test_a_field_validation_value_the_apiserver_does_not_know_is_422(sim, method, path, body, content_type, options):
    srv, api_client = sim
    status, answer, _ = send(api_client, method, path, body, content_type, "strict")  # lower case: not a value
    assert status == 422 and answer["reason"] == "Invalid"
    assert answer["message"] == (f'{options}.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": '
                                 f'supported values: "", "Ignore", "Strict", "Warn"')
    assert stored(api_client, DEPLOYMENT)["spec"]["replicas"] == 2


@pytest.mark.parametrize("path", [
    pytest.param(DEPLOYMENT, id="deployment"),
    pytest.param(f"{DEPLOYMENT}/scale", id="scale"),
    pytest.param(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/web", id="hpa-v2-with-status"),
    pytest.param(f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers/web", id="hpa-v1-with-status"),
    pytest.param(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/leader", id="lease"),
    pytest.param(f"/api/v1/namespaces/{NS}", id="namespace"),
])
def test_what_the_server_serves_goes_back_under_strict_validation(sim, path):
    # a client that reads an object and replaces it with Strict must not trip on the server's own fields
    srv, api_client = sim
    hpa = {k: v for k, v in HPA_V2.items()}
    hpa["spec"] = {k: v for k, v in HPA_V2["spec"].items() if k != "foo"}
    hpa["spec"]["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 60}}}]
    assert send(api_client, "POST", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", hpa)[0] == 201
    assert send(api_client, "POST", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
                {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})[0] == 201
    srv.world.advance(6)  # two HPA syncs: status, conditions, current metrics, managedFields of the scale writes
    obj = stored(api_client, path)
    status, answer, warnings = send(api_client, "PUT", path, obj, JSON, "Strict")
    assert status == 200 and warnings == [], answer


def test_known_fields_file_is_what_the_installed_client_models_say():
    from tests.support import kube_known_fields

    document = json.loads(FV.KNOWN_FIELDS_FILE.read_text())
    fresh = kube_known_fields.known_fields_document()
    if document["source"] != fresh["source"]:
        pytest.skip(f"known_fields.json was made from another client ({document['source']}); "
                    f"regenerate it with python -m tests.support.kube_known_fields")
    assert FV.KNOWN_FIELDS_FILE.read_text() == kube_known_fields.render(fresh), \
        "known_fields.json is stale: python -m tests.support.kube_known_fields"


@pytest.mark.parametrize("texts, expected", [
    pytest.param(['unknown field "a"'], ['299 - "unknown field \\"a\\""'], id="quoted"),
    pytest.param(["same", "same", "", "bad\nline"], ['299 - "same"'], id="each-once-none-empty-or-with-control"),
    pytest.param(["x" * 3800, "y" * 200], ['299 - "' + "x" * 3800 + '"', '299 - "' + "y" * 200 + '"'],
                 id="within-the-total"),
    pytest.param(["x" * 4000, "y" * 200, "z"], ['299 - "' + "x" * WARNING_ITEM_RUNES + '"',
                                                 '299 - "' + "y" * 200 + '"', '299 - "z"'],
                 id="past-the-total-all-cut"),
    pytest.param([f"w{i:02d}" + "v" * 300 for i in range(20)],
                 ['299 - "' + (f"w{i:02d}" + "v" * 300)[:WARNING_ITEM_RUNES] + '"'
                  for i in range(WARNINGS_TOTAL_RUNES // WARNING_ITEM_RUNES)], id="cut-ones-past-the-total-dropped"),
])
def test_warning_headers_are_bounded_as_the_apiservers_recorder_bounds_them(texts, expected):
    assert warning_headers(texts) == expected


# --------------------------------------------------------------------------- kubectl
HPA_MANIFEST = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: %d
  foo: 1
"""


@pytest.fixture
def kubectl_env(sim, tmp_path):
    """The environment that points kubectl at the server (namespace shop, a fresh discovery cache)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (CI has /usr/bin/kubectl)")
    srv, api_client = sim
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubectl-config", namespace=NS)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
            "HOME": str(tmp_path)}


def kubectl(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--request-timeout=5s", *args], env=env, capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT_S)


@pytest.mark.parametrize("first, verb, flags, code, says, stored_max", [
    # a new object: kubectl POSTs it with ?fieldValidation=Strict (its --validate default), Warn, or Ignore
    pytest.param(None, "apply", (), 1, 'Error from server (BadRequest): error when creating "{file}": '
                 'HorizontalPodAutoscaler in version "v2" cannot be handled as a HorizontalPodAutoscaler: strict '
                 'decoding error: unknown field "spec.foo"', None, id="apply-create-strict-by-default"),
    pytest.param(None, "apply", ("--validate=strict",), 1, 'strict decoding error: unknown field "spec.foo"', None,
                 id="apply-create-validate-strict"),
    pytest.param(None, "apply", ("--validate=warn",), 0, 'Warning: unknown field "spec.foo"', 5,
                 id="apply-create-validate-warn"),
    pytest.param(None, "apply", ("--validate=false",), 0, "", 5, id="apply-create-validate-false"),
    pytest.param(None, "create", (), 1, 'strict decoding error: unknown field "spec.foo"', None,
                 id="create-strict-by-default"),
    # an existing object: kubectl apply PATCHes it (a strategic merge patch), kubectl replace PUTs it
    pytest.param(3, "apply", (), 1, 'The request is invalid: patch: Invalid value: "map[', 3,
                 id="apply-patch-strict-by-default"),
    pytest.param(3, "apply", ("--validate=warn",), 0, 'Warning: unknown field "spec.foo"', 5,
                 id="apply-patch-validate-warn"),
    pytest.param(3, "apply", ("--validate=ignore",), 0, "", 5, id="apply-patch-validate-ignore"),
    pytest.param(3, "replace", (), 1, 'strict decoding error: unknown field "spec.foo"', 3,
                 id="replace-strict-by-default"),
])
def test_kubectl_validate_flag_reaches_the_server(sim, kubectl_env, tmp_path, first, verb, flags, code, says,
                                                  stored_max):
    srv, api_client = sim
    if first is not None:  # the object exists already, applied without the unknown field
        (tmp_path / "first.yaml").write_text((HPA_MANIFEST % first).replace("  foo: 1\n", ""))
        assert kubectl(kubectl_env, "apply", "-f", str(tmp_path / "first.yaml")).returncode == 0
    manifest = tmp_path / "hpa.yaml"
    manifest.write_text(HPA_MANIFEST % 5)
    proc = kubectl(kubectl_env, verb, "-f", str(manifest), *flags)
    assert proc.returncode == code, proc.stderr
    if says:
        assert says.format(file=manifest) in proc.stderr, proc.stderr
    else:
        assert "Warning" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    got = send(api_client, "GET", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/web", None)
    assert (got[1]["spec"]["maxReplicas"] if got[0] == 200 else None) == stored_max
    assert got[0] != 200 or "foo" not in got[1]["spec"]
