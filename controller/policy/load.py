"""Load policy files: read YAML, validate every document, compile, and collect every error.

Nothing is raised until all files are read: :func:`check_policies` returns policies and errors
together; :func:`load_policies` raises :class:`PolicyError` holding all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from controller.core.health.params import HealthParams
from controller.core.scaling.params import PolicyParams
from controller.errors import FieldError, PolicyError
from controller.model import DEFAULT_TARGET_LABELS, TargetLabels
from controller.policy.compile import compile_health, compile_policy, compile_policy_health, compile_targets
from controller.policy.durations import describe_value
from controller.policy.messages import clean_loc, format_path, validation_problems
from controller.policy.partial import error_trie, guarded, partial_model
from controller.policy.rules import document_problems
from controller.policy.schema import API_VERSION, KIND, PolicyDocument
from controller.policy.specs import HealthSpec, TargetSelector
from controller.policy.units import unit_warnings
from controller.policy.yamlsrc import YamlDocument, read_documents, read_yaml_file

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedPolicy:
    """One valid policy document, compiled. ``line`` is where the document starts in ``file``."""

    name: str
    file: str
    document: int  # 1-based position in the file
    line: int
    model: PolicyDocument
    params: PolicyParams
    targets: TargetSelector
    health: HealthSpec | None
    health_params: HealthParams | None = None  # the health core's parameters, compiled once, here

    @property
    def scales(self) -> bool:
        """False for a health-only policy: its ``params`` has no metrics and nothing scales it."""
        return self.model.spec.scaling is not None

    @property
    def preset(self) -> str | None:
        return self.model.spec.preset


@dataclass
class PolicyCheck:
    """The outcome of reading policy files: what loaded, what is wrong, which files were read."""

    files: list[str] = field(default_factory=list)
    policies: list[LoadedPolicy] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    #: files and folders that could not be read (permissions, gone mid-read): worth reading again
    unreadable: list[str] = field(default_factory=list)
    #: valid, but probably not what was meant (controller/policy/units.py); never stop a load
    warnings: list[FieldError] = field(default_factory=list)
    #: (text, file name) of every file read, in load order: what the policies were compiled from
    texts: list[tuple[str, str]] = field(default_factory=list)
    #: file -> the names of its policies, for each file without an error: known when another file's
    #: errors leave ``policies`` empty (validate --format json lists them)
    names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def policies_in(self, file: str) -> list[LoadedPolicy]:
        return [p for p in self.policies if p.file == file]

    def errors_in(self, file: str) -> list[FieldError]:
        return [e for e in self.errors if e.file == file]

    def names_in(self, file: str) -> list[str]:
        """The names of the policies in ``file`` if it has no error (another file may), else []."""
        return self.names.get(file, [])


@dataclass
class _Document:
    """A document being checked: its YAML, its file, and its model once field rules pass."""

    file: str
    yaml: YamlDocument
    numbered: bool  # the file holds several documents: paths carry "[doc N]"
    model: PolicyDocument | None = None

    def error(self, loc: tuple, message: str) -> FieldError:
        path = format_path(loc)
        if self.numbered:
            path = f"[doc {self.yaml.index}] {path}".rstrip()
        return FieldError(self.file, self.yaml.line_of(loc), path, message)

    @property
    def raw_name(self) -> str | None:
        data = self.yaml.data
        metadata = data.get("metadata") if isinstance(data, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None


def load_policies(paths: Iterable[str | Path]) -> list[LoadedPolicy]:
    """Every policy in ``paths`` (files, or folders scanned for *.yaml / *.yml, sorted).

    Raises :class:`PolicyError` with every problem found in every file if any is invalid.
    """
    check = check_policies(paths)
    if check.errors:
        raise PolicyError(check.errors)
    return check.policies


def load_policy_text(text: str, filename: str = "<text>") -> list[LoadedPolicy]:
    """The policies in one YAML text; ``filename`` is used in error messages only."""
    check = check_policy_texts([(text, filename)])
    if check.errors:
        raise PolicyError(check.errors)
    return check.policies


def check_policies(paths: Iterable[str | Path], target_labels: TargetLabels = DEFAULT_TARGET_LABELS) -> PolicyCheck:
    """Read and check every policy file under ``paths`` without raising. ``target_labels``: what
    series are matched to workloads by (``--target-labels``), for the warnings of a query whose
    series no target can be matched to."""
    files, check = policy_files(paths)
    texts = []
    for path in files:
        check.files.append(str(path))
        text, problem = read_yaml_file(path)
        if problem is not None:
            check.errors.append(FieldError(str(path), problem.line, "", problem.message))
            if problem.unreadable:
                check.unreadable.append(str(path))
        else:
            texts.append((text, str(path)))
    return _check_texts(check, texts, target_labels)


def check_policy_texts(texts: Iterable[tuple[str, str]],
                       target_labels: TargetLabels = DEFAULT_TARGET_LABELS) -> PolicyCheck:
    """check_policies of texts already in memory: (text, file name) pairs, each checked as one
    file (its own size bounds), the rules that span documents across all of them."""
    texts = list(texts)
    return _check_texts(PolicyCheck(files=[name for _, name in texts]), texts, target_labels)


def _check_texts(check: PolicyCheck, texts: list[tuple[str, str]],
                 target_labels: TargetLabels = DEFAULT_TARGET_LABELS) -> PolicyCheck:
    check.texts = list(texts)
    documents: list[_Document] = []
    for text, name in texts:
        file_documents, errors = _check_text(text, name)
        documents += file_documents
        check.errors += errors
    _finish(check, documents, target_labels)
    return check


def policy_files(paths: Iterable[str | Path]) -> tuple[list[Path], PolicyCheck]:
    """The files to read, folders expanded (not recursively), each file once."""
    files: list[Path] = []
    check = PolicyCheck()
    seen: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            try:
                entries = sorted(p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES)
                found = [p for p in entries if p.is_file()]
                broken = [p for p in entries if p.is_symlink() and not p.exists()]  # silently skipped before
            except OSError as exc:  # a folder made unreadable (chmod 000): its files cannot be listed
                check.errors.append(FieldError(str(path), None, "", f"cannot read this folder: {exc.strerror or exc}"))
                check.unreadable.append(str(path))
                continue
            check.errors += [FieldError(str(link), None, "", "a broken or looping symbolic link") for link in broken]
            if not found and not broken:
                check.errors.append(FieldError(str(path), None, "", "no *.yaml or *.yml files in this folder"))
        elif path.exists():
            found = [path]
        else:
            check.errors.append(FieldError(str(path), None, "", "no such file or folder"))
            found = []
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files, check


def _check_text(text: str, filename: str) -> tuple[list[_Document], list[FieldError]]:
    """Field and cross-field checks of every document of one file; errors sorted by line."""
    yaml_documents, problems = read_documents(text)
    errors = [FieldError(filename, p.line, format_path(p.path), p.message) for p in problems]
    present = [d for d in yaml_documents if d.data is not None]
    if not present and not problems:
        errors.append(FieldError(filename, None, "", "file is empty: expected a Policy document"))
    documents = [_Document(filename, d, numbered=len(present) > 1) for d in present]
    for document in documents:
        errors += _check_document(document)
    errors.sort(key=lambda e: e.line or 0)
    return documents, errors


def _check_document(document: _Document) -> list[FieldError]:
    """YAML problems, then the header, then field rules and, in the same pass, the cross-field
    rules on the parts whose field rules pass (controller/policy/partial.py)."""
    errors = [document.error(p.path, p.message) for p in document.yaml.problems]
    data = document.yaml.data
    if not isinstance(data, dict):
        return errors + [document.error((), f"expected a Policy document (a mapping with apiVersion, kind, "
                                             f"metadata, spec), got {describe_value(data)}")]
    header = _header_errors(document, data)
    if header:  # another kind of file: checking its spec against Policy would only add noise
        return errors + header
    try:
        document.model = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
        problems = validation_problems(found, PolicyDocument) + _problems_beside(data, found)
        return errors + [document.error(loc, message) for loc, message in problems]
    return errors + [document.error(loc, message) for loc, message in document_problems(document.model)]


def _problems_beside(data: dict, found: list[dict]) -> list[tuple[tuple, str]]:
    """The cross-field problems of the parts of ``data`` that validated, beside the field errors
    ``found``: a file is not fixed in waves, field errors first and then the rest."""
    partial, problems = partial_model(PolicyDocument, data, error_trie(clean_loc(e["loc"]) for e in found))
    return problems + list(guarded(document_problems, partial))


def _header_errors(document: _Document, data: dict) -> list[FieldError]:
    errors = []
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in data:
            errors.append(document.error((key,), f"required field is missing (expected {expected!r})"))
        elif data[key] != expected:
            errors.append(document.error((key,), f"expected {expected!r}, got {describe_value(data[key])}"))
    return errors


def _finish(check: PolicyCheck, documents: list[_Document], target_labels: TargetLabels = DEFAULT_TARGET_LABELS) -> None:
    """Add the rules that span documents, then compile every valid document if all is well."""
    check.errors += _duplicate_names(documents) + _contested_targets(documents)
    order = {file: i for i, file in enumerate(check.files)}
    check.errors.sort(key=lambda e: (order.get(e.file, -1), e.line or 0))
    check.warnings = [d.error(loc, message) for d in documents if d.model is not None
                      for loc, message in unit_warnings(d.model, target_labels)] + _overlapping_selectors(documents)
    broken = {e.file for e in check.errors}
    check.names = {file: [d.model.metadata.name for d in documents if d.file == file and d.model is not None]
                   for file in check.files if file not in broken}
    if check.errors:
        return
    check.policies = [_compile(d) for d in documents]


def _duplicate_names(documents: list[_Document]) -> list[FieldError]:
    first: dict[str, FieldError] = {}
    errors = []
    for document in documents:
        name = document.raw_name
        if name is None:
            continue
        where = document.error(("metadata", "name"), "")
        if name in first:
            errors.append(document.error(("metadata", "name"), f"duplicate policy name '{name}' "
                                         f"(first defined at {first[name].file}:{first[name].line})"))
        else:
            first[name] = where
    return errors


def _contested_targets(documents: list[_Document]) -> list[FieldError]:
    """Two scaling policies naming the same workload would fight over its replica count."""
    owners: dict[tuple, tuple[_Document, FieldError]] = {}
    errors = []
    for document in documents:
        model = document.model
        if model is None or model.spec.scaling is None:
            continue
        for loc, key in _named_targets(model):
            owner, at = owners.setdefault(key, (document, document.error(loc, "")))
            if owner is not document:
                kind, namespace, name = key
                errors.append(document.error(loc, f"{kind} {namespace}/{name} is already scaled by policy "
                                                  f"'{owner.model.metadata.name}' ({at.file}:{at.line})"))
    return errors


def _overlapping_selectors(documents: list[_Document]) -> list[FieldError]:
    """A warning per pair of scaling policies whose selectors are bound to meet: every workload
    one selects, the other selects too (TargetSelector.within: labels and set-based
    requirements); and per selector no workload can meet. Not an error: the runtime gives such a workload to the policy that selected
    it first, and the other leaves it alone, but that is rarely what the author of the second meant."""
    seen: list[tuple[_Document, TargetSelector]] = []
    out = []
    for document in documents:
        model = document.model
        if model is None or model.spec.scaling is None or model.spec.targets.selector is None:
            continue
        mine = compile_targets(model.spec.targets)
        if mine.selects_nothing:
            out.append(document.error(("spec", "targets", "selector"), (
                f"warning: no workload can meet every requirement of this selector ({mine.label_selector}): "
                "a key's requirements contradict each other, so the policy governs nothing")))
            continue
        for other, theirs in seen:
            narrower = mine if mine.within(theirs) else theirs if theirs.within(mine) else None
            if narrower is None:
                continue
            at = other.error(("spec", "targets", "selector"), "")
            out.append(document.error(("spec", "targets", "selector"), (
                f"warning: every {mine.kind} of namespace {mine.namespace} labelled {narrower.label_selector} is "
                f"selected by this policy and by '{other.model.metadata.name}' ({at.file}:{at.line}) too: at run "
                f"time the policy that selects it first governs it and the other leaves it alone (PolicyConflict); "
                f"narrow one of the selectors")))
        seen.append((document, mine))
    return out


def _named_targets(model: PolicyDocument) -> list[tuple[tuple, tuple[str, str, str]]]:
    """(path, (kind, namespace, name)) of every workload the policy names explicitly."""
    targets = model.spec.targets
    if targets.name is not None:
        named = [(("spec", "targets", "name"), targets.name)]
    else:
        named = [(("spec", "targets", "names", i), n) for i, n in enumerate(targets.names or [])]
    return [(loc, (targets.kind, targets.namespace, name)) for loc, name in named]


def health_side(policy: LoadedPolicy) -> LoadedPolicy:
    """``policy`` with its ``scaling`` section set aside: its health checks alone, as a
    health-only policy of the same name, file and targets (``setpoint simulate --scaler`` runs
    them beside what scales the workload). A policy without a health section stays as it is."""
    if policy.health is None or not policy.scales:
        return policy
    from dataclasses import replace

    model = policy.model.model_copy(update={"spec": policy.model.spec.model_copy(update={"scaling": None})})
    return replace(policy, model=model, params=compile_policy(model),
                   health_params=compile_policy_health(model, policy.health))


def _compile(document: _Document) -> LoadedPolicy:
    model = document.model
    health = compile_health(model.spec.health)
    return LoadedPolicy(name=model.metadata.name, file=document.file, document=document.yaml.index,
                        line=document.yaml.line, model=model, params=compile_policy(model),
                        targets=compile_targets(model.spec.targets), health=health,
                        health_params=compile_policy_health(model, health))
