"""The compiled pod listing (simulators/simcluster/pod_listing.py) gives ``pod_arrays``' numpy
listing, array for array: on generated slot arrays (ties of serials, empty slots, repeated and
unknown targets) and on a simulated cluster scaled up and down tick after tick. The same for
the running pods with their targets' samples (``running_pod_samples``: the compiled pass and
the numpy listing filtered), and for the workload means, listed and read from the slots in
place (``try_padded_means``), and for the start-up observer's columns (``try_pod_starts``). The compiled listing is sized by the cluster's kept pod counts;
counts that do not match the slots give the same listing (counted again)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling.hpa_propose import to_milli
from controller.model import TargetRef
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.simcluster import pod_listing
from simulators.simcluster.port import ClusterPort
from simulators.simcluster.slots import BACKOFF, EMPTY, PENDING, READY, STARTING, live_end_of
from tests.simulators.test_pods_compiled import WIDE

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

FIELDS = ("at", "uid", "pending", "running", "ready", "start_time", "ready_transition_time")


class Slots(ClusterPort):
    """Only the slot arrays ``_list_pods_numpy`` reads."""

    def __init__(self, phase, serial, revision_seq, created_s, transition_s):
        self._pod_phase, self._pod_serial, self._pod_revision_seq = phase, serial, revision_seq
        self._pod_created_s, self._pod_ready_transition_s = created_s, transition_s
        self._n_pods = np.count_nonzero(np.asarray(phase) != EMPTY, axis=1).astype(np.int64)  # as the cluster keeps it
        self._live_end = live_end_of(phase)
        self._init_port()

    def _flush(self) -> None:
        pass

    def rows_of(self, targets):
        """Targets here are (row, exists) pairs (a new key each call: pod_arrays' cache never holds)."""
        self._view_cache = (tuple(targets), (np.array([t[0] for t in targets], np.int64).reshape(-1),
                                             np.array([t[1] for t in targets], bool).reshape(-1)))
        return self._view_cache[1]

    def _name_of(self, row: int, serial: int, revision_seq: int) -> str:
        return f"s{row}-r{revision_seq}-{serial}"


def counts_and_ends(slots: Slots) -> list[tuple]:
    """The listing sized and bounded by the kept counts and ends, by none (counted), or by wrong
    ones (seen wrong: counted again); an end past the last pod only scans empty slots."""
    counts, ends, k = slots._n_pods, slots._live_end, slots._pod_phase.shape[1]
    return [(counts, ends), (None, None), (counts + 1, ends), (np.maximum(counts - 1, 0), ends),
            (counts, np.maximum(ends - 1, 0)), (counts, np.minimum(ends + 1, k))]


def assert_same_listing(monkeypatch, slots: Slots, rows, exists) -> None:
    monkeypatch.setattr(compiled, "switch", "1")
    rows, exists = np.asarray(rows, np.int64), np.asarray(exists, bool)
    want = slots._list_pods_numpy(rows, exists)
    for counts, ends in counts_and_ends(slots):
        fast = pod_listing.try_list_pods(rows, exists, slots._pod_phase, slots._pod_serial, slots._pod_revision_seq,
                                         slots._pod_created_s, slots._pod_ready_transition_s, counts, ends)
        assert fast is not None, "the kernel declined"
        got = slots._pod_dict(*fast)
        for name in FIELDS:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert list(got["name"]) == list(want["name"])


def starts_of(listing: dict, at: np.ndarray) -> tuple:
    """The start-up observer's columns of a ``pod_arrays`` listing (its PodLister path), each pod
    labelled with its target's ``at``: what ``try_pod_starts`` gives."""
    t = np.asarray(listing["at"], np.int64)
    return (at[t], listing["uid"], listing["start_time"], listing["ready_transition_time"], listing["ready"],
            ~listing["ready"] & ~listing["pending"])


def assert_same_starts(got: tuple | None, want: tuple, where: str = "") -> None:
    assert got is not None, "the kernel declined"
    for name, g, w in zip(("target", "uid", "created", "ready_s", "ready", "not_serving"), got, want):
        assert g.dtype == w.dtype, f"{where}{name}"
        np.testing.assert_array_equal(g, w, err_msg=f"{where}{name}")


def assert_same_pod_starts(monkeypatch, slots: Slots, rows, exists) -> None:
    """try_pod_starts (the start-up observer's read) gives the listing's columns, in its order."""
    monkeypatch.setattr(compiled, "switch", "1")
    rows, exists = np.asarray(rows, np.int64), np.asarray(exists, bool)
    at = np.arange(rows.size, dtype=np.int64) * 3 + 1  # the targets' rows in their list: any labels
    want = starts_of(slots._list_pods_numpy(rows, exists), at)
    k = slots._pod_phase.shape[1]
    for ends in (slots._live_end, np.minimum(slots._live_end + 1, k)):  # an end past the last pod scans empty slots
        assert_same_starts(pod_listing.try_pod_starts(rows, exists, at, slots._pod_phase, slots._pod_serial,
                                                      slots._pod_created_s, slots._pod_ready_transition_s,
                                                      slots._n_pods, ends), want)


SAMPLE_FIELDS = ("at", "uid", "values", "age_s")


def assert_same_means(monkeypatch, slots: Slots, rows, exists, present, values, ages) -> None:
    """The listing's workload means (try_listed_samples' last two arrays) equal the reader's
    numpy summary (pod_samples.workload_summary: np.bincount over the pods' samples in milli-
    units / 1000) of the running pods of the numpy listing, each with its target's sample."""
    monkeypatch.setattr(compiled, "switch", "1")
    rows, exists = np.asarray(rows, np.int64), np.asarray(exists, bool)
    present, values, ages = np.asarray(present, bool), np.asarray(values, float), np.asarray(ages, float)
    n = rows.size
    pods = slots._list_pods_numpy(rows, exists)
    at = np.asarray(pods["at"], np.int64)
    has = pods["running"] & present[at] & np.isfinite(values[at])
    count = np.bincount(at[has], minlength=n)
    total = np.bincount(at[has], weights=to_milli(values[at][has]) / 1000.0, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    for counts, ends in counts_and_ends(slots):
        got = pod_listing.try_listed_samples(rows, exists, slots._pod_phase, slots._pod_serial, slots._pod_revision_seq,
                                             slots._pod_created_s, slots._pod_ready_transition_s, present, values,
                                             ages, counts, ends)
        means, has_mean = got[-2:]
        np.testing.assert_array_equal(means, want)
        np.testing.assert_array_equal(has_mean, count > 0)
        assert means.dtype == np.float64 and has_mean.dtype == np.bool_
    # the same means read from the slots where they sit (the padded read), with each target's sample
    means, has_mean, sample = pod_listing.try_padded_means(rows, exists, slots._live_end, slots._pod_phase, present,
                                                           values)
    np.testing.assert_array_equal(means, want)
    np.testing.assert_array_equal(has_mean, count > 0)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(sample, np.where(exists & present & np.isfinite(values), values, np.nan))


def assert_same_running_pods(monkeypatch, cluster, targets, present, values, age_s) -> None:
    """running_pod_samples: the compiled pass equals the numpy listing filtered."""
    present, values, age_s = np.asarray(present, bool), np.asarray(values, float), np.asarray(age_s, float)
    got, want = {}, {}
    for switch, out in (("1", got), ("0", want)):
        monkeypatch.setattr(compiled, "switch", switch)
        out.update(cluster.running_pod_samples(targets, present, values, age_s))
    assert list(got) == list(want)
    for name in SAMPLE_FIELDS:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert list(got["name"]) == list(want["name"])


PHASES = st.sampled_from([EMPTY, EMPTY, PENDING, STARTING, BACKOFF, READY])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_same_listing_as_numpy_on_generated_slots(data):
    s, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    cells = s * k
    draw = lambda elements: np.array(data.draw(st.lists(elements, min_size=cells, max_size=cells)))  # noqa: E731
    slots = Slots(draw(PHASES).astype(np.int8).reshape(s, k), draw(st.integers(0, 5)).reshape(s, k),
                  draw(st.integers(0, 3)).reshape(s, k), draw(st.floats(0, 1e9)).reshape(s, k),
                  draw(st.one_of(st.just(np.nan), st.floats(0, 1e9))).astype(float).reshape(s, k))
    n = data.draw(st.integers(0, 6))
    rows = data.draw(st.lists(st.integers(0, s - 1), min_size=n, max_size=n))  # repeats allowed
    exists = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    with pytest.MonkeyPatch.context() as mp:
        assert_same_listing(mp, slots, rows, exists)
    with pytest.MonkeyPatch.context() as mp:
        assert_same_pod_starts(mp, slots, rows, exists)
    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(50.0))
    present = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    samples = data.draw(st.lists(values, min_size=n, max_size=n))
    ages = data.draw(st.lists(st.floats(0, 120), min_size=n, max_size=n))
    with pytest.MonkeyPatch.context() as mp:
        assert_same_running_pods(mp, slots, list(zip(rows, exists)), present, samples, ages)
    with pytest.MonkeyPatch.context() as mp:
        assert_same_means(mp, slots, rows, exists, present, samples, ages)


# Per row: the slots of service 0 (phase, serial) and its target's sample (present, value); the
# listing's workload mean and whether it has one. 0.1 three times adds up to 0.30000000000000004:
# the mean is that sum / 3 (0.10000000000000002), as the reader adds, not the value itself.
MEAN_ROWS = [
    pytest.param([[READY, STARTING, READY]], [[0, 1, 2]], True, 0.1, 0.30000000000000004 / 3, id="running-added-one-by-one"),
    pytest.param([[READY, PENDING, BACKOFF]], [[2, 0, 1]], True, 40.0, 40.0, id="pending-not-counted-unsorted-slots"),
    pytest.param([[PENDING, EMPTY, PENDING]], [[0, 1, 2]], True, 40.0, np.nan, id="only-pending"),
    pytest.param([[READY, READY]], [[0, 1]], False, 40.0, np.nan, id="value-absent"),
    pytest.param([[READY, READY]], [[0, 1]], True, np.inf, np.nan, id="value-infinite"),
    pytest.param([[READY, READY]], [[0, 1]], True, 0.0004, 0.0, id="milli-rounding"),
    pytest.param([[EMPTY, EMPTY]], [[0, 1]], True, 40.0, np.nan, id="no-pods"),
]


@pytest.mark.parametrize("phase, serial, present, value, mean", MEAN_ROWS)
def test_listing_workload_means(monkeypatch, phase, serial, present, value, mean):
    phase, serial = np.array(phase, np.int8), np.array(serial, np.int64)
    slots = Slots(phase, serial, np.zeros_like(serial), np.zeros(phase.shape), np.full(phase.shape, np.nan))
    assert_same_means(monkeypatch, slots, [0], [True], [present], [value], [7.0])
    got = pod_listing.try_listed_samples(np.array([0]), np.array([True]), phase, serial, np.zeros_like(serial),
                                         slots._pod_created_s, slots._pod_ready_transition_s, np.array([present]),
                                         np.array([value]), np.array([7.0]), slots._n_pods, slots._live_end)
    np.testing.assert_array_equal(got[-2], [mean])
    assert got[-1].tolist() == [not np.isnan(mean)]


def test_listing_workload_means_per_target(monkeypatch):
    """Several targets: a repeated row has a mean per target, an unknown one none."""
    phase = np.array([[READY, READY, EMPTY], [STARTING, PENDING, READY]], np.int8)
    serial = np.array([[0, 1, 0], [4, 3, 2]], np.int64)
    slots = Slots(phase, serial, np.zeros_like(serial), np.zeros(phase.shape), np.full(phase.shape, np.nan))
    rows, exists = [1, 0, 1, 0], [True, True, True, False]
    present, values = [True, True, True, True], [12.3456, 50.0, 0.1, 50.0]
    assert_same_means(monkeypatch, slots, rows, exists, present, values, [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("phase, serial, expect_slots", [
    pytest.param([[READY, EMPTY, PENDING]], [[7, 0, 3]], [2, 0], id="by-serial-not-slot"),
    pytest.param([[READY, READY, READY]], [[2, 1, 2]], [1, 0, 2], id="equal-serials-keep-slot-order"),
    pytest.param([[EMPTY, EMPTY]], [[1, 2]], [], id="no-pods"),
])
def test_listing_order(monkeypatch, phase, serial, expect_slots):
    phase, serial = np.array(phase, np.int8), np.array(serial, np.int64)
    slots = Slots(phase, serial, np.zeros_like(serial), np.arange(phase.size, dtype=float).reshape(phase.shape),
                  np.full(phase.shape, np.nan))
    assert_same_listing(monkeypatch, slots, [0], [True])
    listed = pod_listing.try_list_pods(np.array([0]), np.array([True]), phase, serial, np.zeros_like(serial),
                                       slots._pod_created_s, slots._pod_ready_transition_s)
    assert listed[8].tolist() == [float(s) for s in expect_slots]  # start_time: the slot number here


@pytest.mark.parametrize("phase, serial, present, value, expect_slots", [
    pytest.param([[READY, PENDING, STARTING, BACKOFF]], [[3, 0, 1, 2]], True, 40.0, [2, 3, 0], id="running-by-serial"),
    pytest.param([[PENDING, EMPTY, PENDING]], [[0, 1, 2]], True, 40.0, [], id="only-pending"),
    pytest.param([[READY, READY]], [[0, 1]], False, 40.0, [], id="value-absent"),
    pytest.param([[READY, READY]], [[0, 1]], True, np.nan, [], id="value-nan"),
    pytest.param([[READY, READY]], [[0, 1]], True, np.inf, [], id="value-infinite"),
    pytest.param([[READY, READY, READY]], [[2, 1, 2]], True, 0.0, [1, 0, 2], id="equal-serials-keep-slot-order"),
])
def test_running_pods(monkeypatch, phase, serial, present, value, expect_slots):
    phase, serial = np.array(phase, np.int8), np.array(serial, np.int64)
    slots = Slots(phase, serial, np.zeros_like(serial), np.zeros(phase.shape), np.full(phase.shape, np.nan))
    assert_same_running_pods(monkeypatch, slots, [(0, True)], [present], [value], [7.0])
    monkeypatch.setattr(compiled, "switch", "1")
    got = slots.running_pod_samples([(0, True)], np.array([present]), np.array([value]), np.array([7.0]))
    assert got["uid"].tolist() == [int(serial[0, s]) for s in expect_slots]  # row 0: the uid is the serial
    assert got["age_s"].tolist() == [7.0] * len(expect_slots)


def test_same_listing_on_a_simulated_cluster(monkeypatch):
    """pod_arrays (compiled) equals the numpy listing after every tick of a
    cluster scaled up and down (pods pending, starting, ready, removed; serials past slot counts),
    and so do the start-up observer's columns of some rows of the list (SimTargets.pod_starts)."""
    monkeypatch.setattr(compiled, "switch", "1")
    cluster = SimCluster(WIDE, np.random.default_rng(3))
    targets = [TargetRef(svc.namespace, svc.name) for svc in WIDE]
    targets.append(TargetRef("nowhere", "missing"))
    ports = SimTargets(cluster, [svc.name for svc in WIDE])
    load = np.full(cluster.n_services, 150.0)
    script = {0: [(i, 12) for i in range(8)], 5: [(i, i % 3) for i in range(8)], 9: [(i, 7) for i in range(0, 8, 2)]}
    for k in range(20):
        for service, replicas in script.get(k, ()):
            cluster.set_replicas(service, replicas)
        cluster.step(5.0 * k, 5.0, load)
        got = cluster.pod_arrays(targets)
        rows, exists = cluster.rows_of(targets)
        assert exists.sum() == len(WIDE)
        want = cluster._list_pods_numpy(rows, exists)
        for name in FIELDS:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"tick {k}: {name}")
        assert list(got["name"]) == list(want["name"])
        due = np.arange(k % 3, len(targets), 2, dtype=np.int64)  # the observer reads some rows of its list
        assert_same_starts(ports.pod_starts(targets, due), starts_of(cluster._list_pods_numpy(rows[due], exists[due]), due),
                           f"tick {k}: ")



def test_rows_of_keeps_the_whole_list_while_a_subset_is_read_in_between():
    """A cycle reads its whole target list, then (start-up observer) a subset: both give their
    rows, and the whole list's rows are kept (not rebuilt: the same arrays come back)."""
    cluster = SimCluster(WIDE, np.random.default_rng(3))
    targets = [TargetRef(svc.namespace, svc.name) for svc in WIDE]
    targets.append(TargetRef("nowhere", "missing"))
    whole = cluster.rows_of(targets)
    for subset in ([targets[3], targets[1]], [targets[-1]], [targets[0]]):
        rows, exists = cluster.rows_of(subset)
        assert rows.tolist() == [whole[0][targets.index(t)] for t in subset]
        assert exists.tolist() == [t.namespace != "nowhere" for t in subset]
        again = cluster.rows_of(list(targets))  # an equal list, another object
        assert again[0] is whole[0] and again[1] is whole[1]
    assert whole[0].tolist() == list(range(len(WIDE))) + [0] and whole[1].tolist() == [True] * len(WIDE) + [False]


def test_observe_says_which_rollouts_are_paused():
    """SimTargets.observe carries spec.paused per target: the paused service, the others, and
    an unknown target (False)."""
    from simulators.ports import SimTargets

    cluster = SimCluster(WIDE, np.random.default_rng(3))
    cluster.set_paused(2, True)
    targets = [TargetRef(svc.namespace, svc.name) for svc in WIDE] + [TargetRef("nowhere", "missing")]
    view = SimTargets(cluster, [svc.name for svc in WIDE]).observe(targets)
    assert view.paused.tolist() == [i == 2 for i in range(len(WIDE))] + [False]
    assert view.exists.tolist() == [True] * len(WIDE) + [False]


def test_sim_targets_rows_of_a_new_list_after_the_cached_one_was_freed():
    """SimTargets.rows, and the rows its observe and pod_starts read, are cached per list object;
    a new list built after the cached one is gone (CPython often hands it the freed list's id)
    gets its own rows, every time."""
    cluster = SimCluster(WIDE, np.random.default_rng(3))
    cluster.step(0.0, 5.0, np.full(cluster.n_services, 150.0))
    port = SimTargets(cluster, [svc.name for svc in WIDE])
    refs = [TargetRef(svc.namespace, svc.name) for svc in WIDE]
    spec = cluster.spec_replicas
    for k in range(1, len(refs)):
        picked = [refs[k], refs[0]]
        assert port.rows(picked).tolist() == [k, 0]
        assert port.observe(picked).spec.tolist() == [spec[k], spec[0]]
        assert set(port.pod_starts(picked, np.array([0]))[1] >> 32) == {k}  # uid: the pod's service row, then serial
        del picked  # freed: the next list may reuse its id
    assert port.rows([refs[2], refs[0]]).tolist() == [2, 0]


@pytest.mark.parametrize("pick", [
    pytest.param(lambda refs: refs, id="every-service-in-order"),
    pytest.param(lambda refs: refs[::-1], id="reversed"),
    pytest.param(lambda refs: refs[1:], id="a-subset"),
    pytest.param(lambda refs: refs + [TargetRef("nowhere", "missing")], id="with-an-unknown-target"),
])
@pytest.mark.parametrize("switch", ["1", "0"])
def test_view_of_every_service_equals_the_gathered_view(monkeypatch, pick, switch):
    """SimCluster.view reads every service in order without the gather, and gathers other lists
    in one compiled pass (simcluster/view_compiled.py) where the kernels run: the same float64
    arrays and flags as gathering row by row (checked against a gather built here), fresh
    copies each call."""
    monkeypatch.setattr(compiled, "switch", switch)
    cluster = SimCluster(WIDE, np.random.default_rng(3))
    for i in range(cluster.n_services):
        cluster.set_replicas(i, 3 + i)
    cluster.step(0.0, 5.0, np.full(cluster.n_services, 150.0))
    cluster._rolling[1::3], cluster._paused[::2] = True, True  # flags of some services, to gather
    targets = pick([TargetRef(svc.namespace, svc.name) for svc in WIDE])
    for _ in range(2):  # the second call answers from the memo
        view = cluster.view(targets, with_paused=True)
        rows, exists = cluster.rows_of(targets)
        for name, source in (("rollout", cluster._rolling), ("paused", cluster._paused)):
            got = getattr(view, name)
            assert got.dtype == np.bool_ and not np.shares_memory(got, source), name
            np.testing.assert_array_equal(got, exists & source[rows], err_msg=name)
        assert cluster.view(targets).paused is None
        rows, exists = cluster.rows_of(targets)
        for name, source in (("spec", cluster._spec_replicas), ("status", cluster._n_pods), ("ready", cluster._n_ready)):
            want = np.where(exists, source[rows], 0).astype(np.float64)
            got = getattr(view, name)
            assert got.dtype == want.dtype and not np.shares_memory(got, source), name
            np.testing.assert_array_equal(got, want, err_msg=name)
