"""Hands-offs kept on the cluster across a restart: what a new watch takes back from what the old
one saved, and what a hostile or damaged payload gives (controller/runtime/hands_off_state.py).
Fixed times; the watch on real ClusterViews, as in test_external_scale_rules.py. (Through sim
serve, with the real client and the ConfigMap store: test_external_scale.py.)"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.runtime import hands_off_state
from controller.runtime.external_scale import ExternalScaleWatch
from controller.runtime.hands_off_state import StoredHandsOff, StoredReverts, WatchState
from tests.runtime.test_external_scale_rules import T0, WEB, iso, revert_cycles, run, see, write

SAID = []


def observe(watch: ExternalScaleWatch, at: float, replicas: int, manager: str, resumed: str = "") -> bool:
    """One cycle of ``watch`` seeing ``replicas`` set by ``manager`` (a patch of the Deployment,
    not of the replicas alone: managedFields cannot date it); whether it holds the target."""
    from controller.model import TargetStatus
    from controller.ports import ClusterView

    view = ClusterView.from_statuses([WEB], {WEB: TargetStatus(
        WEB, replicas, replicas, replicas, replicas_manager=manager,
        annotations=(("setpoint.io/resume", resumed),) if resumed else ())})
    return bool(watch.observe([WEB], view, T0 + at, lambda *a: SAID.append(a[1]))[0])


def saved_then_restarted(change_to=30, manager="kubectl-patch", hands_off_s=600.0, rehearsal=False,
                         restarted_hands_off_s=None):
    """A watch that saw ``manager`` set ``change_to`` at T0+15 (from 5), its durable entries
    through JSON as the ConfigMap keeps them, and a new watch (a restart) that read them."""
    _, held, old = run([see(0, 5, "setpoint"), see(15, change_to, manager)], hands_off_s=hands_off_s)
    assert held == [False, True]
    return restarted(old, T0 + 20, hands_off_s if restarted_hands_off_s is None else restarted_hands_off_s,
                     rehearsal)


def restarted(old: ExternalScaleWatch, at: float, hands_off_s: float = 600.0, rehearsal: bool = False
              ) -> ExternalScaleWatch:
    """A new watch (a restart) that read what ``old`` kept at ``at``, through JSON as the ConfigMap keeps it."""
    state, problems = hands_off_state.decode(json.dumps(hands_off_state.encode("web", old.durable(at), at)))
    assert problems == []
    new = ExternalScaleWatch("web", "setpoint", hands_off_s, rehearsal)
    new.stored(state)
    return new


@pytest.mark.parametrize("at, replicas, manager, resumed, held, until", [
    pytest.param(100, 30, "kubectl-patch", "", True, 615, id="count-unchanged-held-until-the-change-plus-hands-off"),
    pytest.param(620, 30, "kubectl-patch", "", False, None, id="after-its-end-not-taken-back"),
    pytest.param(100, 12, "helm", "", False, None, id="count-reset-since-by-a-deploy-not-held"),
    pytest.param(100, 12, "kube-controller-manager", "", False, None, id="count-set-since-by-hpa-not-held"),
    pytest.param(100, 34, "setpoint", "", True, 615, id="raised-further-by-this-controller-under-the-floor"),
    pytest.param(100, 30, "kubectl-patch", iso(60), False, None, id="resumed-after-the-change"),
    pytest.param(100, 30, "kubectl-patch", iso(5), True, 615, id="a-resume-older-than-the-change-ends-nothing"),
])
def test_a_restart_takes_back_a_hands_off_that_still_holds(at, replicas, manager, resumed, held, until):
    SAID.clear()
    new = saved_then_restarted()
    assert observe(new, at, replicas, manager, resumed) is held
    assert SAID == []  # said once, before the restart
    if held:
        change = new.hands_off[WEB]
        assert (change.by, change.replicas, change.before, change.at, change.until, change.floor) == \
               ("kubectl-patch", 30, 5, T0 + 15, T0 + until, True)
        assert observe(new, at + 15, replicas, "setpoint") is True  # seen: not a first sight nor a change
    assert new.durable(T0 + at).hands_off == (
        {"shop/Deployment/web": StoredHandsOff("kubectl-patch", 30, 5, T0 + 15, True)} if held else {})


def test_a_count_a_person_changed_again_while_no_controller_watched_is_a_new_change():
    SAID.clear()
    new = saved_then_restarted()
    assert observe(new, 100, 12, "kubectl-edit") is True  # 30 -> 12 during the incident, while it was down
    change = new.hands_off[WEB]
    assert (change.by, change.replicas, change.before, change.at, change.until, change.floor) == \
           ("kubectl-edit", 12, 30, T0 + 100, T0 + 700, False)
    assert SAID == ["ExternalScaleChange"]  # a new change: said


def test_a_lowered_count_is_kept_as_set_not_a_floor():
    new = saved_then_restarted(change_to=3)
    assert observe(new, 100, 4, "setpoint") is False  # not a floor: a count other than 3 is not the one kept
    new = saved_then_restarted(change_to=3)
    assert observe(new, 100, 3, "kubectl-patch") is True and new.hands_off[WEB].floor is False


def test_the_policys_hands_off_when_read_applies():
    new = saved_then_restarted(restarted_hands_off_s=60.0)  # edited to 1m while it was down
    assert observe(new, 100, 30, "kubectl-patch") is False
    new = saved_then_restarted(restarted_hands_off_s=3600.0)
    assert observe(new, 1000, 30, "kubectl-patch") is True and new.hands_off[WEB].until == T0 + 15 + 3600


@pytest.mark.parametrize("rehearsal, hands_off_s", [(True, 600.0), (False, 0.0)], ids=["rehearsal", "hands-off-0s"])
def test_nothing_taken_back_or_kept_by_a_rehearsal_or_without_hands_off(rehearsal, hands_off_s):
    new = saved_then_restarted(rehearsal=rehearsal, restarted_hands_off_s=hands_off_s)
    assert observe(new, 100, 30, "kubectl-patch") is False
    assert new.durable(T0 + 100).hands_off == {}


def test_a_target_not_listed_yet_keeps_its_entry_until_it_ends():
    new = saved_then_restarted()
    assert set(new.durable(T0 + 100).hands_off) == {"shop/Deployment/web"}  # not seen yet (a list that missed it)
    assert new.durable(T0 + 615).hands_off == {}


def test_ended_and_written_over_hands_offs_leave_the_durable_state():
    _, _, watch = run([see(0, 5, "setpoint"), see(15, 30, "kubectl-patch"), write(700, 20), see(715, 20, "setpoint")])
    assert watch.durable(T0 + 715).hands_off == {}


ENTRY = {"by": "kubectl", "replicas": 30, "from": 5, "at": T0, "floor": True}


def payload(**entries) -> str:
    return json.dumps({"version": 1, "policy": "web", "savedAt": T0, "handsOff": entries})


@pytest.mark.parametrize("raw, kept, problem", [
    pytest.param(None, [], None, id="nothing-stored"),
    pytest.param(payload(a=ENTRY), ["a"], None, id="an-entry"),
    pytest.param("{not json", [], "not JSON", id="not-json"),
    pytest.param("[" * 100_000 + "]" * 100_000, [], "not JSON", id="nested-too-deep"),
    pytest.param(json.dumps({"version": 2, "handsOff": {}}), [], "not a version 1 payload", id="another-version"),
    pytest.param(json.dumps({"version": 1, "handsOff": []}), [], "not a version 1 payload", id="hands-off-a-list"),
    pytest.param(json.dumps([1, 2]), [], "not a version 1 payload", id="a-list"),
    pytest.param(payload(a=ENTRY, b={**ENTRY, "replicas": "30"}), ["a"], "'b': replicas: not a replica count",
                 id="replicas-text"),
    pytest.param(payload(b={**ENTRY, "replicas": True}), [], "replicas: not a replica count", id="replicas-bool"),
    pytest.param(payload(b={**ENTRY, "from": -1}), [], "from: not a replica count", id="from-negative"),
    pytest.param(payload(b={**ENTRY, "at": "yesterday"}), [], "at: not a time", id="at-text"),
    pytest.param(payload(b={**ENTRY, "at": 1e400}), [], "at: not a time", id="at-infinite"),
    pytest.param(payload(b={**ENTRY, "by": "x" * 300}), [], "by: not a text", id="by-too-long"),
    pytest.param(payload(b={**ENTRY, "by": ""}), [], "by: not a text", id="by-empty"),
    pytest.param(payload(b={**ENTRY, "floor": "yes"}), [], "floor: not true or false", id="floor-text"),
    pytest.param(payload(b=[1]), [], "'b': not an object", id="entry-a-list"),
])
def test_a_damaged_payload_is_ignored_with_its_problem_named(raw, kept, problem):
    state, problems = hands_off_state.decode(raw)
    assert sorted(state.hands_off) == kept
    assert (problem is None and problems == []) or any(problem in p for p in problems), problems


def test_at_most_max_entries_are_read():
    raw = payload(**{f"k{i}": ENTRY for i in range(hands_off_state.MAX_ENTRIES + 5)})
    state, _ = hands_off_state.decode(raw)
    assert len(state.hands_off) == hands_off_state.MAX_ENTRIES


TIMES = st.floats(0, 4e9, allow_nan=False)
states = st.builds(WatchState, st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.builds(StoredHandsOff, by=st.text(min_size=1, max_size=hands_off_state.MAX_TEXT),
              replicas=st.integers(0, 2**31 - 1), before=st.integers(0, 2**31 - 1), at=TIMES, floor=st.booleans()),
    max_size=20), st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.builds(StoredReverts, st.lists(TIMES, min_size=1, max_size=hands_off_state.MAX_REVERTS).map(
        lambda ts: tuple(sorted(ts))), st.one_of(st.just(""), st.text(min_size=1, max_size=20))),
    max_size=20))


@given(states)
@settings(max_examples=200, deadline=None)
def test_what_is_saved_is_what_is_read_back(state):
    text = json.dumps(hands_off_state.encode("web", state, T0), allow_nan=False)
    assert hands_off_state.decode(text) == (state, [])


def test_at_most_max_saved_are_written_the_newest_and_they_fit_a_configmap():
    long_key = "n" * 63 + "/Deployment/" + "w" * 253
    text = "b" * hands_off_state.MAX_TEXT
    entries = {f"{long_key}{i}": StoredHandsOff(text, 2**31 - 1, 2**31 - 1, T0 + i, True)
               for i in range(hands_off_state.MAX_SAVED + 50)}
    reverts = {f"{long_key}{i}": StoredReverts(tuple(T0 + i + 0.123456789 * k for k in range(16)), text)
               for i in range(hands_off_state.MAX_SAVED_REVERTS + 50)}
    payload = hands_off_state.encode("web", WatchState(entries, reverts), T0)
    assert len(payload["handsOff"]) == hands_off_state.MAX_SAVED
    assert len(payload["reverts"]) == hands_off_state.MAX_SAVED_REVERTS
    assert min(e["at"] for e in payload["handsOff"].values()) == T0 + 50  # the oldest 50 left out
    assert len(json.dumps(payload, sort_keys=True, separators=(",", ":"))) < 2**20  # a ConfigMap's limit


@pytest.mark.parametrize("record, problem", [
    pytest.param({"at": "x"}, "at: not a list", id="at-not-a-list"),
    pytest.param({"at": []}, "at: not a list", id="no-times"),
    pytest.param({"at": [1.0] * 17}, "at: not a list of 1 to 16", id="too-many-times"),
    pytest.param({"at": [-1.0]}, "at: not a time", id="a-negative-time"),
    pytest.param({"at": [1.0], "fight": 7}, "fight: not a text", id="fight-not-a-text"),
])
def test_damaged_reverts_are_ignored_with_their_problem_named(record, problem):
    raw = json.dumps({"version": 1, "handsOff": {}, "reverts": {"a": record, "b": {"at": [T0]}}})
    state, problems = hands_off_state.decode(raw)
    assert list(state.reverts) == ["b"] and len(problems) == 1 and problem in problems[0], problems


def test_a_fight_is_kept_across_a_restart_and_not_said_again():
    said, held, old = run(revert_cycles([0, 900, 1800]))
    assert said[-1] == "ExternalScaleFight" and old.fights == {WEB: "argocd-controller"}
    new = restarted(old, T0 + 1830)
    SAID.clear()
    assert observe(new, 1845, 2, "argocd-controller") is False  # a deploy tool's count: never held
    assert new.fights == {WEB: "argocd-controller"} and SAID == []  # still a fight, not said again
    assert len(new._reverts[WEB]) == 3
    window = new.fight_window_s
    observe(new, 1815 + window + 1, 2, "argocd-controller")  # a whole window after the last revert
    assert new.fights == {} and new.durable(T0 + 1815 + window + 1).reverts == {}


def test_reverts_short_of_a_fight_count_on_after_a_restart():
    _, _, old = run(revert_cycles([0, 900]))
    assert old.fights == {}
    new = restarted(old, T0 + 930)
    SAID.clear()
    observe(new, 940, 2, "argocd-controller")
    new.wrote(WEB, 5)
    observe(new, 1815, 2, "argocd-controller")  # the third revert, after the restart
    assert SAID == ["ExternalScaleChange", "ExternalScaleFight"] and new.fights == {WEB: "argocd-controller"}
