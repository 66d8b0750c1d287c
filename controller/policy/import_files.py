"""``setpoint import``'s reading side: manifest files (or stdin) through the bounded YAML reader,
converted by :mod:`controller.policy.importer`, and checked by the policy loader before output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

from controller.errors import FieldError, ManifestError
from controller.policy.importer import (ConversionProblem, Converted, Manifest, convert, dns_label, join_policies,
                                        read_manifests)
from controller.policy.load import load_policy_text
from controller.policy.messages import format_path
from controller.policy.yamlsrc import MAX_FILE_BYTES, decode_yaml_bytes, read_yaml_file

STDIN = "-"


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
            result.policies.append(convert(manifest.data, policy_name))
        except ConversionProblem as exc:
            path = manifest.prefix + exc.path
            errors.append(FieldError(_display(name), manifest.document.line_of(path), format_path(path), exc.message))
    if errors:
        raise ManifestError(errors)
    load_policy_text(result.text, "<imported policies>")  # our own output must validate: a bug otherwise
    return result


def _unique_names(objects: list[dict]) -> list[str | None]:
    """None (the object's own name) unless two objects share a name: then ``namespace-name``."""
    def meta(o: dict) -> dict:
        m = o.get("metadata") if isinstance(o, dict) else None
        return m if isinstance(m, dict) else {}

    names = [dns_label(str(meta(o).get("name", ""))) for o in objects]
    return [dns_label(f"{meta(o).get('namespace') or 'default'}-{n}") if names.count(n) > 1 else None
            for o, n in zip(objects, names)]
