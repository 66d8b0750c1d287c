"""``setpoint import``'s reading side: manifest files (or stdin) through the bounded YAML reader,
converted by :mod:`controller.policy.importer`, and checked by the policy loader before output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

from controller.errors import FieldError, ManifestError, PolicyError
from controller.policy.importer import (HPA_KIND, KEDA_KIND, ConversionProblem, Converted, Manifest, convert, dns_label,
                                        join_policies, read_manifests)
from controller.policy.load import load_policy_text
from controller.policy.messages import format_path
from controller.policy.yamlsrc import MAX_FILE_BYTES, decode_yaml_bytes, read_yaml_file

STDIN = "-"
#: The name the converted policies are checked under together.
JOINED = "<imported policies>"

#: Where a policy field comes from in the object it was converted from (a prefix of the policy
#: path -> the object's field; ``{i}``: the same list index), so that a value the policy rules
#: refuse (a namespace that is not a string, a target of 0) is named at its line of the manifest.
ORIGINS = {
    HPA_KIND: (("spec.targets.namespace", "metadata.namespace"), ("spec.targets.name", "spec.scaleTargetRef.name"),
               ("spec.targets.kind", "spec.scaleTargetRef.kind"), ("spec.replicas.min", "spec.minReplicas"),
               ("spec.replicas.max", "spec.maxReplicas"), ("spec.replicas", "spec"),
               ("spec.scaling.metrics[{i}]", "spec.metrics[{i}]"), ("spec.scaling.metrics", "spec.metrics"),
               ("spec.scaling.behavior.scaleUp", "spec.behavior.scaleUp"),
               ("spec.scaling.behavior.scaleDown", "spec.behavior.scaleDown"),
               ("spec.scaling.tolerance", "spec.behavior")),
    KEDA_KIND: (("spec.targets.namespace", "metadata.namespace"), ("spec.targets.name", "spec.scaleTargetRef.name"),
                ("spec.targets.kind", "spec.scaleTargetRef.kind"), ("spec.replicas.min", "spec.minReplicaCount"),
                ("spec.replicas.max", "spec.maxReplicaCount"), ("spec.replicas", "spec"),
                ("spec.scaling.metrics[{i}]", "spec.triggers[{i}]"), ("spec.scaling.metrics", "spec.triggers"),
                ("spec.scaling.behavior", "spec.advanced.horizontalPodAutoscalerConfig.behavior")),
}
_PART = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]')


@dataclass
class ImportResult:
    policies: list[Converted] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "FILE:LINE: skipped: ..." for other kinds

    @property
    def text(self) -> str:
        return join_policies(self.policies)


def _read(name: str, stdin: BinaryIO | None) -> str:
    if name == STDIN:
        data = stdin.read(MAX_FILE_BYTES + 1) if stdin is not None else b""
        if len(data) > MAX_FILE_BYTES:
            raise ManifestError([FieldError("<stdin>", None, "", f"input too large: more than {MAX_FILE_BYTES:,} "
                                                                  f"bytes; import fewer objects at a time")])
        text, problem = decode_yaml_bytes(data)
    else:
        text, problem = read_yaml_file(name)
    if problem is not None:
        raise ManifestError([FieldError(_display(name), problem.line, "", problem.message)])
    return text


def _display(name: str) -> str:
    return "<stdin>" if name == STDIN else name


def import_files(names: Sequence[str], stdin: BinaryIO | None = None) -> ImportResult:
    """Convert every HPA / ScaledObject in ``names`` (``-`` is stdin). Raises ManifestError with
    every problem found (file, line, field path) if any object cannot be converted."""
    found: list[tuple[str, Manifest]] = []
    errors: list[FieldError] = []
    result = ImportResult()
    for name in names:
        text = _read(name, stdin)
        manifests, problems = read_manifests(text)
        for line, path, message in problems:
            if message.startswith("skipped:"):
                result.skipped.append(str(FieldError(_display(name), line, format_path(path), message)))
            else:
                errors.append(FieldError(_display(name), line, format_path(path), message))
        found += [(name, m) for m in manifests]
    if not found and not errors:
        errors.append(FieldError(", ".join(map(_display, names)), None, "",
                                 "no HorizontalPodAutoscaler or ScaledObject found"))
    objects = [m.data for _, m in found]
    names_out = _unique_names(objects)
    for (name, manifest), policy_name in zip(found, names_out):
        try:
            converted = convert(manifest.data, policy_name)
        except ConversionProblem as exc:
            path = manifest.prefix + exc.path
            errors.append(FieldError(_display(name), manifest.document.line_of(path), format_path(path), exc.message))
            continue
        refused = _policy_problems(converted)
        if refused:
            errors += [_at_origin(name, manifest, e) for e in refused]
        else:
            result.policies.append(converted)
    if errors:
        raise ManifestError(errors)
    try:  # rules across policies: two objects that scale the same workload
        load_policy_text(result.text, JOINED)
    except PolicyError as exc:
        raise ManifestError([_across(found, result.policies, e) for e in exc.errors]) from None
    return result


def _policy_problems(converted: Converted) -> list[FieldError]:
    """What the policy rules refuse in one converted policy (none for a good object)."""
    try:
        load_policy_text(converted.text, "<converted>")
    except PolicyError as exc:
        return exc.errors
    return []


def _at_origin(name: str, manifest: Manifest, error: FieldError) -> FieldError:
    """A policy rule's refusal of a converted value, named at the manifest field it came from."""
    origin = _origin(str(manifest.data.get("kind")), error.path)
    path = manifest.prefix + origin
    return FieldError(_display(name), manifest.document.line_of(path), format_path(path),
                      f"converts to an invalid policy: {error.path}: {error.message}" if error.path else
                      f"converts to an invalid policy: {error.message}")


def _across(found: list[tuple[str, Manifest]], policies: list[Converted], error: FieldError) -> FieldError:
    """A refusal of the converted policies taken together ("[doc N] path", which may name another
    document by its line in the joined text), named at the manifests they came from."""
    starts, line = [], 1  # first line of each converted policy in the joined text ("---" between)
    for c in policies:
        starts.append(line)
        line += c.text.count("\n") + 1

    def manifest_at(joined_line: int) -> tuple[str, Manifest]:
        return found[max(i for i, start in enumerate(starts) if start <= joined_line)]

    def object_line(name: str, manifest: Manifest) -> str:
        return f"{_display(name)}:{manifest.document.line_of(manifest.prefix)}"

    m = re.match(r"\[doc (\d+)\] ?(.*)$", error.path)
    index, policy_path = (int(m.group(1)) - 1, m.group(2)) if m else (None, error.path)
    name, manifest = found[index] if index is not None and index < len(found) else manifest_at(error.line or 1)
    message = re.sub(re.escape(JOINED) + r":(\d+)", lambda r: object_line(*manifest_at(int(r.group(1)))), error.message)
    return _at_origin(name, manifest, FieldError(error.file, error.line, policy_path, message))


def _origin(kind: str, policy_path: str) -> tuple:
    """The object's field (a path) a policy path comes from; () when unknown (the object itself)."""
    for policy_prefix, object_prefix in ORIGINS.get(kind, ()):
        pattern = re.escape(policy_prefix).replace(re.escape("{i}"), r"(\d+)")
        m = re.match(pattern + r"(?=$|[.\[])", policy_path)
        if m:
            text = object_prefix.replace("{i}", m.group(1)) if m.groups() else object_prefix
            return tuple(int(i) if i else k for k, i in _PART.findall(text))
    return ()


def _unique_names(objects: list[dict]) -> list[str | None]:
    """None (the object's own name) unless two objects share a name: then ``namespace-name``."""
    def meta(o: dict) -> dict:
        m = o.get("metadata") if isinstance(o, dict) else None
        return m if isinstance(m, dict) else {}

    names = [dns_label(str(meta(o).get("name", ""))) for o in objects]
    return [dns_label(f"{meta(o).get('namespace') or 'default'}-{n}") if names.count(n) > 1 else None
            for o, n in zip(objects, names)]
