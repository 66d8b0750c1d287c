"""Writes simulators/kubeapi/known_fields.json: the fields of every kind sim serve decodes, derived
from the official Python client's model classes (``openapi_types`` and ``attribute_map`` of
``kubernetes.client.V1Deployment`` and the models they name, recursively).

The simulator may not import ``kubernetes`` (an import-linter contract confines it to the
Kubernetes adapter), so the schema is generated here and committed as data;
tests/adapters/test_field_validation.py checks that the file is what this module makes from the
installed client. Regenerate after a client upgrade::

    python -m tests.support.kube_known_fields
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes
from kubernetes import client

from simulators.kubeapi.field_validation import KNOWN_FIELDS_FILE

#: "apiVersion/Kind" of each kind sim serve decodes -> its model class in kubernetes.client.
ROOT_MODELS = {
    "apps/v1/Deployment": "V1Deployment",
    "apps/v1/StatefulSet": "V1StatefulSet",
    "autoscaling/v1/Scale": "V1Scale",
    "v1/Event": "CoreV1Event",
    "v1/ConfigMap": "V1ConfigMap",
    "v1/Namespace": "V1Namespace",
    "coordination.k8s.io/v1/Lease": "V1Lease",
    "autoscaling/v2/HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "autoscaling/v1/HorizontalPodAutoscaler": "V1HorizontalPodAutoscaler",
}


def normal_type(type_name: str) -> str:
    """A client type name in one spelling across client versions: ``List[X]`` and ``Dict[str, X]``
    (older clients write ``list[X]`` and ``dict(str, X)``)."""
    listed = re.fullmatch(r"[Ll]ist\[(.*)\]", type_name)
    if listed:
        return f"List[{normal_type(listed.group(1))}]"
    mapped = re.fullmatch(r"(?:Dict\[str, (.*)\]|dict\(str, (.*)\))", type_name)
    if mapped:
        return f"Dict[str, {normal_type(mapped.group(1) or mapped.group(2))}]"
    return type_name


def _model_names(type_name: str) -> list[str]:
    """The model classes a type name mentions (``List[V1Container]`` -> V1Container)."""
    return [n for n in re.findall(r"\w+", type_name) if hasattr(getattr(client, n, None), "openapi_types")]


def model_fields(roots: dict[str, str] = ROOT_MODELS) -> dict[str, dict[str, str]]:
    """model class name -> {JSON field name: normalized type}, for the roots and every model they reach."""
    models: dict[str, dict[str, str]] = {}
    pending = list(roots.values())
    while pending:
        name = pending.pop()
        if name in models:
            continue
        cls = getattr(client, name)
        models[name] = {cls.attribute_map[attr]: normal_type(t) for attr, t in cls.openapi_types.items()}
        pending += [m for t in models[name].values() for m in _model_names(t)]
    return dict(sorted(models.items()))


def known_fields_document() -> dict:
    """The content of known_fields.json, from the installed client."""
    return {"source": f"kubernetes Python client {kubernetes.__version__}: model classes' openapi_types and "
                      f"attribute_map (python -m tests.support.kube_known_fields)",
            "kinds": ROOT_MODELS, "models": model_fields()}


def render(document: dict) -> str:
    """The file's text: one line per model, so that a client upgrade shows as a readable diff."""
    models = ",\n".join(f"  {json.dumps(name)}: {json.dumps(fields, sort_keys=True)}"
                        for name, fields in document["models"].items())
    return (f'{{"source": {json.dumps(document["source"])},\n "kinds": {json.dumps(document["kinds"])},\n'
            f' "models": {{\n{models}\n }}\n}}\n')


def main(path: Path = KNOWN_FIELDS_FILE) -> None:
    path.write_text(render(known_fields_document()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
