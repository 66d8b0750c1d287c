"""metadata.managedFields of the simulated workloads, as the apiserver keeps them for Update requests.

What the real apiserver does, for the fields served here (``spec.replicas``, ``spec.paused``,
``spec.template``, ``spec.strategy``, ``spec.selector``, label and annotation keys):

- every write names a field manager: the request's ``fieldManager`` query parameter, else the
  part of its User-Agent before the first ``/`` (``kubectl-scale``, ``OpenAPI-Generator``);
- an Update (PUT or a JSON / merge / strategic patch) gives the writer the fields it *changed*
  and takes them from every other manager; an entry left with no field is dropped; an update
  that changes nothing changes no entry (nor the resourceVersion);
- entries are keyed by (manager, operation, apiVersion, subresource): a write through the scale
  subresource has its own entry, ``subresource: scale``, whose fieldsV1 names the parent's field
  (``{"f:spec": {"f:replicas": {}}}``), with the parent's apiVersion;
- ``time`` is when the entry last changed (RFC 3339, seconds); ``fieldsType`` is ``FieldsV1``.

Server-side apply (operation Apply) is not served (no apply-patch content type), so every entry
here is an Update. A client cannot set managedFields through an update (they are kept as stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from simulators.kubeapi import objects as K

#: Longest fieldManager the apiserver accepts.
MAX_MANAGER_LENGTH = 128
Path = tuple[str, ...]

#: spec keys owned as a whole (a change anywhere inside is a change of the key)
_SPEC_KEYS = ("replicas", "paused", "template", "strategy", "selector", "updateStrategy", "serviceName")
#: metadata maps owned key by key
_META_MAPS = ("labels", "annotations")


@dataclass(frozen=True)
class FieldWriter:
    """Who writes: the field manager, the operation, and the subresource written through ('' or 'scale')."""

    manager: str
    operation: str = "Update"
    subresource: str = ""


def manager_of(query: dict[str, str], headers: dict[str, str]) -> str:
    """The request's field manager: ``fieldManager``, else the User-Agent's product (before ``/``).
    400 for a manager longer than 128 characters or with non-printable ones, as the apiserver."""
    name = query.get("fieldManager")
    if name is None:
        return (headers.get("user-agent") or "").split("/", 1)[0].strip() or "unknown"
    if len(name) > MAX_MANAGER_LENGTH or not name.isprintable():
        raise K.bad_request(f"fieldManager: Invalid value: {name[:40]!r}: must be less than 128 characters "
                            f"and printable")
    return name


def changed_paths(current: dict, new: dict) -> tuple[set[Path], set[Path]]:
    """(paths set to a new value, paths removed) between two workload objects."""
    changed, removed = set(), set()
    cur_spec, new_spec = current.get("spec") or {}, new.get("spec") or {}
    for key in _SPEC_KEYS:
        if key in new_spec and K.compact(new_spec[key]) != K.compact(cur_spec.get(key)):
            changed.add(("spec", key))
        elif key not in new_spec and key in cur_spec and key not in ("replicas",):
            removed.add(("spec", key))
    for part in _META_MAPS:
        old = (current.get("metadata") or {}).get(part) or {}
        now = (new.get("metadata") or {}).get(part) or {}
        changed |= {("metadata", part, k) for k, v in now.items() if old.get(k) != v}
        removed |= {("metadata", part, k) for k in old.keys() - now.keys()}
    return changed, removed


@dataclass
class _Entry:
    writer: FieldWriter
    api_version: str
    time_s: float
    fields: set = field(default_factory=set)


class ManagedFields:
    """The managedFields of one object."""

    def __init__(self, api_version: str):
        self.api_version = api_version
        self._entries: list[_Entry] = []

    def record(self, writer: FieldWriter, changed: Iterable[Path], removed: Iterable[Path], at_s: float) -> None:
        """An Update by ``writer`` that set ``changed`` and removed ``removed`` at ``at_s`` (wall)."""
        changed, removed = set(changed), set(removed)
        if not changed and not removed:
            return
        for e in self._entries:
            if e.writer != writer and e.fields & (changed | removed):
                e.fields -= changed | removed
                e.time_s = at_s
        mine = next((e for e in self._entries if e.writer == writer), None)
        if mine is None and changed:
            mine = _Entry(writer, self.api_version, at_s)
            self._entries.append(mine)
        if mine is not None:
            mine.fields = (mine.fields | changed) - removed
            mine.time_s = at_s
        self._entries = [e for e in self._entries if e.fields]

    def render(self) -> list[dict]:
        """``metadata.managedFields`` as the apiserver serves it."""
        out = []
        for e in self._entries:
            entry = {"manager": e.writer.manager, "operation": e.writer.operation, "apiVersion": e.api_version,
                     "time": K.rfc3339(e.time_s), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(e.fields)}
            if e.writer.subresource:
                entry["subresource"] = e.writer.subresource
            out.append(entry)
        return out


def fields_v1(paths: Iterable[Path]) -> dict:
    """FieldsV1 of a set of paths: nested ``f:<name>`` keys, ``{}`` at each owned leaf."""
    root: dict = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root
