"""Which series is which target's: each kind by its own labels (a Deployment by namespace and
deployment, a StatefulSet by namespace and statefulset: kube-state-metrics' convention), the same
rule for the live queries (``map_vector``) and for the range queries of the backtest, the warm
start and the checks' history (``grid_series``), and ``--target-labels`` to change it per kind.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.adapters.prometheus import RangeSeries, map_vector, misnamed_target
from controller.cli.common import parse_target_labels
from controller.errors import PrometheusBadResponse
from controller.model import DEFAULT_TARGET_LABELS, TargetLabels, TargetRef
from controller.runtime.backtest import grid_series, target_labels_of, time_grid

AT = 1_764_504_000.0  # 2025-11-30T12:00:00Z: the one instant every row is read at
WEB = TargetRef("shop", "web", "Deployment")
DB = TargetRef("shop", "db", "StatefulSet")
DB_AS_DEPLOYMENT_NAME = TargetRef("shop", "web", "StatefulSet")  # a StatefulSet named as the Deployment
PER_KIND_OLD = DEFAULT_TARGET_LABELS.replaced("StatefulSet", ("namespace", "deployment"))
EXPORTED = TargetLabels.every_kind("exported_namespace", "deployment").replaced(
    "StatefulSet", ("exported_namespace", "statefulset"))
MISSING, CONFLICT = "missing", "conflict"


def series(value: float, **labels: str) -> tuple[dict, float]:
    return labels, value


#: (targets, labels, [(series labels, value)], what each target reads: a value, MISSING or CONFLICT)
ROWS = [
    pytest.param([WEB], DEFAULT_TARGET_LABELS, [series(3, namespace="shop", deployment="web")], [3.0],
                 id="deployment-by-deployment"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", statefulset="db")], [4.0],
                 id="statefulset-by-statefulset"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", deployment="db"),
                                               series(5, namespace="shop", statefulset="other")], [MISSING],
                 id="statefulset-not-by-deployment"),
    pytest.param([WEB], DEFAULT_TARGET_LABELS, [series(3, namespace="shop", statefulset="web"),
                                                series(6, namespace="shop", deployment="x")], [MISSING],
                 id="deployment-not-by-statefulset"),
    pytest.param([WEB, DB], DEFAULT_TARGET_LABELS, [series(3, namespace="shop", deployment="web"),
                                                    series(4, namespace="shop", statefulset="db")], [3.0, 4.0],
                 id="both-kinds-each-by-its-own-label"),
    pytest.param([DB], PER_KIND_OLD, [series(4, namespace="shop", deployment="db")], [4.0],
                 id="override-statefulset-by-deployment"),
    pytest.param([DB], TargetLabels.every_kind("namespace", "deployment"),
                 [series(4, namespace="shop", deployment="db"), series(5, namespace="shop", statefulset="db")],
                 [4.0], id="override-every-kind"),
    pytest.param([WEB, DB], EXPORTED, [series(3, exported_namespace="shop", namespace="mon", deployment="web"),
                                       series(4, exported_namespace="shop", namespace="mon", statefulset="db")],
                 [3.0, 4.0], id="override-namespace-label"),
    pytest.param([WEB, DB], DEFAULT_TARGET_LABELS, [series(7, namespace="shop", deployment="web", statefulset="db")],
                 [7.0, 7.0], id="both-labels-each-targets"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(7, namespace="shop", deployment="web", statefulset="db")],
                 [7.0], id="both-labels-the-kinds-label-counts"),
    pytest.param([WEB, DB_AS_DEPLOYMENT_NAME], TargetLabels.every_kind("namespace", "deployment"),
                 [series(7, namespace="shop", deployment="web")], [7.0, 7.0],
                 id="one-pair-for-two-kinds-of-one-name-each-targets"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", statefulset="db", pod="db-0"),
                                               series(5, namespace="shop", statefulset="db", pod="db-1")], [CONFLICT],
                 id="two-series-of-one-statefulset-conflict"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(9)], [9.0], id="neither-label-one-series-one-target"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(9, namespace="shop")], [MISSING],
                 id="namespace-only-is-no-targets"),
    pytest.param([WEB, DB], DEFAULT_TARGET_LABELS, [series(9), series(4, namespace="shop", statefulset="db")],
                 [MISSING, 4.0], id="neither-label-among-others-is-no-targets"),
]


def read_live(targets, labels, rows) -> list:
    s = map_vector([{"metric": m, "value": [AT, str(v)]} for m, v in rows], targets, AT, labels)
    return [CONFLICT if c else (float(v) if p else MISSING) for v, p, c in zip(s.values, s.present, s.conflict)]


def read_range(targets, labels, rows) -> list:
    t = time_grid(AT, AT, 15.0)
    grid = grid_series([RangeSeries(m, np.array([AT]), np.array([float(v)])) for m, v in rows], targets, t, 15.0,
                       labels)
    return [CONFLICT if c > 1 else (float(v) if c == 1 else MISSING) for v, c in zip(grid.values[0], grid.count[0])]


@pytest.mark.parametrize("targets, labels, rows, expected", ROWS)
def test_a_series_is_a_targets_by_the_labels_of_its_kind_live_and_in_range_queries(targets, labels, rows, expected):
    """Each row through the live adapter and through the range queries' grid (the backtest's, the
    warm start's and the checks' history's): the same reading."""
    assert read_live(targets, labels, rows) == expected
    assert read_range(targets, labels, rows) == expected


def test_one_unlabelled_series_with_several_targets_is_an_error_live_and_nobodys_in_range_queries():
    """The one series with neither label of two targets: the live query says why (a scalar applies
    to one target), the range queries count it as no target's."""
    rows = [series(9)]
    with pytest.raises(PrometheusBadResponse, match="'namespace'/'deployment'/'statefulset'"):
        read_live([WEB, DB], DEFAULT_TARGET_LABELS, rows)
    assert read_range([WEB, DB], DEFAULT_TARGET_LABELS, rows) == [MISSING, MISSING]


@pytest.mark.parametrize("targets, labels, rows, said", [
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", deployment="db")],
                 'StatefulSet/shop/db by its labels (namespace, statefulset), and one names it by deployment="db"',
                 id="statefulset-named-by-deployment"),
    pytest.param([WEB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", statefulset="web")],
                 "--target-labels deployment=namespace,statefulset", id="deployment-named-by-statefulset"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="other", deployment="db")], None,
                 id="another-namespace-is-not-it"),
    pytest.param([DB], DEFAULT_TARGET_LABELS, [series(4, namespace="shop", statefulset="db")], None,
                 id="read-nothing-to-say"),
    pytest.param([DB], TargetLabels.every_kind("namespace", "statefulset"),
                 [series(4, namespace="shop", deployment="db")], None, id="one-pair-for-every-kind-no-other-label"),
])
def test_a_target_named_by_another_kinds_label_is_said_with_the_fixes(targets, labels, rows, said):
    result = [{"metric": m, "value": [AT, str(v)]} for m, v in rows]
    present = map_vector(result, targets, AT, labels).present
    hint = misnamed_target(result, targets, present, labels)
    assert hint == said if said is None else said in hint


class _Source:
    def __init__(self, config):
        self.config = config


class _Config:
    target_labels = PER_KIND_OLD


@pytest.mark.parametrize("source, expected", [
    pytest.param(_Source(_Config()), PER_KIND_OLD, id="a-prometheus-sources-own"),
    pytest.param(object(), DEFAULT_TARGET_LABELS, id="a-source-without-config-the-default"),
])
def test_the_warm_start_and_checks_history_read_by_the_sources_labels(source, expected):
    assert target_labels_of(source) == expected


DEPLOYMENT_PAIR = ("namespace", "deployment")


@pytest.mark.parametrize("given, expected", [
    pytest.param(None, DEFAULT_TARGET_LABELS, id="default-per-kind"),
    pytest.param(["namespace,deployment"], TargetLabels.every_kind(*DEPLOYMENT_PAIR), id="one-pair-every-kind"),
    pytest.param(["statefulset=namespace,deployment"], PER_KIND_OLD, id="one-kind"),
    pytest.param(["StatefulSet=namespace,deployment"], PER_KIND_OLD, id="kind-any-case"),
    pytest.param(["statefulset=exported_namespace,statefulset", "exported_namespace,deployment"], EXPORTED,
                 id="every-kind-then-a-kind-whatever-the-order"),
    pytest.param(["deployment=ns,app", "statefulset=ns,sts"],
                 TargetLabels((("Deployment", ("ns", "app")), ("StatefulSet", ("ns", "sts")))), id="each-kind"),
])
def test_target_labels_option(given, expected):
    assert parse_target_labels(given) == expected


@pytest.mark.parametrize("given, message", [
    pytest.param(["namespace"], "--target-labels: expected NS_LABEL,NAME_LABEL or KIND=NS_LABEL,NAME_LABEL (e.g. "
                                "statefulset=namespace,statefulset), got 'namespace'", id="one-label"),
    pytest.param(["statefulset=namespace,"], "got 'statefulset=namespace,'", id="empty-name-label"),
    pytest.param(["cronjob=namespace,cronjob"], "--target-labels: unknown kind 'cronjob' in 'cronjob=namespace,"
                                                "cronjob': expected deployment or statefulset", id="unknown-kind"),
    pytest.param(["statefulset=a,b", "statefulset=c,d"], "--target-labels: statefulset= given twice",
                 id="a-kind-twice"),
    pytest.param(["a,b", "c,d"], "for every kind given twice (a,b and c,d)", id="every-kind-twice"),
])
def test_target_labels_option_errors_name_the_option_and_what_was_given(given, message):
    with pytest.raises(ValueError) as info:
        parse_target_labels(given)
    assert message in str(info.value)


@pytest.mark.parametrize("kind, labels, expected", [
    pytest.param("StatefulSet", DEFAULT_TARGET_LABELS, ["db"], id="statefulsets-by-statefulset"),
    pytest.param("Deployment", DEFAULT_TARGET_LABELS, ["web"], id="deployments-by-deployment"),
    pytest.param("StatefulSet", PER_KIND_OLD, ["web"], id="statefulsets-by-deployment-overridden"),
])
def test_a_label_selectors_workloads_are_found_by_its_kinds_label(kind, labels, expected):
    """A backtest of a label selector replays the workloads of its namespace its queries show,
    read by the selector's kind's label (as the live loop matches them)."""
    from controller.model import TargetSelector
    from controller.runtime.backtest import discover_targets

    seen = [RangeSeries(m, np.array([AT]), np.array([1.0])) for m in (
        {"namespace": "shop", "statefulset": "db"}, {"namespace": "shop", "deployment": "web"},
        {"namespace": "other", "statefulset": "x"})]
    selector = TargetSelector(kind, "shop", match_labels=(("app", "a"),))
    assert discover_targets(selector, [seen], labels) == [TargetRef("shop", name, kind) for name in expected]
