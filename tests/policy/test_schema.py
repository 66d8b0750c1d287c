"""The committed JSON Schema matches the models, and agrees with the loader on the examples."""

from __future__ import annotations

import json

import jsonschema  # a test dependency (pyproject.toml [test]): missing, these tests fail instead of skipping
import pytest
import yaml

from controller.policy import policy_json_schema
from controller.policy.schema_export import SCHEMA_FILE
from tests.policy.helpers import BASE, POLICIES, REPO


def test_committed_schema_is_up_to_date():
    committed = json.loads((REPO / SCHEMA_FILE).read_text())
    assert committed == policy_json_schema(), (
        f"{SCHEMA_FILE} is out of date; regenerate it with: setpoint schema --out {SCHEMA_FILE}")


def validator():
    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(p.name for p in POLICIES.glob("*.yaml")))
def test_examples_satisfy_the_schema(name):
    check = validator()
    for document in yaml.safe_load_all((POLICIES / name).read_text()):
        assert [e.message for e in check.iter_errors(document)] == []


@pytest.mark.parametrize("old, new", [
    pytest.param("interval: 15s", "interval: 15", id="bare-number-duration"),
    pytest.param("tolerance:", "tolerence:", id="unknown-key"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 80, value: 1}", id="two-targets"),
    pytest.param("action: rollback", "action: reboot", id="unknown-action"),
    pytest.param("maxUnavailable: 25%", "maxUnavailable: lots", id="bad-percentage"),
])
def test_schema_rejects_what_the_loader_rejects(old, new):
    document = yaml.safe_load(BASE.replace(old, new))
    assert list(validator().iter_errors(document))


def _properties(node):
    """Every (name, property schema) of every object in ``node``."""
    if isinstance(node, dict):
        yield from (node.get("properties") or {}).items()
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def _takes_null(prop: dict) -> bool:
    return prop.get("type") == "null" or any(isinstance(a, dict) and a.get("type") == "null"
                                             for a in prop.get("anyOf", []))


def test_no_default_the_field_itself_refuses():
    """A property's default is a value it accepts: ``resource`` (cpu | memory) showed
    "default": null beside "type": "string", which an editor completing it would insert."""
    wrong = [name for name, prop in _properties(policy_json_schema())
             if isinstance(prop, dict) and "default" in prop and prop["default"] is None and not _takes_null(prop)]
    assert wrong == []
