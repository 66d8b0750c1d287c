"""Routing of the simulated apiserver: URL paths and verbs to KubeStore calls, plus discovery.

Served (namespaced paths, and the cluster-wide list for each resource):

==========================================  ==============================================
path                                        verbs
==========================================  ==============================================
/apis/apps/v1/.../deployments[/NAME]        list (labelSelector, fieldSelector), watch, get, update
                                            (PUT), patch (strategic, merge, JSON patch)
/apis/apps/v1/.../deployments/NAME/scale    get, update, patch (same for statefulsets)
/apis/apps/v1/.../deployments/NAME/status   get
/apis/apps/v1/.../statefulsets[/NAME]       list, watch, get, update, patch
/apis/apps/v1/.../replicasets[/NAME]        list, watch, get
/apis/apps/v1/.../controllerrevisions[/N]   list, watch, get (a StatefulSet's revisions)
/api/v1/.../pods[/NAME]                     list, watch, get, delete (the ReplicaSet recreates it;
                                            DeleteOptions' gracePeriodSeconds, body or query)
/api/v1/.../events[/NAME]                   list, watch, create, get, update, patch, delete
/api/v1/.../configmaps[/NAME]               list, watch, create, get, update, patch, delete (with
                                            DeleteOptions' preconditions: uid, resourceVersion)
/apis/coordination.k8s.io/v1/.../leases     list, watch, create, get, update, patch, delete
/apis/autoscaling/v2/.../horizontalpod...   list, watch, create, get, update, patch, delete (run by
                                            SimWorld's HPA controller, hpa_controller.py); the same objects
/apis/autoscaling/v1/.../horizontalpod...   through v1 (kubectl autoscale), converted as the
                                            apiserver does (simulators.kubeapi.hpa_v1)
/api/v1/namespaces[/NAME]                   list, watch, get, create, update, patch (labels and
                                            annotations; simulators.kubeapi.namespaces)
/openapi/v3[/api/v1, /apis/G/V]             which resources take PATCH and fieldValidation, for
                                            kubectl apply (simulators.kubeapi.openapi)
/version /api /apis /api/v1 /apis/G/V       discovery; /healthz /readyz /livez
==========================================  ==============================================

Anything else is a 404 (unknown path) or 405 (known resource, verb not served).

For kubectl: discovery carries short names (deploy, rs, sts, po, ev, cm, hpa, ns) and the ``all``
category; a GET asking for ``as=Table`` gets the server-side printing columns (see
:mod:`simulators.kubeapi.tables`); ``?watch=1`` on a list streams watch events (see
:mod:`simulators.kubeapi.watch`), as Tables too when asked.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import unquote

from simulators.kubeapi import field_validation as FV
from simulators.kubeapi import hpa_v1 as hpa_v1_form
from simulators.kubeapi import objects as K
from simulators.kubeapi import openapi
from simulators.kubeapi import pages
from simulators.kubeapi import validation as V
from simulators.kubeapi.http import Request, Response
from simulators.kubeapi.managed_fields import FieldWriter, manager_of
from simulators.kubeapi.patch import JSON_PATCH, PATCH_TYPES, STRATEGIC, apply_patch
from simulators.kubeapi.selectors import parse_field_selector, parse_label_selector
from simulators.kubeapi.store import KubeStore
from simulators.kubeapi.terminating import delete_grace_s
from simulators.kubeapi.tables import table, wants_table
from simulators.kubeapi.watch import (check_resource_version, encode_event, expired_event, too_large_resource_version,
                                      watch_events, watch_timeout_s)

log = logging.getLogger("setpoint.sim.kubeapi")
#: Seconds a watch from a resourceVersion newer than the store's waits for it, as the apiserver does.
FUTURE_RV_WAIT_S = 3.0

SERVER_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-setpoint-sim", "gitCommit": "",
                  "gitTreeState": "clean", "buildDate": "2026-01-05T00:00:00Z", "goVersion": "go1.22",
                  "compiler": "gc", "platform": "linux/amd64"}


@dataclass(frozen=True)
class Resource:
    """How one resource is served: its kind names and the store calls behind each verb
    (None: verb not allowed)."""

    group: str
    version: str
    name: str
    kind: str
    namespaced: bool = True
    list: Callable | None = None
    get: Callable | None = None
    create: Callable | None = None
    update: Callable | None = None
    delete: Callable | None = None
    get_scale: Callable | None = None
    update_scale: Callable | None = None
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: its updates take a ``writer`` (simulators/kubeapi/managed_fields.py): metadata.managedFields kept
    field_managed: bool = False
    #: an object as the store keeps it (in the watch history), as this version shows it
    shown: Callable[[dict], dict] = lambda obj: obj
    #: deleted gracefully (a pod): its delete takes the DeleteOptions' grace (s, or None)
    graceful: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def verbs(self) -> list[str]:
        names = {"list": self.list, "watch": self.list, "get": self.get, "create": self.create,
                 "update": self.update, "patch": self.update, "delete": self.delete}
        return [k for k, v in names.items() if v is not None]


def build_resources(store: KubeStore) -> dict[tuple[str, str, str], Resource]:
    """(group, version, resource name) -> Resource, for every resource the store serves."""
    def workload(kind: str, plural: str, short: str) -> Resource:
        return Resource("apps", "v1", plural, kind, short_names=(short,), categories=("all",),
                        list=lambda ns, l, f: store.list_workloads(kind, ns, l, f),
                        get=lambda ns, n: store.get_workload(kind, ns, n),
                        update=lambda ns, n, body, writer: store.update_workload(kind, ns, n, body, writer),
                        get_scale=lambda ns, n: store.get_scale(kind, ns, n),
                        update_scale=lambda ns, n, body, writer: store.update_scale(kind, ns, n, body, writer),
                        field_managed=True)

    def locked(fn):
        def call(*args):
            with store.lock:
                return fn(*args)
        return call

    def stored(table, group: str, version: str, plural: str, kind: str, short: tuple[str, ...] = ()) -> Resource:
        return Resource(group, version, plural, kind, list=locked(table.list), get=locked(table.get),
                        create=locked(table.create), update=locked(table.update), delete=locked(table.delete),
                        short_names=short)

    def hpa_v1(table) -> Resource:
        """The v2 table's HPAs through autoscaling/v1: converted on the way in and out."""
        return Resource("autoscaling", "v1", "horizontalpodautoscalers", hpa_v1_form.KIND,
                        list=locked(lambda ns, l, f: [hpa_v1_form.to_v1(o) for o in table.list(ns, l, f)]),
                        get=locked(lambda ns, n: hpa_v1_form.to_v1(table.get(ns, n))),
                        create=locked(lambda ns, body: hpa_v1_form.to_v1(table.create(ns, hpa_v1_form.to_v2(body)))),
                        update=locked(lambda ns, n, body: hpa_v1_form.to_v1(
                            table.update(ns, n, hpa_v1_form.to_v2(body, n)))),
                        delete=locked(table.delete), short_names=("hpa",), shown=hpa_v1_form.to_v1)

    resources = [
        workload("Deployment", "deployments", "deploy"),
        workload("StatefulSet", "statefulsets", "sts"),
        Resource("apps", "v1", "replicasets", "ReplicaSet", list=store.list_replicasets, get=store.get_replicaset,
                 short_names=("rs",), categories=("all",)),
        Resource("apps", "v1", "controllerrevisions", "ControllerRevision", list=store.list_controllerrevisions,
                 get=store.get_controllerrevision),
        Resource("", "v1", "pods", "Pod", list=store.list_pods, get=store.get_pod, delete=store.delete_pod,
                 short_names=("po",), categories=("all",), graceful=True),
        stored(store.events, "", "v1", "events", "Event", ("ev",)),
        stored(store.configmaps, "", "v1", "configmaps", "ConfigMap", ("cm",)),
        stored(store.leases, "coordination.k8s.io", "v1", "leases", "Lease"),
        stored(store.hpas, "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", ("hpa",)),
        hpa_v1(store.hpas),
        Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                 list=store.namespace_table.list, get=store.namespace_table.get,
                 create=store.namespace_table.create, update=store.namespace_table.update),
    ]
    return {(r.group, r.version, r.name): r for r in resources}


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str, resources: dict[tuple[str, str, str], Resource]) -> Route | None:
    """The resource a URL path names, or None when the path is not an API resource path. Each
    segment is percent-decoded after the split: ``%2F`` in a name never separates segments."""
    parts = [unquote(p, errors="replace") for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
        if (group, version) not in {(r.group, r.version) for r in resources.values()}:
            return None
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif group == "" and rest[:1] == ["namespaces"] and len(rest) <= 2:
        return Route(resources[("", "v1", "namespaces")], None, rest[1] if len(rest) == 2 else None, None)
    if not rest or len(rest) > 3:
        return None
    resource = resources.get((group, version, rest[0]))
    if resource is None:
        return None
    if namespace is None and len(rest) > 1:
        return None  # namespaced objects are only addressed under /namespaces/NS/
    return Route(resource, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


def _selected(labels: Callable[[dict], bool], fields: Callable[[dict], bool]) -> Callable[[dict], bool]:
    """Whether an object matches a request's label and field selectors."""
    return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj)


def _carries_resource_version(patch: Any) -> bool:
    """Whether a patch body sets metadata.resourceVersion (an optimistic-lock precondition)."""
    if isinstance(patch, dict):
        meta = patch.get("metadata")
        return isinstance(meta, dict) and bool(meta.get("resourceVersion"))
    if isinstance(patch, list):
        return any(isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion")
                   for op in patch)
    return False


class ResourceHandler:
    """Serves the verbs on one parsed Route. ``stop``: set when the server stops (ends watches)."""

    def __init__(self, store: KubeStore, stop: threading.Event | None = None):
        self.store = store
        self.stop = stop or threading.Event()

    def serve(self, route: Route, request: Request) -> Response:
        r, ns, name, sub = route.resource, route.namespace, route.name, route.subresource
        method = request.method
        if sub not in (None, "scale", "status") or (sub == "scale" and r.get_scale is None):
            raise K.no_such_route()
        if name is None:
            return self._collection(r, ns, request)
        if sub == "scale":
            return self._scale(r, ns, name, request, _writing(r, request, scale=True))
        if sub == "status" and method != "GET":
            raise K.method_not_allowed()
        if method == "GET" and r.get:
            obj = r.get(ns, name)
            as_table = wants_table(request.headers.get("accept")) if sub is None else None
            if as_table:
                return Response.json(200, self._table(r, [obj], obj["metadata"].get("resourceVersion", ""),
                                                      as_table, request))
            return Response.json(200, obj)
        if method == "PUT" and r.update:
            update = _writing(r, request)
            body, warnings = _body_object(request, r.kind, r.api_version, "UpdateOptions")
            return _answer(200, _warned(warnings, update, ns, name, body), warnings)
        if method == "PATCH" and r.update:
            return _answer(200, *self._patch(r.get, _writing(r, request), ns, name, request, r.kind, r.api_version))
        if method == "DELETE" and r.delete:
            return Response.json(200, self._delete(r, ns, name, request))
        raise K.method_not_allowed()

    def _delete(self, r: Resource, ns: str, name: str, request: Request) -> dict:
        """Delete one object: 404 when there is none, 409 when the body's ``preconditions`` (uid,
        resourceVersion) do not match it, checked and deleted under the store's lock; a pod with
        the DeleteOptions' grace (its gracePeriodSeconds)."""
        preconditions, grace_s = _delete_options(request)
        with self.store.lock:
            meta = r.get(ns, name)["metadata"]
            for field, key in (("UID", "uid"), ("ResourceVersion", "resourceVersion")):
                sent = preconditions.get(key)
                if sent is not None and sent != meta.get(key):
                    raise K.precondition_failed(r.name, r.group, ns, name, field, sent, meta.get(key))
            return r.delete(ns, name, grace_s) if r.graceful else r.delete(ns, name)

    def _collection(self, r: Resource, ns: str | None, request: Request) -> Response:
        if request.method == "GET" and r.list:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"), r.kind)
            as_table = wants_table(request.headers.get("accept"))
            if _list_options(request.query):
                return self._watch(r, ns, labels, fields, as_table, request)
            with self.store.lock:  # the list's resourceVersion is the one its items are at
                items, rv = K.sorted_items(r.list(ns, labels, fields)), self.store.resource_version
            filtered = bool(request.query.get("labelSelector") or request.query.get("fieldSelector"))
            items, meta = pages.chunk(items, rv, request.query, self.store.oldest_watchable_rv(), filtered)
            if as_table:
                return Response.json(200, {**self._table(r, items, meta["resourceVersion"], as_table, request),
                                           "metadata": meta})
            return Response.json(200, {**K.list_object(f"{r.kind}List", r.api_version, items, rv), "metadata": meta})
        if request.method == "POST" and r.create and (ns is not None or not r.namespaced):
            body, warnings = _body_object(request, r.kind, r.api_version, "CreateOptions")
            return _answer(201, _warned(warnings, r.create, ns, body), warnings)
        raise K.method_not_allowed()

    @staticmethod
    def _table(r: Resource, items: list[dict], resource_version: str, api_version: str, request: Request,
               columns: bool = True) -> dict:
        return table(r.kind, items, resource_version, time.time(), api_version,
                     request.query.get("includeObject") or "Metadata", columns)

    def _watch(self, r: Resource, ns: str | None, labels: Callable[[dict], bool], fields: Callable[[dict], bool],
               as_table: str | None, request: Request) -> Response:
        """A streamed response of watch events (objects, or one-row Tables when asked)."""
        since = request.query.get("resourceVersion")
        check_resource_version(since)
        duration_s = watch_timeout_s(request.query)
        read = self._watch_reader(r, ns, labels, fields)
        if since and since != "0":
            self._wait_for_resource_version(int(since), lambda: read(None))
            oldest = self.store.oldest_watchable_rv()
            if int(since) < oldest:  # as the watch cache: 200, then one ERROR event with a 410 Status
                return Response(200, content_type="application/json",
                                stream=iter([expired_event(since, oldest)]))

        def stream() -> Iterator[bytes]:
            first = True
            try:
                for event_type, obj in watch_events(read, _selected(labels, fields), since, duration_s, self.stop,
                                                    shown=r.shown):
                    if as_table and event_type != "ERROR":  # column definitions with the first event only
                        obj = self._table(r, [obj], obj["metadata"].get("resourceVersion", ""), as_table, request,
                                          first)
                    first = False
                    yield encode_event(event_type, obj)
            except Exception:  # a bug: log it and end the stream cleanly rather than cut the connection
                log.exception("watch of %s failed; ending the stream", request.path)

        return Response(200, content_type="application/json", stream=stream())

    def _watch_reader(self, r: Resource, ns: str | None, labels: Callable[[dict], bool],
                      fields: Callable[[dict], bool]) -> Callable:
        """What a watch reads each time (watch.Read): the objects matching now, the store's
        resourceVersion and the changes after the watch's own, together under the store's lock."""
        def read(since: int | None):
            with self.store.lock:
                items, rv = K.sorted_items(r.list(ns, labels, fields)), self.store.resource_version
                changes = None if since is None else self.store.changes_since(r.kind, since)
            if changes is not None and ns is not None:
                changes = [c for c in changes if c.namespace == ns]
            return items, rv, changes
        return read

    def _wait_for_resource_version(self, since: int, list_items: Callable[[], object]) -> None:
        """A resourceVersion the store has not reached: wait up to FUTURE_RV_WAIT_S for it (listing
        brings lazy resourceVersions up to date), then 504 Timeout, as the apiserver."""
        deadline = time.monotonic() + FUTURE_RV_WAIT_S
        while since > self.store.resource_version:
            if time.monotonic() >= deadline or self.stop.wait(0.1):
                raise too_large_resource_version(since, self.store.resource_version)
            list_items()

    def _scale(self, r: Resource, ns: str, name: str, request: Request, update: Callable) -> Response:
        if request.method == "GET":
            return Response.json(200, r.get_scale(ns, name))
        if request.method == "PUT":
            body, warnings = _body_object(request, "Scale", "autoscaling/v1", "UpdateOptions")
            return _answer(200, _warned(warnings, update, ns, name, body), warnings)
        if request.method == "PATCH":
            return _answer(200, *self._patch(r.get_scale, update, ns, name, request, "Scale", "autoscaling/v1"))
        raise K.method_not_allowed()

    def _patch(self, get: Callable, update: Callable, ns: str, name: str, request: Request, kind: str,
               api_version: str) -> tuple[dict, list[str]]:
        """The patched object as stored, and the warnings for the client (see field_validation:
        the patch's duplicate keys, then the patched object's unknown fields, which are dropped)."""
        content_type = _media_type(request)
        if content_type not in PATCH_TYPES:
            raise K.unsupported_media_type(content_type)
        mode = FV.directive(request.query, "PatchOptions")
        errors = FV.StrictErrors(prefix="json patch " if content_type == JSON_PATCH else "")
        patch = FV.decode(_body(request, pairs=True),
                          FV.JSON_PATCH_OPERATIONS if content_type == JSON_PATCH else FV.ANY, errors)
        errors.prefix = ""  # the patched object's errors are the object's own
        with self.store.lock:  # read, patch and write as one step: the engine must not tick between
            current = get(ns, name)
            patched = apply_patch(content_type, current, patch)
            patched = FV.decode(patched, FV.model_of(api_version, kind), errors)
            try:  # the patched object must decode as the kind, as the apiserver decodes it
                V.check_shape(kind, patched)
            except V.DecodeError as exc:
                raise V.patch_error(kind, api_version.rpartition("/")[0], name, exc) from None
            if errors and mode == FV.STRICT:
                shown = FV.go_value(patch) if content_type == STRATEGIC else json.dumps(patched, separators=(",", ":"))
                raise FV.strict_patch_error(shown, errors)
            if not _carries_resource_version(patch):
                patched.setdefault("metadata", {}).pop("resourceVersion", None)
            warnings = errors.messages if mode == FV.WARN else []
            return _warned(warnings, update, ns, name, patched), warnings


def _writing(r: Resource, request: Request, scale: bool = False) -> Callable:
    """The update call of ``r`` for this request: with its field manager for a resource whose
    managedFields are kept (the scale subresource's update when ``scale``)."""
    if request.method == "GET":
        return lambda *args: None
    if not r.field_managed:
        return r.update
    writer = FieldWriter(manager_of(request.query, request.headers))
    update = r.update_scale if scale else r.update
    return lambda ns, name, body: update(ns, name, body, writer)


_TRUE, _FALSE = ("1", "t", "T", "true", "TRUE", "True"), ("0", "f", "F", "false", "FALSE", "False")
_RV_MATCHES = ("", "NotOlderThan", "Exact")


def _delete_options(request: Request) -> tuple[dict, float | None]:
    """A delete's DeleteOptions: its ``preconditions`` ({} without them) and the grace (s) its
    gracePeriodSeconds asks for (None: not given; terminating.delete_grace_s). As the apiserver's
    DeleteResource reads them: from the body when there is one (the query is then not read), else
    from the query. 415 unless JSON; 400 (BadRequest, as since Kubernetes 1.35; 500 before) unless a
    DeleteOptions object whose preconditions are strings and whose gracePeriodSeconds is an integer;
    400 for a query gracePeriodSeconds that is not one."""
    if not request.body:
        return {}, delete_grace_s(_query_int64(request.query.get("gracePeriodSeconds")))
    content_type = _media_type(request)
    if content_type not in ("", "application/json"):
        raise K.unsupported_media_type(content_type, ("application/json",))
    body = _body(request)
    if not isinstance(body, dict) or body.get("kind", "DeleteOptions") != "DeleteOptions":
        raise K.bad_request("decoded object cannot be converted to DeleteOptions")
    preconditions = body.get("preconditions") or {}
    if not isinstance(preconditions, dict) or not all(
            isinstance(preconditions.get(k), (str, type(None))) for k in ("uid", "resourceVersion")):
        raise K.bad_request("DeleteOptions.preconditions: expected an object with uid and resourceVersion strings")
    return preconditions, delete_grace_s(_json_int64(body.get("gracePeriodSeconds"), "DeleteOptions.gracePeriodSeconds"))


def _query_int64(text: str | None) -> int | None:
    """A query parameter decoded into an int64 as the apiserver's parameter codec does
    (strconv.ParseInt); None when absent; 400 otherwise."""
    if text is None or text == "":
        return None
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", text) or not -2**63 <= int(text) < 2**63:
        raise K.bad_request(f'strconv.ParseInt: parsing "{text[:40]}": invalid syntax')
    return int(text)


#: how encoding/json names a JSON value it cannot put in a Go int64
_JSON_TYPE_NAMES = ((bool, "bool"), (str, "string"), (list, "array"), (dict, "object"))


def _json_int64(value, field: str) -> int | None:
    """A body field decoded into a Go int64 (None when absent or null); 400 with encoding/json's
    words for anything else."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63):
        return value
    what = next((name for kind, name in _JSON_TYPE_NAMES if isinstance(value, kind)), f"number {value}")
    raise K.bad_request(f"json: cannot unmarshal {what} into Go struct field {field} of type int64")


def _list_options(query: dict[str, str]) -> bool:
    """Whether a list request asks for a watch; 400 for list options the apiserver would not
    decode (``watch`` not a Go bool, ``limit`` or ``resourceVersion`` not a number, an unknown
    ``resourceVersionMatch``, a ``continue`` on a watch; a list's is simulators/kubeapi/pages.py's)."""
    watch = query.get("watch", "")
    if watch and watch not in _TRUE + _FALSE:
        raise K.bad_request(f'invalid watch {watch[:40]!r}: strconv.ParseBool: parsing "{watch[:40]}": invalid syntax')
    limit = query.get("limit", "")
    if limit and not re.fullmatch(r"-?[0-9]{1,18}", limit):
        raise K.bad_request(f'invalid limit {limit[:40]!r}: strconv.ParseInt: parsing "{limit[:40]}": invalid syntax')
    if query.get("continue") and watch in _TRUE:
        raise K.bad_request("specifying continue is not supported when watching")
    if query.get("resourceVersionMatch", "") not in _RV_MATCHES:
        raise K.bad_request(f"resourceVersionMatch: Unsupported value: {query['resourceVersionMatch'][:40]!r}: "
                            f'supported values: "Exact", "NotOlderThan"')
    check_resource_version(query.get("resourceVersion"))
    return watch in _TRUE


def _answer(code: int, obj: dict, warnings: list[str]) -> Response:
    """A JSON response with the client's ``Warning`` headers (see field_validation)."""
    response = Response.json(code, obj)
    response.warnings = warnings
    return response


def _warned(warnings: list[str], write: Callable, *args) -> dict:
    """``write(*args)``; an error it raises (422 invalid, 409 conflict) carries ``warnings``, as
    the apiserver sends the Warning headers its decoding recorded with an error that comes after."""
    try:
        return write(*args)
    except K.KubeApiError as exc:
        exc.warnings = warnings
        raise


def _body(request: Request, pairs: bool = False) -> Any:
    """The request's JSON body (400 unless it is JSON); ``pairs``: objects as field_validation.Pairs."""
    try:
        return request.json(FV.Pairs if pairs else None)
    except ValueError as exc:
        raise K.bad_request(f"the request body is not valid JSON: {exc}") from None


def _media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case ("" when absent)."""
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def _body_object(request: Request, kind: str, api_version: str, options_kind: str) -> tuple[dict, list[str]]:
    """The JSON object a create or update sends, its unknown fields dropped, and the warnings for
    the client: 422 for a bad ``fieldValidation`` (its ``options_kind``: CreateOptions,
    UpdateOptions), 415 unless JSON, 400 unless it decodes as a ``kind`` (see
    validation.check_shape) or, under fieldValidation=Strict, when it has unknown or duplicate
    fields (see field_validation). No Content-Type means JSON, as for the real apiserver (the
    Python client sends none)."""
    mode = FV.directive(request.query, options_kind)
    content_type = _media_type(request)
    if content_type not in ("", "application/json"):
        raise K.unsupported_media_type(content_type, ("application/json",))
    body = _body(request, pairs=True)
    if not isinstance(body, FV.Pairs):
        raise K.bad_request("the request body must be a JSON object")
    errors = FV.StrictErrors()
    body = FV.decode(body, FV.model_of(api_version, kind), errors)
    try:
        V.check_shape(kind, body)
        if errors and mode == FV.STRICT:
            raise V.DecodeError(errors.text())
    except V.DecodeError as exc:
        raise V.body_error(kind, api_version, exc) from None
    return body, errors.messages if mode == FV.WARN else []


# --------------------------------------------------------------------------- discovery
def discovery(path: str, resources: dict[tuple[str, str, str], Resource], address: str) -> dict | None:
    """The discovery document at ``path`` (/version, /api, /apis, /api/v1, /apis/G/V, /openapi/v3...), or None."""
    path = path.rstrip("/") or "/"
    if path.startswith(openapi.ROOT):
        return openapi.document(path, resources)
    if path == "/version":
        return SERVER_VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}
    groups = sorted({(r.group, r.version) for r in resources.values() if r.group})
    if path == "/apis":
        versions: dict[str, list[str]] = {}
        for g, v in groups:
            versions.setdefault(g, []).append(v)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in _preferred_first(vs)],
             "preferredVersion": {"groupVersion": f"{g}/{_preferred_first(vs)[0]}", "version": _preferred_first(vs)[0]}}
            for g, vs in versions.items()]}
    for group, version in [("", "v1")] + groups:
        prefix = "/api/v1" if not group else f"/apis/{group}/{version}"
        if path.rstrip("/") == prefix:
            return _resource_list(group, version, resources)
    return None


def _preferred_first(versions: list[str]) -> list[str]:
    """A group's versions as discovery lists them: the newest GA version (the preferred) first."""
    return sorted(versions, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)


def _resource_list(group: str, version: str, resources: dict[tuple[str, str, str], Resource]) -> dict:
    out = []
    for r in resources.values():
        if (r.group, r.version) != (group, version):
            continue
        entry = {"name": r.name, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": r.verbs()}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        if r.get_scale:
            out.append({"name": f"{r.name}/scale", "singularName": "", "namespaced": True, "group": "autoscaling",
                        "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
            out.append({"name": f"{r.name}/status", "singularName": "", "namespaced": True, "kind": r.kind,
                        "verbs": ["get"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": out}


def error_response(error: K.KubeApiError) -> Response:
    return Response(error.code, json.dumps(error.status()).encode(), warnings=list(error.warnings))
