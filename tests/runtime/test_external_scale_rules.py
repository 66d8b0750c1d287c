"""ExternalScaleWatch's rules at fixed times, cycle by cycle, on real ClusterViews: what is an
external change, when a hands-off starts and ends, what counts as a revert, when reverts make a
fight and when it is over. (The same watch runs through sim serve in test_external_scale.py.)"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from controller.model import TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.external_scale import ExternalScaleWatch

WEB = TargetRef("shop", "web")
T0 = 1_780_000_000.0
# steps: (seconds after T0, what happens): ("see", replicas, manager) a cycle observes the count;
# ("write", replicas) the controller's applied scale after that cycle


def run(steps, hands_off_s=600.0, rehearsal=False, deploy_managers=()):
    watch = ExternalScaleWatch("web", "setpoint", hands_off_s, rehearsal, deploy_managers)
    said, held = [], []
    for at, step in steps:
        if step[0] == "write":
            watch.wrote(WEB, step[1])
            continue
        _, replicas, manager, set_at, by_scale, resumed = (*step, None, False, "")[:6]
        view = ClusterView.from_statuses([WEB], {WEB: TargetStatus(
            WEB, replicas, replicas, replicas, replicas_manager=manager, replicas_by_scale=by_scale,
            replicas_alone=by_scale or manager == "kubectl-edit",  # a scale, or an edit of the replicas alone
            replicas_set_at=None if set_at is None else T0 + set_at,
            annotations=(("setpoint.io/resume", resumed),) if resumed else ())})
        rows = watch.observe([WEB], view, T0 + at, lambda t, reason, message, warning: said.append(reason))
        held.append(bool(rows[0]))
    return said, held, watch


def see(at, replicas, manager="argocd-controller"):
    return (at, ("see", replicas, manager))


def iso(at) -> str:
    """The resume annotation as `setpoint resume` writes it, ``at`` s after T0."""
    return datetime.fromtimestamp(T0 + at, timezone.utc).isoformat(timespec="seconds")


def scaled(at, replicas, manager, set_at):
    """A cycle that sees a count ``manager`` set through the scale subresource at ``set_at`` (s after T0)."""
    return (at, ("see", replicas, manager, set_at, True))


def write(at, replicas):
    return (at, ("write", replicas))


def revert_cycles(times, hands_off_s=600.0):
    """The controller writes 5, the other writer sets 2 back, at each of ``times``."""
    steps = [see(0, 2, "helm")]
    for t in times:
        steps += [write(t, 5), see(t + 15, 2)]
    return steps


@pytest.mark.parametrize("steps, said, held", [
    pytest.param([see(0, 2), see(15, 2)], [], [False, False], id="first-sight-accepted"),
    pytest.param([see(0, 2), write(0, 5), see(15, 5, "setpoint")], [], [False, False], id="its-own-write"),
    pytest.param([see(0, 2), see(15, 7, "setpoint")], [], [False, False], id="its-manager-a-previous-leader"),
    pytest.param([see(0, 2), see(15, 7, "kubectl"), see(30, 7, "kubectl"), see(615, 7, "kubectl")],
                 ["ExternalScaleChange"], [False, True, True, False], id="hands-off-for-600s-then-over"),
    pytest.param([see(0, 2), see(15, 7, "")], ["ExternalScaleChange"], [False, True], id="writer-not-known"),
    pytest.param([see(0, 2), see(15, 7, "kubectl"), see(30, 9, "kubectl")],
                 ["ExternalScaleChange"] * 2, [False, True, True], id="a-second-change-restarts-it"),
    # a sync of a manifest that carries replicas (argocd-controller): never held, each revert counted
    pytest.param(revert_cycles([0, 900, 1800]), ["ExternalScaleChange"] * 3 + ["ExternalScaleFight"],
                 [False] * 4, id="three-reverts-within-1h20m-a-fight"),
    pytest.param(revert_cycles([0, 2400, 4800]), ["ExternalScaleChange"] * 3, [False] * 4,
                 id="three-reverts-spread-over-80m-not-one"),
    pytest.param([see(0, 2), see(15, 7, "helm"), see(30, 7, "helm")], ["ExternalScaleChange"], [False, False, False],
                 id="a-helm-upgrade-that-carries-replicas-is-not-held"),
    pytest.param([see(0, 5), see(15, 2, "kubectl-replace"), see(30, 2, "kubectl-replace")], ["ExternalScaleChange"],
                 [False, False, False], id="a-kubectl-replace-of-the-manifest-lowering-it-is-not-held"),
    pytest.param([see(0, 2), (15, ("see", 7, "kustomize-controller", 10, False)), see(30, 7, "kustomize-controller")],
                 ["ExternalScaleChange"], [False, False, False], id="a-flux-sync-is-not-held"),
    pytest.param([see(0, 2), scaled(15, 7, "helm", 10)], ["ExternalScaleChange"], [False, True],
                 id="a-deploy-tools-name-through-the-scale-subresource-is-held"),
    pytest.param([see(0, 2), see(15, 7, "kubectl-edit"), see(30, 7, "kubectl-edit")], ["ExternalScaleChange"],
                 [False, True, True], id="kubectl-edit-is-a-person-held"),
    # a restart or a new leader: the first sight of a count someone set through the scale subresource
    pytest.param([scaled(0, 30, "kubectl", -300), see(15, 30, "kubectl"), see(300, 30, "kubectl")],
                 ["ExternalScaleChange"], [True, True, False], id="restart-resumes-a-recent-kubectl-scale-until-its-end"),
    pytest.param([scaled(0, 30, "kubectl", -700)], [], [False], id="restart-after-the-hands-off-would-have-ended"),
    pytest.param([(0, ("see", 30, "kubectl-client-side-apply", -60, False))], [], [False],
                 id="restart-after-an-apply-not-a-scale"),
    pytest.param([(0, ("see", 30, "kubectl-edit", -60, False))], ["ExternalScaleChange"], [True],
                 id="restart-after-a-kubectl-edit-of-the-replicas-alone"),
    pytest.param([scaled(0, 30, "kube-controller-manager", -60)], [], [False], id="restart-after-hpa-scaled-it"),
    # an HPA's write between two cycles: its count is taken over (the last write of an HPA deleted at the
    # cut-over, or a shadow run's incumbent), never a hands-off that keeps HPA's count for handsOff
    pytest.param([see(0, 12), see(15, 9, "kube-controller-manager"), see(30, 9, "kube-controller-manager")], [],
                 [False, False, False], id="hpa-write-between-cycles-taken-over-not-held"),
    pytest.param([see(0, 2), write(0, 5), see(15, 3, "kube-controller-manager")], [], [False, False],
                 id="hpa-write-after-its-own-is-no-revert"),
    pytest.param([scaled(0, 30, "setpoint", -60)], [], [False], id="restart-after-its-own-scale"),
    pytest.param([(0, ("see", 30, "kubectl", -300, True, iso(-100)))], [], [False],
                 id="restart-after-a-resume-that-followed-the-scale"),
    pytest.param([(0, ("see", 30, "kubectl", -300, True, iso(-400)))], ["ExternalScaleChange"], [True],
                 id="restart-after-a-resume-older-than-the-scale"),
    # setpoint resume (a new value of the annotation) hands a held target back
    pytest.param([see(0, 2), see(15, 7, "kubectl"), (30, ("see", 7, "kubectl", None, False, iso(25))),
                  (45, ("see", 7, "kubectl", None, False, iso(25)))],
                 ["ExternalScaleChange"], [False, True, False, False], id="resume-ends-a-hands-off"),
    pytest.param([(0, ("see", 2, "helm", None, False, iso(-9))), (15, ("see", 7, "kubectl", None, False, iso(-9))),
                  (30, ("see", 7, "kubectl", None, False, iso(-9)))],
                 ["ExternalScaleChange"], [False, True, True], id="an-old-resume-value-ends-nothing"),
    pytest.param([see(0, 2), (15, ("see", 7, "kubectl", None, False, iso(-9))), see(30, 7, "kubectl")],
                 ["ExternalScaleChange"], [False, True, True], id="the-annotation-removed-ends-nothing"),
])
def test_rules(steps, said, held):
    got_said, got_held, _ = run(steps)
    assert (got_said, got_held) == (said, held)


@pytest.mark.parametrize("manager, changes", [
    pytest.param("kube-controller-manager", 0, id="incumbent-hpa-scaling-is-not-an-external-change"),
    pytest.param("kubectl", 1, id="a-person-scaling-is-one"),
])
def test_a_shadow_run_records_the_incumbent_hpas_writes_as_nothing(manager, changes):
    # --shadow beside an HPA: its records said "replicas set to 5 by kube-controller-manager: a real
    # run would leave them as set until <30 min later>" at every HPA scale, which a real run never does
    watch = ExternalScaleWatch("web", "setpoint", 1800.0, True, ())
    for at, replicas in ((0, 4), (15, 5), (30, 6)):
        view = ClusterView.from_statuses([WEB], {WEB: TargetStatus(WEB, replicas, replicas, replicas,
                                                                   replicas_manager=manager)})
        watch.observe([WEB], view, T0 + at, lambda *a: None)
    assert len(watch.changes) == changes and len(watch.hands_off) == changes


def test_changes_with_no_write_between_are_not_reverts():
    steps = [see(0, 2, "helm")] + [see(15 * k, 2 + k, "kubectl") for k in range(1, 6)]
    said, _, watch = run(steps)
    assert said == ["ExternalScaleChange"] * 5 and watch.fights == {}


def test_a_fight_is_over_after_a_quiet_window():
    steps = revert_cycles([0, 900, 1800])
    _, _, watch = run(steps)
    assert watch.fights == {WEB: "argocd-controller"} and watch.fight_window_s == 3600 + 1200
    view = ClusterView.from_statuses([WEB], {WEB: TargetStatus(WEB, 2, 2, 2, replicas_manager="argocd-controller")})
    watch.observe([WEB], view, T0 + 1815 + 4799, lambda *a: None)
    assert watch.fights == {WEB: "argocd-controller"}
    watch.observe([WEB], view, T0 + 1815 + 4800, lambda *a: None)
    assert watch.fights == {}


def test_a_rehearsal_holds_nothing_and_records_no_event():
    said, held, watch = run([see(0, 2), see(15, 7, "kubectl"), see(30, 7, "kubectl")], rehearsal=True)
    assert said == [] and held == [False, False, False]
    assert watch.hands_off[WEB].until == T0 + 15 + 600  # what a real run would do, for the records


def test_a_target_gone_and_back_is_first_seen_again():
    watch = ExternalScaleWatch("web", "setpoint", 600.0, False)
    for at, replicas in ((0, 2), (15, None), (30, 7)):
        statuses = {} if replicas is None else {WEB: TargetStatus(WEB, replicas, replicas, replicas,
                                                                  replicas_manager="kubectl")}
        rows = watch.observe([WEB], ClusterView.from_statuses([WEB], statuses), T0 + at, lambda *a: None)
    assert not rows[0] and watch.changes == []


@pytest.mark.parametrize("external, expected", [
    pytest.param({"by": "kubectl", "replicas": 30, "from": 12, "at": 100.0, "until": 1900.0},
                 "| replicas set to 30 by kubectl (from 12): left as set until t=1900s", id="real-run"),
    pytest.param({"by": "kubectl", "replicas": 30, "from": 12, "at": 100.0, "until": 1900.0, "rehearsal": True},
                 "| replicas set to 30 by kubectl (from 12): a real run would leave them as set until t=1900s",
                 id="rehearsal"),
])
def test_explain_prints_the_external_change(external, expected):
    from controller.cli.records import _format_record

    line = _format_record({"target": "shop/web", "at": 100.0, "current": 30, "desired": 30,
                           "reason": "ExternalOverride", "metrics": {}, "externalScale": external})
    assert "[ExternalOverride]" in line and expected in line


@pytest.mark.parametrize("to, floor", [(9, 9.0), (3, None)], ids=["raised-a-floor", "lowered-kept-as-set"])
def test_a_raised_count_is_a_floor_and_a_lowered_one_is_kept(to, floor):
    _, held, watch = run([see(0, 5), see(15, to, "kubectl")])
    assert held == [False, True]
    [got] = watch.floors({WEB: 0}, 1).tolist()
    assert (got == floor) if floor is not None else got != got  # NaN: no floor, the count as set
    assert watch.hands_off[WEB].record(False).get("floor", False) is (floor is not None)


def test_a_teams_own_deploy_pipeline_is_named_in_the_policy():
    # deployManagers: a count the team's pipeline resets comes with a manifest: said, not held
    steps = [see(0, 5), see(15, 2, "spinnaker"), see(30, 2, "spinnaker")]
    assert run(steps)[:2] == (["ExternalScaleChange"], [False, True, True])  # unknown: a person's
    said, held, watch = run(steps, deploy_managers=("spinnaker",))
    assert (said, held) == (["ExternalScaleChange"], [False, False, False])
    assert watch.changes == [] and watch.hands_off == {}


def run_revisions(steps, hands_off_s=600.0):
    """Cycles ``(at, replicas, manager, revision[, by_scale[, template]])`` (the Deployment's
    pod-template revision; written through the scale subresource (False); the writer's entry owns
    pod-template fields (True)), or
    ``(at, "released")`` (this controller rolled the target out after that cycle): what was said,
    and which cycles held the target."""
    watch = ExternalScaleWatch("web", "setpoint", hands_off_s, False)
    said, held = [], []
    for at, replicas, *rest in steps:
        if replicas == "released":
            watch.released(WEB)
            continue
        manager, revision, by_scale, template = (*rest, False, True)[:2] + ((*rest[2:], False, True)[:2])
        view = ClusterView.from_statuses([WEB], {WEB: TargetStatus(WEB, replicas, replicas, replicas, revision=revision,
                                                                   replicas_manager=manager, replicas_by_scale=by_scale,
                                                                   replicas_alone=by_scale, replicas_template=template)})
        rows = watch.observe([WEB], view, T0 + at, lambda t, reason, message, warning: said.append((reason, warning)))
        held.append(bool(rows[0]))
    return said, held, watch


CHANGE, DEPLOY_SAID = ("ExternalScaleChange", False), ("ExternalScaleChange", True)


@pytest.mark.parametrize("steps, said, held", [
    pytest.param([(0, 5, "setpoint", "1"), (15, 3, "my-deployer", "2"), (30, 3, "my-deployer", "2")],
                 [DEPLOY_SAID], [False, False, False], id="count-and-template-in-one-write-a-release-not-held"),
    pytest.param([(0, 5, "setpoint", "1"), (15, 3, "my-deployer", "1"), (30, 3, "my-deployer", "2"),
                  (45, 3, "my-deployer", "2")],
                 [CHANGE, DEPLOY_SAID], [False, True, False, False], id="the-revision-a-cycle-later-ends-the-hands-off"),
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl", "1"), (30, 9, "kubectl", "1"), (45, 9, "kubectl", "2")],
                 [CHANGE], [False, True, True, True], id="a-later-release-keeps-a-persons-hands-off"),
    pytest.param([(0, 5, "setpoint", "1"), (15, 5, "setpoint", "2"), (30, 5, "setpoint", "2")],
                 [], [False, False, False], id="a-release-alone-says-nothing"),
    pytest.param([(0, 5, "setpoint", ""), (15, 3, "my-deployer", "")],
                 [CHANGE], [False, True], id="no-revision-known-a-person"),
    # its own rolling restart or rollback (a health action) is no release of someone else's
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl", "1"), (15, "released"), (30, 9, "kubectl", "2"),
                  (45, 9, "kubectl", "2")],
                 [CHANGE], [False, True, True, True], id="its-own-restart-a-cycle-after-a-persons-scale"),
    pytest.param([(0, 5, "setpoint", "1"), (0, "released"), (15, 9, "kubectl", "2"), (30, 9, "kubectl", "2")],
                 [CHANGE], [False, True, True], id="a-persons-scale-seen-with-its-own-restart"),
    pytest.param([(0, 5, "setpoint", "1"), (0, "released"), (15, 5, "setpoint", "2"), (30, 3, "my-deployer", "3")],
                 [DEPLOY_SAID], [False, False, False], id="its-own-mark-is-spent-by-its-own-revision"),
    # a write of the replicas alone (kubectl scale) changed no template, whatever revision comes with it
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl", "2", True), (30, 9, "kubectl", "2", True)],
                 [CHANGE], [False, True, True], id="a-kubectl-scale-seen-with-a-release-is-a-persons"),
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl", "1", True), (30, 9, "kubectl", "2", True)],
                 [CHANGE], [False, True, True], id="a-release-after-a-kubectl-scale-keeps-its-hands-off"),
    # an edit whose writer owns no pod-template field (kubectl edit of the replicas and an annotation),
    # seen with someone else's release in the same interval or the next: the count is a person's
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl-edit", "2", False, False),
                  (30, 9, "kubectl-edit", "2", False, False)],
                 [CHANGE], [False, True, True], id="an-edit-seen-with-an-unrelated-release-is-a-persons"),
    pytest.param([(0, 5, "setpoint", "1"), (15, 9, "kubectl-edit", "1", False, False),
                  (30, 9, "kubectl-edit", "2", False, False)],
                 [CHANGE], [False, True, True], id="an-unrelated-release-after-an-edit-keeps-its-hands-off"),
])
def test_a_count_set_with_a_new_pod_template_is_a_release(steps, said, held):
    assert run_revisions(steps)[:2] == (said, held)


def test_a_release_is_recorded_and_said_as_such():
    _, _, watch = run_revisions([(0, 5, "setpoint", "1"), (15, 3, "my-deployer", "2")])
    [change] = watch.changes
    assert change.record(False) == {"by": "my-deployer", "replicas": 3, "from": 5, "at": T0 + 15, "until": T0 + 15,
                                    "deploy": True, "release": True}
    assert "a deploy that carries spec.replicas (the pod template changed with it: a release)" in \
        watch._change_message(change)
