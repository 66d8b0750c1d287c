"""Property-based fuzz of `setpoint import`: the HPA and KEDA manifests of tests/policy/imports/
(kubectl get output, Helm-rendered documents, Lists, v1 and v2 HPAs, ScaledObjects) and those of
test_import.py, mutated structurally (tests/support/structural.py's mutations, plus HPA and KEDA
words, Kubernetes quantities and fields of their APIs put elsewhere), one to four at once.

Properties, in process (controller.policy.import_files.import_files) and through the CLI:

- no exception: the manifests convert, or every problem is named;
- every error and note names the file, a line of it and a field path that is in the file (or
  whose parent is), at that field's line (or the nearest enclosing field's); none in pydantic's
  words (a file with no HPA at all is named without a line);
- what converts is a set of policies `setpoint validate` accepts, one file each and all in one;
- the errors, notes and policies are the same whatever the order of the keys of the mappings;
- with --skip-invalid, the errors are those of the import without it, and every object is either
  written or named in them (no policy for an object that has an error);
- a rewrite that changes nothing (keys reordered, scalars quoted otherwise, flow style, a
  quantity spelt otherwise) gives the same policies, to the byte; one that changes nothing HPA
  or KEDA does (a default of their API written out, an HPA as another API version serves it: v1
  as v2, v2 as v2beta2) gives policies that decide the same;
- files imported together get the errors each gets alone, and those across objects;
- `setpoint import FILE` (stdout, -o, --out-dir, stdin; with and without --skip-invalid) exits 0
  or 1, never 70 or a traceback, prints the in-process errors, writes the in-process policies or
  nothing at all, and what it writes passes `setpoint validate`.

The suite runs a small deterministic budget. To hunt, raise it (random, not derandomized):
SETPOINT_FUZZ_EXAMPLES=3000 python -m pytest tests/policy/test_import_fuzz.py -p no:xdist
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controller.cli import app
from controller.errors import FieldError, ManifestError
from controller.policy import load_policy_text
from controller.policy.import_files import import_files
from controller.policy.importer import read_manifests
from controller.policy.load import check_policy_texts
from controller.policy.yamlsrc import read_documents
from tests.policy.test_import import BAD_VALUES, HPA, ROLLOUT_HPA
from tests.support import structural as S

FIXTURES = Path(__file__).parent / "imports"
SOURCES = {p.name: S.documents(p) for p in sorted(FIXTURES.glob("*.yaml"))}
SOURCES["test_import-HPA.yaml"] = [HPA]
SOURCES["test_import-BAD_VALUES.yaml"] = [d for d in yaml.safe_load_all(BAD_VALUES) if d is not None]
SOURCES["test_import-ROLLOUT_HPA.yaml"] = [{"apiVersion": "v1", "kind": "List", "items": (
    SOURCES["hpa-list.yaml"][0]["items"] + yaml.safe_load(ROLLOUT_HPA))}]

#: Words of the HPA and KEDA formats (right at one place, wrong at another).
WORDS = ["Resource", "ContainerResource", "Pods", "Object", "External", "Utilization", "AverageValue", "Value",
         "cpu", "memory", "storage", "prometheus", "rabbitmq", "HorizontalPodAutoscaler", "ScaledObject", "List",
         "HorizontalPodAutoscalerList", "autoscaling/v1", "autoscaling/v2", "autoscaling/v2beta1",
         "autoscaling/v2beta2", "keda.sh/v1alpha1", "apps/v1", "Deployment", "StatefulSet", "Rollout", "Max", "Min",
         "Disabled", "Percent", "default", "kube-system", "Web.App", "web_app", "-web", "a" * 70, 'q"x', "x\\y"]
#: Kubernetes quantities, well and badly formed.
QUANTITIES = ["500m", "1k", "256Mi", "1e3", "1.5Gi", "0", "0.0", "-1", "+5", ".5", "5.", "...", "1.2.3", "1e400",
              "1E-400", "Infinity", "nan", "0x10", "1_000", " 7 ", "7 Mi", "1Ki", "12e", "e5", "1ki", "0.000000001",
              "9" * 400, "100.50", 1e400, 0.1, 10**20, 10**400]
#: Fields of the HPA and KEDA APIs, to be put where they may or may not belong.
FIELDS = ["behavior", "metrics", "targetCPUUtilizationPercentage", "minReplicas", "maxReplicas", "selector",
          "container", "describedObject", "tolerance", "matchLabels", "matchExpressions", "advanced", "fallback",
          "scalingModifiers", "activationThreshold", "namespace", "metricType", "scaleUp", "scaleDown",
          "horizontalPodAutoscalerConfig", "triggers", "items", "status", "annotations", "name"]
FIELD_VALUES = [None, 0, 5, "x", "5", [], {}, [{"type": "Pods", "value": 1, "periodSeconds": 15}], {"app": "web"},
                {"tier": "front", "app": "web"}, {"scaleUp": {}}, "autoscaling.alpha.kubernetes.io/metrics"]
KINDS = S.KINDS + ("word", "quantity", "field")


def mutate(docs: list, kind: str, at: int, choice: int) -> list:
    """S.mutate, and the import's own at one node: an HPA / KEDA word or a quantity in place of
    its value, or a field of their APIs added to it (a mapping) or beside it."""
    if kind in S.KINDS:
        return S.mutate(docs, kind, at, choice)
    docs = copy.deepcopy(docs)
    paths = S.nodes(docs)
    if not paths:
        return docs
    path = paths[at % len(paths)]
    parent, key = S.get(docs, path[:-1]), path[-1]
    pick = lambda options: options[choice % len(options)]
    if kind == "word":
        parent[key] = pick(WORDS)
    elif kind == "quantity":
        parent[key] = pick(QUANTITIES)
    elif kind == "field":
        target = parent[key] if isinstance(parent[key], dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            target[pick(FIELDS)] = FIELD_VALUES[(choice // len(FIELDS)) % len(FIELD_VALUES)]
    return docs


def mutated(docs: list, changes) -> list:
    for kind, at, choice in changes:
        docs = mutate(docs, kind, at, choice)
    return docs


sources = st.sampled_from(sorted(SOURCES))
changes = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 10**6), st.integers(0, 10**6)),
                   min_size=1, max_size=4)
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "derandomize": S.DERANDOMIZE}

# ------------------------------------------------------------------ importing
#: Every file is written here under one name, so that errors compare across examples.
WORK = Path(tempfile.mkdtemp(prefix="setpoint-import-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)
FILE = WORK / "manifests.yaml"
NO_OBJECT = "no HorizontalPodAutoscaler or ScaledObject found"


@dataclass
class Outcome:
    """What an import gave: its policies' (name, text), or its errors; the notes of what it left
    out; the warnings of the objects that convert."""

    policies: list[tuple[str, str]] | None
    errors: list[FieldError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)


def imported(text: str, skip_invalid: bool = False, path: Path = FILE) -> Outcome:
    path.write_text(text, encoding="utf-8")
    try:
        result = import_files([str(path)], skip_invalid=skip_invalid)
    except ManifestError as exc:
        assert exc.errors
        return Outcome(None, exc.errors, warnings=getattr(exc, "warnings", []))
    assert result.policies
    return Outcome([(c.name, c.text) for c in result.policies], skipped=result.skipped, warnings=result.warnings)


def assert_named(text: str, errors: list[FieldError], file: str = str(FILE)) -> None:
    """Each error names ``file``, a line of ``text`` and a field path in one of its documents (or
    whose parent is), at that field's line; none in pydantic's words."""
    documents = [d for d in read_documents(text)[0] if d.data is not None]
    n_lines = text.count("\n") + 1
    for e in errors:
        assert e.file == file and e.message, e
        assert not any(w in e.message for w in S.RAW), e
        if e.line is None:
            assert e.message == NO_OBJECT and not e.path, e
            continue
        assert 1 <= e.line <= n_lines, e
        if not e.path:
            continue
        _, path = S.parse_path(e.path)
        assert any((S.exists([d.data], (0, *path)) or S.exists([d.data], (0, *path[:-1])))
                   and d.line_of(path) == e.line for d in documents), (str(e), [d.line_of(path) for d in documents])


_NOTE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<rest>.*)$", re.DOTALL)
_SKIPPED_INVALID = " (skipped: --skip-invalid)"


def as_error(note: str) -> FieldError:
    """A note of ``skipped`` (``FILE:LINE: [PATH: ]skipped: ...``, or an error then
    `` (skipped: --skip-invalid)``) as the FieldError it prints."""
    m = _NOTE.match(note.removesuffix(_SKIPPED_INVALID))
    assert m, note
    rest = m["rest"]
    path, message = ("", rest) if rest.startswith("skipped:") else rest.split(": ", 1)
    return FieldError(m["file"], int(m["line"]), path, message)


def assert_valid_policies(policies: list[tuple[str, str]]) -> None:
    """The policies pass `setpoint validate`: one file each, and all in one file."""
    each = check_policy_texts([(text, f"{name}.yaml") for name, text in policies])
    assert not each.errors, [str(e) for e in each.errors]
    assert len({name for name, _ in policies}) == len(policies)
    together = check_policy_texts([("---\n".join(text for _, text in policies), "all.yaml")])
    assert not together.errors, [str(e) for e in together.errors]


def object_of(text: str):
    """error -> the HPA / ScaledObject it names: (its document's line, its place in a List)."""
    starts = [d.line for d in read_documents(text)[0]]

    def holder(e: FieldError) -> tuple:
        _, path = S.parse_path(e.path)
        return max(s for s in starts if s <= e.line), path[:2] if path[:1] == ("items",) else ()

    return holder


def comparable(outcome: Outcome):
    """An outcome without its lines (a reordered file moves them)."""
    return (outcome.policies, S.comparable(outcome.errors), S.comparable([as_error(n) for n in outcome.skipped]))


# ------------------------------------------------------------------ properties
@settings(max_examples=S.budget(250), **FUZZ)
@given(source=sources, changes=changes, flow=st.sampled_from([False, None, True]), order=st.integers(0, 2**32))
def test_a_mutated_manifest_converts_or_is_refused_at_its_fields_whatever_its_key_order(source, changes, flow, order):
    documents = mutated(SOURCES[source], changes)
    text = S.dump(documents, flow)
    outcome = imported(text)
    assert_named(text, outcome.errors + [as_error(n) for n in outcome.skipped])
    if outcome.policies is not None:
        assert_valid_policies(outcome.policies)
    reordered_text = S.dump(S.shuffled(documents, order), flow)
    reordered = imported(reordered_text)
    assert comparable(reordered) == comparable(outcome)
    if outcome.policies is not None:
        return
    # --skip-invalid: the same errors; each object written or named in them
    skipping = imported(text, skip_invalid=True)
    assert_named(text, skipping.errors + [as_error(n) for n in skipping.skipped])
    if skipping.policies is None:
        assert skipping.errors == outcome.errors
        return
    assert [n for n in skipping.skipped if n.endswith(_SKIPPED_INVALID)] == [
        f"{e}{_SKIPPED_INVALID}" for e in outcome.errors]
    assert_valid_policies(skipping.policies)
    holder = object_of(text)
    refused = {holder(e) for e in outcome.errors}
    assert len(skipping.policies) + len(refused) == len(read_manifests(text)[0]), (skipping.policies, refused)


# ------------------------------------------------------------------ rewrites that change nothing
REWRITES = ("order", "quantity", "default", "version")  # and each string quoted at random: dump_quoted
#: The rewrites after which the policies decide the same, their text aside (comments say the source).
DECIDE_ALIKE = ("default", "version")
_SCALE_UP = {"selectPolicy": "Max", "stabilizationWindowSeconds": 0, "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}, {"type": "Pods", "value": 4, "periodSeconds": 15}]}
_SCALE_DOWN = {"selectPolicy": "Max", "stabilizationWindowSeconds": 300, "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
_DEFAULT_CPU = [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                              "averageUtilization": 80}}}]


def _objects(docs: list) -> list[dict]:
    """The HPAs and ScaledObjects of ``docs`` (List items too), as the values to change in place."""
    out = []
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else None
        out += [o for o in (items if isinstance(items, list) else [doc])
                if isinstance(o, dict) and o.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")]
    return out


def _defaults(obj: dict) -> list[tuple[dict, str, object]]:
    """(mapping, key, value) for each default of the HPA or KEDA API ``obj`` leaves out."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    out: list[tuple[dict, str, object]] = []

    def behavior(rules: dict | None) -> None:
        if not isinstance(rules, dict):
            return
        for direction, defaults in (("scaleUp", _SCALE_UP), ("scaleDown", _SCALE_DOWN)):
            if direction not in rules:
                out.append((rules, direction, {}))
            elif isinstance(rules[direction], dict):
                out.extend((rules[direction], k, v) for k, v in defaults.items() if k not in rules[direction])

    if obj["kind"] == "HorizontalPodAutoscaler":
        out += [(spec, "minReplicas", 1)] if "minReplicas" not in spec else []
        if obj.get("apiVersion") == "autoscaling/v1":
            out += [(spec, k, v) for k, v in (("targetCPUUtilizationPercentage", 80),) if k not in spec]
        else:
            out += [(spec, "metrics", _DEFAULT_CPU)] if "metrics" not in spec else []
            behavior(spec.get("behavior"))
        return out
    out += [(spec, k, v) for k, v in (("minReplicaCount", 0), ("maxReplicaCount", 100), ("pollingInterval", 30),
                                      ("cooldownPeriod", 300)) if k not in spec]
    ref = spec.get("scaleTargetRef")
    if isinstance(ref, dict):
        out += [(ref, k, v) for k, v in (("apiVersion", "apps/v1"), ("kind", "Deployment")) if k not in ref]
    for trigger in spec.get("triggers") or []:
        if isinstance(trigger, dict) and trigger.get("type") == "prometheus" and "metricType" not in trigger:
            out.append((trigger, "metricType", "AverageValue"))
    config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    behavior(config.get("behavior"))
    return out


def _quantity_places(obj: dict) -> list[tuple[dict, str, bool]]:
    """(mapping, key, string only) of each quantity in ``obj`` (KEDA's metadata holds strings)."""
    places: list[tuple[dict, str, bool]] = []
    for value in S.walk_values(obj):
        if not isinstance(value, dict):
            continue
        if value.get("type") in ("AverageValue", "Value"):
            places += [(value, k, False) for k in ("averageValue", "value") if k in value]
        if "tolerance" in value and ("policies" in value or "selectPolicy" in value):
            places.append((value, "tolerance", False))
    if obj.get("kind") == "ScaledObject":
        for trigger in (obj.get("spec") or {}).get("triggers") or []:
            meta = trigger.get("metadata") if isinstance(trigger, dict) else None
            if isinstance(meta, dict):
                places += [(meta, "threshold", True)] if "threshold" in meta else []  # (activationThreshold: quoted)
                if trigger.get("type") in ("cpu", "memory") and trigger.get("metricType") == "AverageValue":
                    places += [(meta, "value", True)]
    return places


def _spellings(value: object, strings_only: bool) -> list:
    """The quantity ``value`` written otherwise: a number or a string, in milli-units, k, Mi."""
    from decimal import Decimal, InvalidOperation

    try:
        exact = Decimal(str(value)) if not isinstance(value, str) or not value[-2:].isalpha() else None
    except InvalidOperation:
        return []
    binary = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30}
    if exact is None:  # 512Mi
        unit = value[-2:]
        if unit not in binary:
            return []
        exact = Decimal(value[:-2]) * binary[unit]
    out = [f"{exact}", f"{exact * 1000:f}m".replace(".000m", "m"), f"{exact.normalize():f}"]
    out += [f"{exact / 1000:f}k"] if exact % 1000 == 0 and exact else []
    out += [f"{exact / binary[u]:f}{u}" for u in binary if exact % binary[u] == 0 and exact]
    if not strings_only:
        out += [int(exact)] if exact == int(exact) else [float(exact)]
    return [o for o in dict.fromkeys(out) if o != value]


class _Quoting(yaml.SafeDumper):
    """PyYAML's dumper that writes each string plain, single- or double-quoted, at random."""

    rng = random.Random(0)


def _represent_str(dumper: _Quoting, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=dumper.rng.choice([None, "'", '"']))


_Quoting.add_representer(str, _represent_str)


def dump_quoted(docs: list, seed: int, flow: bool | None) -> str:
    _Quoting.rng = random.Random(seed)
    return yaml.dump_all(docs, Dumper=_Quoting, sort_keys=False, allow_unicode=True, default_flow_style=flow,
                         width=10_000)


def rewritten(docs: list, kind: str, at: int, choice: int) -> list:
    """``docs`` rewritten once so that they mean the same to the HPA or KEDA API (quoting is the
    dump's: see dump_quoted), or so that it decides the same (DECIDE_ALIKE)."""
    docs = copy.deepcopy(docs)
    if kind == "order":
        return S.equivalent(docs, "order", at, choice)
    objects = _objects(docs)
    if kind == "default":
        places = [p for o in objects for p in _defaults(o)]
        if places:
            mapping, key, value = places[at % len(places)]
            mapping[key] = copy.deepcopy(value)
    elif kind == "quantity":
        places = [(m, k, s) for o in objects for m, k, s in _quantity_places(o) if _spellings(m[k], s)]
        if places:
            mapping, key, strings_only = places[at % len(places)]
            spellings = _spellings(mapping[key], strings_only)
            mapping[key] = spellings[choice % len(spellings)]
    elif kind == "version":  # an HPA as another version of the API serves it: v1 as v2, v2 as v2beta2
        hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and isinstance(o.get("spec"), dict)]
        if hpas:
            hpa = hpas[at % len(hpas)]
            if hpa.get("apiVersion") == "autoscaling/v1":
                percent = hpa["spec"].pop("targetCPUUtilizationPercentage", 80)
                hpa["spec"]["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": percent}}}]
            hpa["apiVersion"] = {"autoscaling/v2": "autoscaling/v2beta2"}.get(hpa.get("apiVersion"), "autoscaling/v2")
    return docs


def _rules(rules) -> tuple:
    """A direction's window, select and rate policies, in any order (one policy list in another
    order limits alike)."""
    return rules.window_s, rules.select, sorted(zip(rules.types.tolist(), rules.values.tolist(),
                                                    rules.periods_s.tolist()))


def decided(policies: list[tuple[str, str]]) -> list:
    """What each policy decides with: its name, targets, replicas, metrics and parameters."""
    out = []
    for name, text in policies:
        (policy,) = load_policy_text(text, f"{name}.yaml")
        metrics = [(m.name, m.query, m.target) for m in policy.model.spec.scaling.metrics]
        params = dataclasses.replace(policy.params, scale_up=None, scale_down=None)
        out.append((name, policy.targets, policy.model.spec.replicas, metrics, repr(params),
                    _rules(policy.params.scale_up), _rules(policy.params.scale_down)))
    return out


@settings(max_examples=S.budget(150), **FUZZ)
@given(source=sources, rewrites=st.lists(st.tuples(st.sampled_from(REWRITES), st.integers(0, 10**6),
                                                   st.integers(0, 10**6)), min_size=1, max_size=6),
       flow=st.sampled_from([False, None, True]), quoting=st.integers(0, 2**32))
def test_a_rewrite_that_changes_nothing_imports_the_same_policies(source, rewrites, flow, quoting):
    documents = SOURCES[source]
    for kind, at, choice in rewrites:
        documents = rewritten(documents, kind, at, choice)
    text = dump_quoted(documents, quoting, flow)
    assert list(yaml.safe_load_all(text)) == documents  # the quoting changed no value
    got, expected = imported(text), imported(S.dump(SOURCES[source]))
    assert_named(text, got.errors)
    if expected.policies is None:
        assert S.comparable(got.errors) == S.comparable(expected.errors)
        return
    assert got.policies is not None, [str(e) for e in got.errors]
    if all(kind not in DECIDE_ALIKE for kind, _, _ in rewrites):
        assert got.policies == expected.policies
    else:
        assert decided(got.policies) == decided(expected.policies)


#: Errors only objects imported together have (a workload two objects scale, one name twice)
ACROSS_OBJECTS = ("is already scaled by policy", "duplicate policy name")


@settings(max_examples=S.budget(40), **FUZZ)
@given(first=sources, second=sources, changes=st.tuples(changes, changes))
def test_files_imported_together_get_the_errors_each_gets_alone_and_those_across_them(first, second, changes):
    """Two files (often one manifest twice, both mutated): each file's errors are those it gets
    alone, but for those across objects (a workload scaled twice, one policy name twice), and
    what converts together converted alone."""
    paths = [WORK / "a.yaml", WORK / "b.yaml"]
    texts = [S.dump(mutated(SOURCES[first], changes[0])), S.dump(mutated(SOURCES[second], changes[1]))]
    alone = [imported(text, path=path) for text, path in zip(texts, paths)]
    try:
        together = Outcome([(c.name, c.text) for c in import_files([str(p) for p in paths]).policies])
    except ManifestError as exc:
        together = Outcome(None, exc.errors)
    own = lambda errors: [e for e in errors if not any(w in e.message for w in ACROSS_OBJECTS)]
    for text, path, one in zip(texts, paths, alone):
        mine = [e for e in together.errors if e.file == str(path)]
        assert_named(text, mine, str(path))
        assert own(mine) == own([e for e in one.errors if e.message != NO_OBJECT])
    if together.policies is not None:  # each file converted alone too (or held no HPA at all)
        assert all(one.policies is not None or [e.message for e in one.errors] == [NO_OBJECT] for one in alone)
        each = [one.policies or [] for one in alone]
        if len({name for policies in each for name, _ in policies}) == len(each[0]) + len(each[1]):
            assert together.policies == each[0] + each[1]


# ------------------------------------------------------------------ the command
@settings(max_examples=S.budget(40), **FUZZ)
@given(source=sources, changes=changes, output=st.sampled_from(["stdout", "-o", "--out-dir", "stdin"]),
       skip=st.booleans())
def test_import_on_a_mutated_manifest_exits_0_or_1_and_writes_all_or_nothing(source, changes, output, skip):
    text = S.dump(mutated(SOURCES[source], changes))
    expected = imported(text, skip_invalid=skip)
    out = Path(tempfile.mkdtemp(dir=WORK))
    args = ["import", "-" if output == "stdin" else str(FILE), *(["--skip-invalid"] if skip else [])]
    if output in ("-o", "--out-dir"):
        args += [output, str(out / "out.yaml" if output == "-o" else out / "policies")]
    result = CliRunner().invoke(app, args, input=text if output == "stdin" else None)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "This is a bug" not in result.output
    name = "<stdin>" if output == "stdin" else str(FILE)
    if expected.policies is None:
        assert result.exit_code == 1, result.output
        *said, summary = result.stderr.splitlines()  # the errors, the warnings apart after them, a count
        assert said == [str(e).replace(str(FILE), name) for e in expected.errors + expected.warnings]
        assert re.fullmatch(rf"{len(expected.errors)} errors?( in \d+ of \d+ objects?| \(\d+ in \d+ of \d+ "
                            rf"objects?, \d+ outside them\))?(, \d+ warnings?)?: nothing written( \(--skip-invalid "
                            rf"writes the \d+ others?\))?", summary), summary
        assert result.stdout == "" and not list(out.rglob("*")), list(out.rglob("*"))
        return
    assert result.exit_code == 0, result.output
    assert [line.removeprefix("note: ") for line in result.stderr.splitlines() if line.startswith("note: ")] == [
        n.replace(str(FILE), name) for n in expected.skipped]
    assert [line for line in result.stderr.splitlines() if ": warning: " in line] == [
        str(w).replace(str(FILE), name) for w in expected.warnings]
    if output in ("stdout", "stdin"):
        written = {"stdout": result.stdout}
        assert result.stdout == "---\n".join(text for _, text in expected.policies)
    elif output == "-o":
        written = {"out.yaml": (out / "out.yaml").read_text()}
        assert written["out.yaml"] == "---\n".join(text for _, text in expected.policies)
    else:
        written = {p.name: p.read_text() for p in (out / "policies").iterdir()}
        assert written == {f"{n}.yaml": t for n, t in expected.policies}
    folder = out / "check"
    folder.mkdir()
    for file, content in written.items():
        (folder / f"{file}.yaml").write_text(content)
    check = CliRunner().invoke(app, ["validate", str(folder)])
    assert check.exit_code == 0, check.output
