"""``setpoint import``'s reading side: manifest files (or stdin) through the bounded YAML reader,
converted by :mod:`controller.policy.importer`, and checked by the policy loader before output."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

from controller.errors import WARNING_PREFIX, FieldError, ManifestError
from controller.policy.importer import (HPA_KIND, KEDA_KIND, ConversionProblem, Converted, Manifest, convert, dns_label,
                                        join_policies, read_manifests, v1_fields)
from controller.policy.load import check_policy_texts, policy_files
from controller.policy.durations import describe_value
from controller.policy.messages import format_path
from controller.policy.yamlsrc import MAX_FILE_BYTES, decode_yaml_bytes, read_yaml_file

STDIN = "-"
#: The file name each converted policy is checked under: ``<converted 3>`` (the 4th object found).
CONVERTED = "<converted "
_CONVERTED_NAME = re.compile(re.escape(CONVERTED) + r"(\d+)>")
_CONVERTED_AT = re.compile(re.escape(CONVERTED) + r"(\d+)>:\d+")

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
    # autoscaling/v1: one CPU metric, from targetCPUUtilizationPercentage
    (HPA_KIND, "v1"): (("spec.targets.namespace", "metadata.namespace"), ("spec.targets.name", "spec.scaleTargetRef.name"),
                       ("spec.targets.kind", "spec.scaleTargetRef.kind"), ("spec.replicas.min", "spec.minReplicas"),
                       ("spec.replicas.max", "spec.maxReplicas"), ("spec.replicas", "spec"),
                       ("spec.scaling.metrics", "spec.targetCPUUtilizationPercentage")),
    KEDA_KIND: (("spec.targets.namespace", "metadata.namespace"), ("spec.targets.name", "spec.scaleTargetRef.name"),
                ("spec.targets.kind", "spec.scaleTargetRef.kind"), ("spec.replicas.min", "spec.minReplicaCount"),
                ("spec.replicas.max", "spec.maxReplicaCount"), ("spec.replicas", "spec"),
                ("spec.scaling.metrics[{i}]", "spec.triggers[{i}]"), ("spec.scaling.metrics", "spec.triggers"),
                ("spec.scaling.behavior", "spec.advanced.horizontalPodAutoscalerConfig.behavior")),
}
_PART = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]')


class ImportRefused(ManifestError):
    """An import refused: ``errors`` are every problem of every file and object, sorted by file
    (in the order given) and line; ``refused`` of the ``objects`` found have one at least, and
    ``outside`` errors are in no object (a file that is not YAML, a document that does not parse)."""

    def __init__(self, errors: list[FieldError], objects: int, refused: int, outside: int,
                 warnings: list[FieldError]):
        super().__init__(errors)
        self.warnings = warnings  # the objects that convert: said after the errors, as validate does
        self.objects = objects
        self.refused = refused
        self.outside = outside

    @property
    def skip_invalid_would_write(self) -> int:
        """How many objects --skip-invalid would convert (0: it refuses an error outside objects too)."""
        return 0 if self.outside else self.objects - self.refused


@dataclass
class ImportResult:
    policies: list[Converted] = field(default_factory=list)
    other_kinds: list[FieldError] = field(default_factory=list)  # "FILE:LINE: skipped: ..." for other kinds
    #: each problem of the objects --skip-invalid left out, in file order
    left_out: list[FieldError] = field(default_factory=list)
    #: "FILE:LINE: FIELD: warning: ... [KIND NS/NAME]": what would harm the cut-over, by policy written
    warnings: list[FieldError] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """The notes of what was left out, as said on stderr: the other kinds, then each problem of
        an object --skip-invalid left out (``... [KIND NS/NAME] (skipped: --skip-invalid)``)."""
        return [str(e) for e in self.other_kinds] + [f"{e} (skipped: --skip-invalid)" for e in self.left_out]

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


def _expanded(names: Sequence[str]) -> tuple[list[str], list[FieldError]]:
    """``names`` with each folder replaced by its *.yaml / *.yml files (sorted, not recursive, as
    validate reads a folder: a CI over a folder of manifests), and the folders' problems (none
    of those files, unreadable, a broken link)."""
    out: list[str] = []
    errors: list[FieldError] = []
    for name in names:
        if name == STDIN or not os.path.isdir(name):
            out.append(name)
            continue
        files, check = policy_files([name])
        out += [str(f) for f in files]
        errors += check.errors
    return out, errors


def _display(name: str) -> str:
    return "<stdin>" if name == STDIN else name


def import_files(names: Sequence[str], stdin: BinaryIO | None = None, skip_invalid: bool = False) -> ImportResult:
    """Convert every HPA / ScaledObject in ``names`` (``-`` is stdin). Raises ImportRefused with
    every problem found (file, line, field path; every field at fault in every object, each
    naming its object) if any object cannot be converted; with ``skip_invalid``, such objects are
    left out and their problems listed in ``left_out`` instead (a file that is not YAML, or none
    converted, still raises). ``warnings`` (of the objects that convert) are said apart, at the
    field each is about."""
    names, errors = _expanded(names)
    found: list[tuple[str, Manifest]] = []
    result = ImportResult()
    for name in names:
        try:
            text = _read(name, stdin)
        except ManifestError as unreadable:  # said with the other files' errors, not alone
            errors += unreadable.errors
            continue
        manifests, problems = read_manifests(text)
        for line, path, message in problems:
            if message.startswith("skipped:"):
                result.other_kinds.append(FieldError(_display(name), line, format_path(path), message))
            else:
                errors.append(FieldError(_display(name), line, format_path(path), message))
        found += [(name, m) for m in manifests]
    if not found and not errors:
        errors.append(FieldError(", ".join(map(_display, names)), None, "",
                                 "no HorizontalPodAutoscaler or ScaledObject found"))
    names_out = _unique_names([m.data for _, m in found])
    by_object: list[list[FieldError]] = [[] for _ in found]  # each object's problems, reported in input order
    converted: dict[int, Converted] = {}
    for i, ((name, manifest), policy_name) in enumerate(zip(found, names_out)):
        try:
            converted[i] = convert(manifest.data, policy_name)
        except ConversionProblem as exc:  # every field at fault in the object
            for problem in exc.problems:
                path = manifest.prefix + problem.path
                by_object[i].append(FieldError(_display(name), manifest.document.line_of(path), format_path(path),
                                               problem.message))
    # the policy rules: each converted policy checked as a file of its own, and across them (two
    # objects that scale one workload); a refusal is named at the manifest field it came from
    check = check_policy_texts((c.text, f"{CONVERTED}{i}>") for i, c in converted.items())
    for e in check.errors:
        i = int(_CONVERTED_NAME.fullmatch(e.file).group(1))
        by_object[i].append(_at_origin(found, i, e))
    by_object = [[_of_object(e, m) for e in problems] for problems, (_, m) in zip(by_object, found)]
    result.warnings = _in_file_order([w for i, c in converted.items() if not by_object[i]
                                      for w in _warnings(found[i], c)], names)
    if skip_invalid and not errors and any(not problems for problems in by_object):
        result.left_out = _in_file_order([e for problems in by_object for e in problems], names)
        result.policies = [c for i, c in converted.items() if not by_object[i]]
        return result
    errors += [e for problems in by_object for e in problems]
    if errors:
        raise ImportRefused(_in_file_order(errors, names), len(found), sum(1 for p in by_object if p),
                            outside=len(errors) - sum(map(len, by_object)), warnings=result.warnings)
    result.policies = list(converted.values())
    return result


def _warnings(found: tuple[str, Manifest], converted: Converted) -> list[FieldError]:
    """``converted``'s warnings at the fields of its object they are about, as validate's."""
    name, manifest = found
    return [_of_object(FieldError(_display(name), manifest.document.line_of(manifest.prefix + path),
                                  format_path(manifest.prefix + path), WARNING_PREFIX + text), manifest)
            for path, text in converted.warnings]


def _of_object(error: FieldError, manifest: Manifest) -> FieldError:
    """``error`` with the object it is in said after its message: `` [HorizontalPodAutoscaler shop/web]``
    (in a List of 40 the index alone, items[17], does not say which HPA to fix)."""
    return FieldError(error.file, error.line, error.path, error.message, object=object_said(manifest.data))


def object_said(obj: dict) -> str:
    """``KIND NAMESPACE/NAME`` of a manifest (``KIND NAME`` without a namespace; the name as YAML
    writes it where it is not a string, ``(no name)`` where there is none)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    name = "(no name)" if name in (None, "") else name if isinstance(name, str) else describe_value(name)
    where = f"{namespace}/" if isinstance(namespace, str) and namespace else ""
    return f"{obj.get('kind')} {where}{name}"


def _in_file_order(errors: list[FieldError], names: Sequence[str]) -> list[FieldError]:
    """``errors`` sorted by file, in the order the files were given, then by line (an error of no
    line, a whole file's, first); the same line keeps the order found (stable sort)."""
    order = {_display(name): i for i, name in reversed(list(enumerate(names)))}
    return sorted(errors, key=lambda e: (order.get(e.file, len(order)), e.line or 0))


def _at_origin(found: list[tuple[str, Manifest]], i: int, error: FieldError) -> FieldError:
    """A policy rule's refusal of object ``i``'s converted policy, named at the manifest field it
    came from (another converted policy it names, at that object's file and line)."""
    name, manifest = found[i]
    kind = manifest.data.get("kind")
    path = manifest.prefix + _origin((HPA_KIND, "v1") if kind == HPA_KIND and v1_fields(manifest.data) else kind,
                                     error.path)

    def object_line(m: re.Match) -> str:
        other_name, other = found[int(m.group(1))]
        return f"{_display(other_name)}:{other.document.line_of(other.prefix)}"

    message = _CONVERTED_AT.sub(object_line, error.message)
    return FieldError(_display(name), manifest.document.line_of(path), format_path(path),
                      f"converts to an invalid policy: {error.path}: {message}" if error.path else
                      f"converts to an invalid policy: {message}")


def _origin(kind: str | tuple, policy_path: str) -> tuple:
    """The object's field (a path) a policy path comes from; () when unknown (the object itself)."""
    for policy_prefix, object_prefix in ORIGINS.get(kind, ()):
        pattern = re.escape(policy_prefix).replace(re.escape("{i}"), r"(\d+)")
        m = re.match(pattern + r"(?=$|[.\[])", policy_path)
        if m:
            text = object_prefix.replace("{i}", m.group(1)) if m.groups() else object_prefix
            return tuple(int(i) if i else k for k, i in _PART.findall(text))
    return ()


def _unique_names(objects: list[dict]) -> list[str | None]:
    """None (the object's own name) unless two objects share a name: then ``namespace-name``, and
    ``-2``, ``-3`` ... after it where that is taken too (a policy name is a DNS label: web.v1 and
    web-v1, or two names over 63 characters alike in the first 63, read alike)."""
    def meta(o: dict) -> dict:
        m = o.get("metadata") if isinstance(o, dict) else None
        return m if isinstance(m, dict) else {}

    names = [dns_label(str(meta(o).get("name", ""))) for o in objects]
    taken = {n for n in names if names.count(n) == 1}
    out: list[str | None] = []
    for o, n in zip(objects, names):
        if names.count(n) == 1:
            out.append(None)
            continue
        name, i = dns_label(f"{meta(o).get('namespace') or 'default'}-{n}"), 1
        while name in taken:
            i += 1
            name = dns_label(f"{meta(o).get('namespace') or 'default'}-{n}"[:63 - len(f"-{i}")] + f"-{i}")
        taken.add(name)
        out.append(name)
    return out
