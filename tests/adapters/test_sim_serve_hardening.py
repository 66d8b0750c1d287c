"""The simulated apiserver against hostile clients: missing or wrong tokens (test hooks too),
malformed requests (each gets its status and a Kubernetes Status), slow and idle connections
(they cannot starve a normal client), and token files written 0600.

Raw requests go over plain sockets on 127.0.0.1 so that the bytes are exactly the ones in the
table; every socket has a timeout and every wait is bounded. The HTTP-layer tests run against
plain-HTTP servers (``tls=False``); the TLS tests (handshake deadline, the command's HTTPS
kubeconfig, kubectl with the token) wrap the same raw requests in TLS.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import select
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client

from controller.runtime.files import write_private_file
from simulators.kubeapi.http import MAX_BODY_BYTES, decode_json_body, nesting_depth
from simulators.kubeapi.server import SimKubeServer
from simulators.kubeapi.tls import make_serving_identity
from tests.adapters import kube_helpers
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, SCENARIO_YAML, TOKEN, kube_scenario, official_client
from tests.support.cli_process import CliProcess

NS = "shop"
SCALE = f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale"
AUTH = f"Authorization: Bearer {TOKEN}\r\n"


def start_server(**kwargs) -> SimKubeServer:
    """A simulated apiserver over plain HTTP unless ``tls=True``."""
    return kube_helpers.start_server(**{"tls": False, **kwargs})


@pytest.fixture
def server():
    srv = start_server()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- raw HTTP helpers
def exchange(port: int, raw: bytes, timeout_s: float = REQUEST_TIMEOUT_S,
             tls: ssl.SSLContext | None = None) -> tuple[int, dict, dict | None]:
    """Send ``raw`` on a new connection (in TLS with ``tls``); (status, lower-case headers, JSON
    body or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as plain:
        sock = tls.wrap_socket(plain, server_hostname="127.0.0.1") if tls else plain
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, (json.loads(body) if body and "json" in headers.get("content-type", "") else None)


def request(method: str, path: str, body: bytes = b"", headers: str = AUTH, content_type: str | None = None) -> bytes:
    """An HTTP/1.1 request with a correct Content-Length (unless ``headers`` sets its own)."""
    lines = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    if content_type:
        lines += f"Content-Type: {content_type}\r\n"
    if body and "content-length" not in headers.lower():
        lines += f"Content-Length: {len(body)}\r\n"
    return lines.encode("latin-1") + b"\r\n" + body


def web_replicas(srv: SimKubeServer) -> int:
    return srv.world.store.get_scale("Deployment", NS, "web")["spec"]["replicas"]


def pod_names(srv: SimKubeServer) -> list[str]:
    return sorted(p["metadata"]["name"] for p in srv.world.store.list_pods(NS, lambda _: True, lambda _: True))


def assert_status(body: dict | None, code: int, reason: str) -> None:
    assert body is not None, "expected a Status body"
    assert {k: body.get(k) for k in ("kind", "apiVersion", "status", "code", "reason")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    assert body["message"]


MERGE = "application/merge-patch+json"
SCALE_TO_9 = b'{"spec":{"replicas":9}}'


# --------------------------------------------------------------------------- malformed requests
@pytest.mark.parametrize("raw,code,reason", [
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Content-Length: abc\r\n", content_type=MERGE) + SCALE_TO_9,
                 400, "BadRequest", id="content-length-not-a-number"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Content-Length: -23\r\n", content_type=MERGE) + SCALE_TO_9,
                 400, "BadRequest", id="content-length-negative"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Content-Length: 23\r\nContent-Length: 5\r\n",
                         content_type=MERGE) + SCALE_TO_9, 400, "BadRequest", id="content-length-conflicting"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n",
                         content_type=MERGE), 413, "RequestEntityTooLarge", id="content-length-over-the-limit"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Content-Length: 99999999999999999999999\r\n",
                         content_type=MERGE), 400, "BadRequest", id="content-length-absurd"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Transfer-Encoding: chunked\r\n", content_type=MERGE)
                 + b"17\r\n" + SCALE_TO_9 + b"\r\n0\r\n\r\n", 411, "LengthRequired", id="chunked-body"),
    pytest.param(request("PATCH", SCALE, b'{"spec": {"replicas": 9', content_type=MERGE),
                 400, "BadRequest", id="invalid-json"),
    pytest.param(request("PATCH", SCALE, b"[" * 10_000 + b"]" * 10_000, content_type=MERGE),
                 400, "BadRequest", id="json-10000-deep"),
    pytest.param(request("PATCH", SCALE, b'{"spec":{"replicas":9},"x":"\xff\xfe"}', content_type=MERGE),
                 400, "BadRequest", id="body-not-utf8"),
    pytest.param(request("PATCH", SCALE, SCALE_TO_9.decode().encode("utf-16"), content_type=MERGE),
                 400, "BadRequest", id="body-utf16"),
    pytest.param(request("PATCH", SCALE, SCALE_TO_9, content_type="text/plain"),
                 415, "UnsupportedMediaType", id="patch-as-text-plain"),
    pytest.param(request("PATCH", SCALE, SCALE_TO_9),
                 415, "UnsupportedMediaType", id="patch-without-content-type"),
    pytest.param(request("PUT", SCALE, SCALE_TO_9, content_type="application/yaml"),
                 415, "UnsupportedMediaType", id="put-as-yaml"),
    pytest.param(request("PUT", SCALE, b"[1, 2]", content_type="application/json"),
                 400, "BadRequest", id="put-body-not-an-object"),
    pytest.param(b"GARBAGE\r\n\r\n", 400, "BadRequest", id="request-line-one-word"),
    pytest.param(b"GET /version\r\n\r\n", 400, "BadRequest", id="http-0.9"),
    pytest.param(b"GET /version HTTP/9.1\r\n\r\n", 505, "HTTPVersionNotSupported", id="http-version-unknown"),
    pytest.param(b"GET /version HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
                 431, "RequestHeaderFieldsTooLarge", id="too-many-headers"),
    pytest.param(b"GET /version HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
                 431, "RequestHeaderFieldsTooLarge", id="header-line-too-long"),
    pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "RequestURITooLong", id="request-line-too-long"),
    pytest.param(b"BREW /version HTTP/1.1\r\n" + AUTH.encode() + b"\r\n", 501, "NotImplemented",
                 id="unknown-method"),
])
def test_malformed_request_gets_its_status_and_leaves_the_cluster_unchanged(server, raw, code, reason):
    status, headers, body = exchange(server.http.port, raw)
    assert status == code
    assert_status(body, code, reason)
    assert web_replicas(server) == 2
    # the server is still fine for a well-formed request
    status, _, scale = exchange(server.http.port, request("GET", SCALE))
    assert status == 200 and scale["spec"]["replicas"] == 2


@pytest.mark.parametrize("raw", [
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Content-Length: abc\r\n", content_type=MERGE), id="length"),
    pytest.param(request("PATCH", SCALE, headers=AUTH + "Transfer-Encoding: chunked\r\n", content_type=MERGE),
                 id="chunked"),
])
def test_unusable_framing_closes_the_connection(server, raw):
    status, headers, _ = exchange(server.http.port, raw)
    assert status >= 400 and headers.get("connection") == "close"


def test_keep_alive_survives_a_rejected_body(server):
    """A 400 for a bad body (framing fine) keeps the connection: the next request on it works."""
    with socket.create_connection(("127.0.0.1", server.http.port), timeout=REQUEST_TIMEOUT_S) as sock:
        codes = []
        for raw in (request("PATCH", SCALE, b"{oops", content_type=MERGE),
                    request("PATCH", SCALE, SCALE_TO_9, content_type=MERGE)):
            sock.sendall(raw)
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            codes.append(response.status)
    assert codes == [400, 200]
    assert web_replicas(server) == 9


@pytest.mark.parametrize("text,deeper", [
    pytest.param('{"a": [1, {"b": 2}]}', False, id="depth-3"),
    pytest.param('[[[[1]]]]', True, id="depth-4"),
    pytest.param('{"a": {"b": {"c": {}}}}', True, id="objects-depth-4"),
    pytest.param('["[[[[[[", "]]]]"]', False, id="brackets-in-strings"),
    pytest.param(r'["\"[[[[[["]', False, id="escaped-quote-in-string"),
    pytest.param('[1, [2, [3]], [4, [5]]]', False, id="wide-depth-3"),
])
def test_json_depth_limit_counts_containers_not_brackets_in_strings(text, deeper):
    assert (nesting_depth(text.encode()) > 3) is deeper
    if deeper:
        with pytest.raises(ValueError, match="deeper than 3 levels"):
            decode_json_body(text.encode(), max_depth=3)
    else:
        assert decode_json_body(text.encode(), max_depth=3) == json.loads(text)


def reference_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


TRICKY_TEXT = st.text(alphabet='[]{}"\\/ a\u00e9\u2603\n', max_size=8)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
                           max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_nesting_depth_matches_the_decoded_value(value, ascii_only):
    """Strings full of brackets, quotes and backslashes never count; containers always do."""
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(body) == reference_depth(value)


def test_decoded_body_is_utf8_json():
    assert decode_json_body('{"n": "ü"}'.encode()) == {"n": "ü"}
    assert decode_json_body(b"  ") is None


# --------------------------------------------------------------------------- authentication
HOOK_RULE = json.dumps({"path": "/deployments", "status": 500, "times": 5}).encode()


@pytest.mark.parametrize("auth", [
    pytest.param("", id="no-token"),
    pytest.param("Authorization: Bearer wrong-token\r\n", id="wrong-token"),
    pytest.param(f"Authorization: Bearer {TOKEN}x\r\n", id="token-with-a-suffix"),
    pytest.param(f"Authorization: Bearer {TOKEN[:-1]}\r\n", id="token-prefix"),
    pytest.param(f"Authorization: bearer{TOKEN}\r\n", id="no-space"),
    pytest.param("Authorization: Basic dGVzdDp0ZXN0\r\n", id="basic-auth"),
    pytest.param("Authorization: Bearer t\xe9st\r\n", id="latin1-token"),
])
@pytest.mark.parametrize("method,path,body,content_type", [
    pytest.param("PATCH", SCALE, SCALE_TO_9, MERGE, id="patch-scale"),
    pytest.param("GET", f"/apis/apps/v1/namespaces/{NS}/deployments", b"", None, id="list"),
    pytest.param("DELETE", f"/api/v1/namespaces/{NS}/pods/POD", b"", None, id="delete-pod"),
    pytest.param("POST", "/_sim/faults", HOOK_RULE, "application/json", id="hook-inject-fault"),
    pytest.param("GET", "/_sim/requests", b"", None, id="hook-request-counts"),
    pytest.param("DELETE", "/_sim/faults", b"", None, id="hook-clear-faults"),
])
def test_request_without_the_right_token_is_401_and_changes_nothing(method, path, body, content_type, auth):
    srv = start_server(test_hooks=True)
    try:
        srv.api.faults.inject("/never-matches", status=503)
        pods_before = pod_names(srv)
        path = path.replace("POD", pods_before[0])
        status, _, status_body = exchange(srv.http.port, request(method, path, body, auth, content_type))
        assert status == 401
        assert status_body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        assert web_replicas(srv) == 2
        assert pod_names(srv) == pods_before
        assert [r["path"] for r in srv.api.faults.describe()] == ["/never-matches"]
    finally:
        srv.stop()


def test_health_probes_need_no_token_but_the_hooks_do(server):
    for path in ("/healthz", "/readyz", "/livez"):
        assert exchange(server.http.port, request("GET", path, headers=""))[0] == 200
    srv = start_server(test_hooks=True)
    try:
        assert exchange(srv.http.port, request("GET", "/_sim/requests", headers=""))[0] == 401
        status, _, counts = exchange(srv.http.port, request("GET", "/_sim/requests"))
        assert status == 200 and "total" in counts
    finally:
        srv.stop()


def test_bad_fault_rule_is_400_not_500():
    srv = start_server(test_hooks=True)
    try:
        for body in (b"{}", b'{"path": "(unclosed"}', b'{"path": "x", "times": "many"}', b"[1]"):
            status, _, status_body = exchange(srv.http.port, request("POST", "/_sim/faults", body,
                                                                      content_type="application/json"))
            assert status == 400, body
            assert_status(status_body, 400, "BadRequest")
        assert srv.api.faults.describe() == []
    finally:
        srv.stop()


def test_server_makes_a_token_unless_auth_is_off():
    made = SimKubeServer(kube_scenario(), drive=False)
    other = SimKubeServer(kube_scenario(), drive=False)
    off = SimKubeServer(kube_scenario(), drive=False, auth=False)
    try:
        assert made.token and other.token and made.token != other.token and len(made.token) >= 32
        assert off.token is None
        with pytest.raises(ValueError, match="contradict"):
            SimKubeServer(kube_scenario(), drive=False, token="t", auth=False)
        with pytest.raises(ValueError, match="empty"):
            SimKubeServer(kube_scenario(), drive=False, token=" ")
    finally:
        for srv in (made, other, off):
            srv.stop()


def test_no_auth_serves_requests_without_a_token():
    srv = start_server(token=None, auth=False)
    try:
        status, _, scale = exchange(srv.http.port, request("GET", SCALE, headers=""))
        assert status == 200 and scale["spec"]["replicas"] == 2
    finally:
        srv.stop()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_scales_and_patches_through_the_server(tmp_path):
    """kubectl (Go's HTTP client: keep-alive, its own content types) over TLS with the token: it
    verifies the server against the kubeconfig's CA and sends the token."""
    srv = start_server(tls=True)
    try:
        env = {**os.environ, "KUBECONFIG": str(srv.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS))}
        for args in (["scale", "deployments.apps", "web", "--replicas=5"],
                     ["patch", "deployments.apps", "api", "--type=json",
                      "-p", '[{"op": "replace", "path": "/spec/replicas", "value": 4}]']):
            subprocess.run(["kubectl", "--request-timeout=5s", *args], env=env, check=True, capture_output=True,
                           timeout=30)
        assert web_replicas(srv) == 5
        assert srv.world.store.get_scale("Deployment", NS, "api")["spec"]["replicas"] == 4
    finally:
        srv.stop()


# --------------------------------------------------------------------------- TLS
@pytest.mark.parametrize("hosts,extra", [
    pytest.param((), set(), id="loopback-only"),
    pytest.param(("127.0.0.1",), set(), id="loopback-listen"),
    pytest.param(("0.0.0.0",), {"0.0.0.0"}, id="all-interfaces"),
    pytest.param(("sim.example",), {"sim.example"}, id="dns-name"),
])
def test_serving_certificate_covers_loopback_and_the_listening_host(hosts, extra):
    from cryptography import x509

    identity = make_serving_identity(hosts)
    cert = x509.load_pem_x509_certificate(identity.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"localhost", "127.0.0.1", "::1"} | extra
    ca = x509.load_pem_x509_certificate(identity.ca_pem)
    assert cert.issuer == ca.subject and ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_tls_server_is_verified_against_its_own_ca_only():
    srv = start_server(tls=True)
    try:
        assert srv.url.startswith("https://127.0.0.1:")
        ok = exchange(srv.http.port, request("GET", SCALE), tls=srv.client_ssl_context())
        assert ok[0] == 200 and ok[2]["spec"]["replicas"] == 2
        stranger = make_serving_identity().client_context()  # another CA: the certificate must not verify
        with pytest.raises(ssl.SSLCertVerificationError):
            exchange(srv.http.port, request("GET", SCALE), tls=stranger)
        with socket.create_connection(("127.0.0.1", srv.http.port), timeout=REQUEST_TIMEOUT_S) as plain:
            plain.sendall(request("GET", SCALE))  # plain HTTP to the TLS port: no HTTP answer, closed
            try:
                answer = plain.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/")
    finally:
        srv.stop()


def test_slow_tls_handshake_is_cut_at_the_read_timeout_while_others_are_served():
    """A client that trickles its ClientHello a byte every 0.2 s is cut off (the handshake has
    a deadline, not a per-read timeout); a normal client is served meanwhile."""
    srv = start_server(tls=True, read_timeout_s=1.0, idle_timeout_s=1.0)
    hello = bytes.fromhex("16030100c8010000c40303") + bytes(200)  # a TLS record header, then the start of a hello
    try:
        with socket.create_connection(("127.0.0.1", srv.http.port), timeout=REQUEST_TIMEOUT_S) as slow:
            cut = False
            for i in range(len(hello)):  # up to 200 bytes * 0.2 s; the server cuts it after ~1 s
                try:
                    slow.sendall(hello[i:i + 1])
                except OSError:
                    cut = True
                    break
                if i == 2:
                    assert exchange(srv.http.port, request("GET", SCALE), tls=srv.client_ssl_context())[0] == 200
                readable = select.select([slow], [], [], 0.2)[0]
                if readable:
                    try:
                        cut = slow.recv(1) == b""
                    except OSError:
                        cut = True
                    if cut:
                        break
            assert cut, "the server kept a trickling handshake open"
    finally:
        srv.stop()


def test_tls_connections_beyond_the_bound_are_closed_without_a_handshake():
    srv = start_server(tls=True, max_connections=2, idle_timeout_s=3.0)
    context = srv.client_ssl_context()
    try:
        held = [context.wrap_socket(socket.create_connection(("127.0.0.1", srv.http.port), timeout=5),
                                    server_hostname="127.0.0.1") for _ in range(2)]
        with pytest.raises((ssl.SSLError, OSError)):
            exchange(srv.http.port, request("GET", SCALE), tls=context)
        for sock in held:
            sock.close()
    finally:
        srv.stop()


# --------------------------------------------------------------------------- slow and idle clients
def test_slow_loris_connections_do_not_starve_a_normal_client(tmp_path):
    """40 connections that send nothing or one byte every 0.5 s, for 3 s; meanwhile a kubernetes
    client gets each answer quickly, and the server cuts the slow ones at its read timeout."""
    srv = start_server(max_connections=128, read_timeout_s=1.5, idle_timeout_s=1.5)
    slow = [socket.create_connection(("127.0.0.1", srv.http.port), timeout=5) for _ in range(40)]
    stop = threading.Event()
    trickle = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100

    def send_slowly() -> None:
        for i in range(len(trickle)):
            if stop.wait(0.5):
                return
            for sock in slow[20:]:
                try:
                    sock.send(trickle[i:i + 1])
                except OSError:
                    pass

    sender = threading.Thread(target=send_slowly, daemon=True)
    sender.start()
    api = client.AppsV1Api(official_client(srv, tmp_path))
    try:
        started = time.monotonic()
        waits = []
        while time.monotonic() - started < 3.0:
            t = time.monotonic()
            assert api.read_namespaced_deployment_scale("web", NS).spec.replicas == 2
            waits.append(time.monotonic() - t)
            time.sleep(0.2)
        assert len(waits) >= 5 and max(waits) < 2.0  # generous: each takes milliseconds when not starved
        # every slow connection is closed by the server (EOF, maybe after a 4xx) within its timeouts
        for sock in slow:
            sock.settimeout(5)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        stop.set()
        sender.join(timeout=5)
        for sock in slow:
            sock.close()
        api.api_client.close()
        srv.stop()


def test_connections_beyond_the_bound_get_429_at_once():
    srv = start_server(max_connections=4, idle_timeout_s=1.0)
    idle = [socket.create_connection(("127.0.0.1", srv.http.port), timeout=5) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while srv.http.server.open_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        status, headers, body = exchange(srv.http.port, b"", timeout_s=2.0)
        assert status == 429 and headers.get("retry-after") == "1"
        assert_status(body, 429, "TooManyRequests")
        for sock in idle:  # the idle connections are closed after the idle timeout, freeing the slots
            assert sock.recv(1) == b""
        deadline = time.monotonic() + 5
        while srv.http.server.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert exchange(srv.http.port, request("GET", SCALE))[0] == 200
    finally:
        for sock in idle:
            sock.close()
        srv.stop()


# --------------------------------------------------------------------------- token files
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_file_is_0600_from_the_start_even_with_umask_0(tmp_path):
    target = tmp_path / "kubeconfig"
    target.write_text("old, world-readable")
    target.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_private_file(target, "secret: yes\n")
    finally:
        os.umask(old_umask)
    assert mode(target) == 0o600 and target.read_text() == "secret: yes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]  # no temporary file left


def test_private_file_in_a_missing_folder_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        write_private_file(tmp_path / "absent" / "token", "t")


def test_private_file_never_replaces_a_pipe(tmp_path):
    """os.replace put a regular file in its place (as root, over /dev/null itself)."""
    os.mkfifo(tmp_path / "token")
    with pytest.raises(OSError, match="is a device, pipe or socket, not a regular file"):
        write_private_file(tmp_path / "token", "t")
    assert stat.S_ISFIFO((tmp_path / "token").lstat().st_mode) and len(list(tmp_path.iterdir())) == 1


def test_kubeconfig_and_token_file_hold_the_token_with_mode_0600(server, tmp_path):
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    token_file = server.write_token_file(tmp_path / "token")
    assert mode(kubeconfig) == 0o600 and mode(token_file) == 0o600
    assert yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"] == TOKEN
    assert token_file.read_text() == TOKEN + "\n"


def serve_command(tmp_path: Path, *options: str) -> subprocess.Popen:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO_YAML)
    cmd = [sys.executable, "-m", "controller.cli", "sim", "serve", str(scenario), "--kube-listen", "127.0.0.1:0",
           "--kubeconfig-out", str(tmp_path / "kubeconfig.yaml"), *options]
    env = {k: v for k, v in os.environ.items() if k != "SETPOINT_SIM_TOKEN"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def apart():
    """One process for the `sim serve` commands that must refuse to start: each killed at its
    timeout, as a broken one would serve for ever (tests.support.cli_process)."""
    commands = CliProcess(env={k: v for k, v in os.environ.items() if k != "SETPOINT_SIM_TOKEN"})
    yield commands
    commands.close()


def refused_serve(apart: CliProcess, tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """serve_command's `sim serve` in the ``apart`` process, ended within 30 s."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO_YAML)
    return apart.run("sim", "serve", scenario, "--kube-listen", "127.0.0.1:0", "--kubeconfig-out",
                     tmp_path / "kubeconfig.yaml", *options, cwd=tmp_path, timeout_s=30)


def wait_for_file(proc: subprocess.Popen, path: Path, timeout_s: float = 60.0) -> None:
    # sim serve writes the file once it listens: 20 s was exceeded once at load 14 (imports, compiled kernels)
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists(), proc.stderr.read() if proc.poll() is not None else f"no {path.name} in {timeout_s:g} s"


def stop_command(proc: subprocess.Popen) -> str:
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    return proc.stderr.read()


@pytest.mark.parametrize("options,authenticated", [
    pytest.param(("--token-file", "TOKEN_FILE"), True, id="token-always-required"),
    pytest.param(("--no-auth",), False, id="no-auth"),
])
def test_sim_serve_command_auth(tmp_path, options, authenticated):
    token_file = tmp_path / "token"
    proc = serve_command(tmp_path, *(str(token_file) if o == "TOKEN_FILE" else o for o in options))
    try:
        kubeconfig = tmp_path / "kubeconfig.yaml"
        wait_for_file(proc, kubeconfig)
        if authenticated:
            wait_for_file(proc, token_file)
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://127.0.0.1:")
        port = int(cluster["server"].rsplit(":", 1)[1])
        tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        assert mode(kubeconfig) == 0o600
        anonymous = exchange(port, request("PATCH", SCALE, SCALE_TO_9, headers="", content_type=MERGE), tls=tls)[0]
        if authenticated:
            assert anonymous == 401
            token = token_file.read_text().strip()
            assert mode(token_file) == 0o600 and config["users"][0]["user"]["token"] == token
            assert exchange(port, request("GET", SCALE, headers=f"Authorization: Bearer {token}\r\n"),
                            tls=tls)[0] == 200
        else:
            assert anonymous == 200
        err = stop_command(proc)
        assert ("WARNING: --no-auth" in err) is not authenticated
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_sim_serve_command_refuses_no_auth_with_a_token_file(apart, tmp_path):
    proc = refused_serve(apart, tmp_path, "--no-auth", "--token-file", str(tmp_path / "token"))
    assert proc.returncode == 1
    assert "--no-auth cannot be combined" in proc.stderr
    assert not (tmp_path / "token").exists() and not (tmp_path / "kubeconfig.yaml").exists()


A_USERS_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://prod:6443}\n"


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


@pytest.mark.parametrize("setup, options, code, message", [
    # a user's kubeconfig lost every other cluster, a two-line file its content
    pytest.param(lambda d: (d / "kubeconfig.yaml").write_text(A_USERS_KUBECONFIG), (), 1,
                 "--kubeconfig-out: {d}/kubeconfig.yaml exists and is not a kubeconfig of the setpoint-sim cluster "
                 "alone",
                 id="kubeconfig-out-a-users-kubeconfig"),
    pytest.param(lambda d: (d / "token").write_text("ssh-rsa AAAA\nsecond line\n"), ("--token-file", "{d}/token"), 1,
                 "--token-file: {d}/token exists and is not a token file (one line)", id="token-file-two-lines"),
    # these were found after the server started: "[Errno 2] ... '{d}/absent/.kc.1a2b3c4d.tmp'", "[Errno 21]"
    pytest.param(None, ("--kubeconfig-out", "{d}/absent/kc"), 1, "--kubeconfig-out: {d}/absent/kc: no such folder",
                 id="kubeconfig-out-in-a-missing-folder"),
    pytest.param(lambda d: (d / "kubeconfig.yaml").mkdir(), (), 1, "--kubeconfig-out: {d}/kubeconfig.yaml is a folder",
                 id="kubeconfig-out-a-folder"),
    # a pipe (or /dev/null, as root) was replaced by a regular file
    pytest.param(lambda d: os.mkfifo(d / "kubeconfig.yaml"), (), 1,
                 "--kubeconfig-out: {d}/kubeconfig.yaml is a device, pipe or socket", id="kubeconfig-out-a-pipe"),
    # these said "[Errno 98] Address already in use", "[Errno -2] Name or service not known": no option, no address
    pytest.param(None, ("--kube-listen", "127.0.0.1:{port}"), 1,
                 "--kube-listen 127.0.0.1:{port}: cannot serve the Kubernetes API on 127.0.0.1:{port}: Address already",
                 id="kube-listen-in-use"),
    pytest.param(None, ("--metrics-listen", "127.0.0.1:{port}"), 1,
                 "--metrics-listen 127.0.0.1:{port}: cannot serve the metrics endpoint on 127.0.0.1:{port}: Address",
                 id="metrics-listen-in-use"),
    pytest.param(None, ("--kube-listen", "nowhere"), 1, "--kube-listen: expected HOST:PORT",
                 id="kube-listen-malformed"),
    # the engine's thread died on its first step (ZeroDivisionError) and the API served a frozen cluster
    pytest.param(None, ("--speed", "inf"), 2, "Invalid value for '--speed'", id="speed-inf"),
    pytest.param(None, ("--speed", "1e308"), 2, "Invalid value for '--speed'", id="speed-1e308"),
])
def test_sim_serve_command_refuses_bad_startup_files_and_flags_naming_the_option(apart, tmp_path, setup, options,
                                                                                  code, message):
    def files() -> dict:
        return {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "scenario.yaml"}

    before = None
    if setup is not None:
        setup(tmp_path)
        before = files()
    busy = _listening_socket()
    port = busy.getsockname()[1]
    try:
        proc = refused_serve(apart, tmp_path, "--insecure-http", *(o.format(d=tmp_path, port=port) for o in options))
    finally:
        busy.close()
    assert proc.returncode == code, proc.stderr
    err = proc.stderr
    assert message.format(d=tmp_path, port=port) in err and "Traceback" not in err, err
    if before is not None:  # left as it was (a pipe replaced by a file would be one more file here)
        assert files() == before


def test_sim_serve_command_replaces_the_files_of_an_earlier_run(tmp_path):
    from simulators.kubeapi.server import kubeconfig

    (tmp_path / "kubeconfig.yaml").write_text(yaml.safe_dump(kubeconfig("https://127.0.0.1:1", "old-token")))
    (tmp_path / "token").write_text("old-token\n")
    proc = serve_command(tmp_path, "--insecure-http", "--token-file", str(tmp_path / "token"))
    try:
        deadline = time.monotonic() + 60  # as wait_for_file: the start took over 20 s at load 15-20 (CI beside CI)
        while (tmp_path / "token").read_text() == "old-token\n" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        token = (tmp_path / "token").read_text().strip()
        assert token != "old-token", proc.stderr.read() if proc.poll() is not None else "not replaced"
        wait_for_file(proc, tmp_path / "kubeconfig.yaml")
        stop_command(proc)
        assert yaml.safe_load((tmp_path / "kubeconfig.yaml").read_text())["users"][0]["user"]["token"] == token
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_sim_serve_command_insecure_http_serves_plain_http_still_with_the_token(tmp_path):
    proc = serve_command(tmp_path, "--insecure-http")
    try:
        kubeconfig = tmp_path / "kubeconfig.yaml"
        wait_for_file(proc, kubeconfig)
        config = yaml.safe_load(kubeconfig.read_text())
        cluster, token = config["clusters"][0]["cluster"], config["users"][0]["user"]["token"]
        assert cluster["server"].startswith("http://127.0.0.1:") and "certificate-authority-data" not in cluster
        port = int(cluster["server"].rsplit(":", 1)[1])
        assert exchange(port, request("GET", SCALE, headers=""))[0] == 401
        assert exchange(port, request("GET", SCALE, headers=f"Authorization: Bearer {token}\r\n"))[0] == 200
        stop_command(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
