"""The JSON Schema of the policy format, generated from the pydantic models.

Shipped as ``policies/setpoint-policy.schema.json`` so that editors (yaml-language-server)
validate policy files while they are typed. Cross-field rules are not expressible there; the
"exactly one of" rules are, through ``oneOf``.
"""

from __future__ import annotations

import json

from controller.policy.schema import PolicyDocument

SCHEMA_FILE = "policies/setpoint-policy.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def policy_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one ``kind: Policy`` document, YAML field names."""
    schema = PolicyDocument.model_json_schema(by_alias=True, mode="validation")
    _drop_property_titles(schema)
    return {"$schema": SCHEMA_DIALECT, **schema}


def policy_json_schema_text() -> str:
    """The schema as the committed file holds it: 2-space indented JSON and a final newline."""
    return json.dumps(policy_json_schema(), indent=2) + "\n"


def _drop_property_titles(node: object) -> None:
    # pydantic titles every property after its Python name ("Halflife"): noise in editor hovers.
    if isinstance(node, dict):
        for value in node.get("properties", {}).values():
            if isinstance(value, dict):
                value.pop("title", None)
        for value in node.values():
            _drop_property_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_property_titles(value)
