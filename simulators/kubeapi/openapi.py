"""The OpenAPI v3 documents kubectl reads before it writes: which resources take PATCH, and that
they take the ``fieldValidation`` query parameter.

``kubectl apply`` and ``kubectl create`` validate a manifest before sending it (``--validate``,
strict by default). kubectl 1.27+ first reads ``/openapi/v3`` and the document of the object's
group-version, looks there for the PATCH operation of the object's kind (the
``x-kubernetes-group-version-kind`` extension) and for a ``fieldValidation`` query parameter of
that operation: when it is there, kubectl leaves validation to the server and sends
``?fieldValidation=Strict``; when the documents are absent it falls back to ``/openapi/v2``, and
without that it refuses the manifest ("failed to download openapi"), so a user had to pass
``--validate=false``.

These documents carry the paths only (no schemas, no request bodies): enough for that check, and
for kubectl apply, which then computes its strategic merge patch from the types it was built with. This server decodes bodies as
:mod:`simulators.kubeapi.validation` says (a wrong type is refused) and honours ``fieldValidation``
as :mod:`simulators.kubeapi.field_validation` says (unknown and duplicate fields refused under
``Strict``, kubectl's default; warned of under ``Warn``; dropped in silence under ``Ignore``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.kubeapi.routes import Resource

ROOT = "/openapi/v3"
#: The PATCH operation's parameter kubectl looks for (k8s.io/cli-runtime resource.QueryParamFieldValidation).
FIELD_VALIDATION = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                    "description": "Strict, Warn or Ignore: what the server does with unknown or duplicate fields"}


def document(path: str, resources: dict[tuple[str, str, str], "Resource"]) -> dict | None:
    """The document at ``path`` (``/openapi/v3`` or ``/openapi/v3/api/v1``, ``/openapi/v3/apis/G/V``), or None."""
    path = path.rstrip("/")
    if path == ROOT:
        return root(resources)
    for gv in group_versions(resources):
        if path == f"{ROOT}/{gv}":
            return group_version_document(gv, resources)
    return None


def group_versions(resources: dict[tuple[str, str, str], "Resource"]) -> list[str]:
    """``api/v1``, ``apis/apps/v1``, ...: the OpenAPI v3 paths of the served group-versions."""
    return sorted({_gv_path(r.group, r.version) for r in resources.values()})


def root(resources: dict[tuple[str, str, str], "Resource"]) -> dict:
    """``{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=..."}}}``:
    the hash changes with the document, as the apiserver's does (kubectl caches by it)."""
    return {"paths": {gv: {"serverRelativeURL": f"{ROOT}/{gv}?hash={_digest(group_version_document(gv, resources))}"}
                      for gv in group_versions(resources)}}


def group_version_document(gv: str, resources: dict[tuple[str, str, str], "Resource"]) -> dict:
    """The OpenAPI v3 document of one group-version: a path per patchable object (and scale
    subresource), its PATCH operation marked with the kind, and the fieldValidation parameter."""
    paths: dict[str, dict] = {}
    for r in resources.values():
        if _gv_path(r.group, r.version) != gv or r.update is None:
            continue
        item = _item_path(r)
        paths[item] = _patchable(r.group, r.version, r.kind, f"patch{r.kind}")
        if r.update_scale is not None:
            paths[f"{item}/scale"] = _patchable("autoscaling", "v1", "Scale", f"patch{r.kind}Scale")
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (setpoint sim serve)", "version": "v1.31.0"},
            "paths": dict(sorted(paths.items())), "components": {"schemas": {}}}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _item_path(r: "Resource") -> str:
    where = f"/{_gv_path(r.group, r.version)}"
    if r.namespaced:
        where += "/namespaces/{namespace}"
    return f"{where}/{r.name}/{{name}}"


def _patchable(group: str, version: str, kind: str, operation: str) -> dict:
    patch = {"operationId": operation, "x-kubernetes-action": "patch",
             "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
             "parameters": [FIELD_VALIDATION], "responses": {"200": {"description": "OK"}}}
    return {"patch": patch}


def _digest(doc: dict) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()
