"""Random streams: one per (seed, purpose, service), never shared, stable when other services
come and go, the same for the same seed, and load generated in chunks still equals the whole."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.model import TargetRef
from simulators import faults as F
from simulators import streams as S
from simulators.cluster import SimCluster
from simulators.load import Noise, offered_chunks, offered_matrix, tick_times
from simulators.ports import SimMetrics
from tests.support.reference_cluster import ReferenceCluster
from simulators.scenario import load_scenario, load_scenario_text
from simulators.workload import ClusterConfig, ServiceConfig
from tests.simulators.helpers import assert_same_ticks, run


def fingerprint(seq: np.random.SeedSequence) -> tuple[int, ...]:
    return tuple(seq.generate_state(4).tolist())


def test_no_two_seed_service_purpose_triples_share_a_stream():
    seeds, services = range(40), [f"svc-{i}" for i in range(40)] + ["web", "web-0", "api"]
    seen: dict[tuple[int, ...], tuple] = {}
    for seed in seeds:
        for name in services:
            keys = [("load", k, S.load_term(seed, name, k)) for k in range(3)]
            keys += [(p.name, 0, S.sequence(seed, p, *S.service_key(name))) for p in (S.Purpose.POD_CRASH,
                                                                                         S.Purpose.POD_SAMPLES)]
            for purpose, k, seq in keys:
                fp = fingerprint(seq)
                assert fp not in seen, f"{(seed, name, purpose, k)} shares a stream with {seen[fp]}"
                seen[fp] = (seed, name, purpose, k)
    assert len(seen) == len(seeds) * len(services) * 5


@pytest.mark.parametrize("a, b", [
    pytest.param(lambda s: S.load_term(s, "svc-1000", 0), lambda s: S.load_term(s + 1, "svc-0", 0),
                 id="service-i+1000-under-seed-s-vs-service-i-under-seed-s+1"),
    pytest.param(lambda s: S.load_term(s, "web", 1), lambda s: S.load_term(s + 7919, "web", 0),
                 id="term-k+1-under-seed-s-vs-term-k-under-seed-s+7919"),
    pytest.param(lambda s: S.sequence(s, S.Purpose.LOAD_TERM, 1, 2**32 - 1),
                 lambda s: S.sequence(s, S.Purpose.LOAD_TERM, 2, 0), id="adjacent-key-words"),
    pytest.param(lambda s: S.noise_block(s, -1), lambda s: S.noise_block(s, 1), id="noise-blocks-minus-1-and-1"),
])
def test_the_old_seed_arithmetic_collisions_are_distinct_streams(a, b):
    for seed in (0, 1, 7, 2**40):
        assert fingerprint(a(seed)) != fingerprint(b(seed))


@pytest.mark.parametrize("words", [
    pytest.param((2**32,), id="word-of-2**32"), pytest.param((-1,), id="negative-word"),
])
def test_key_words_outside_32_bits_are_refused(words):
    # SeedSequence concatenates variable-width words: (1, 2**32) would equal (1, 0, 1)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        S.sequence(0, S.Purpose.LOAD_TERM, *words)


def scenario_text(services: list[str], seed: int = 3, count: int = 1, duration: str = "30m") -> str:
    body = "".join(textwrap.dedent(f"""\
        - name: {name}
          count: {count}
          capacityPerPod: 100
          load:
            - constant: {{rps: 100}}
            - noise: {{sigma: 0.3, every: 60s}}
            - noise: {{sigma: 0.2, every: 300s}}
        """) for name in services)
    return textwrap.dedent("""\
        apiVersion: setpoint/v1
        kind: Scenario
        metadata: {name: streams}
        spec:
          duration: %s
          tick: 60s
          seed: %d
          slo:
            latency: {percentile: 95, below: 250ms}
          services:
        """) % (duration, seed) + textwrap.indent(body, "    ")


def load_by_service(text: str) -> dict[str, np.ndarray]:
    sc = load_scenario_text(text, "streams.yaml")
    offered = sc.offered()
    return {name: offered[:, i] for i, name in enumerate(sc.services)}


@pytest.mark.parametrize("other", [
    pytest.param(["web", "api"], id="same-services"),
    pytest.param(["batch", "web", "api"], id="one-added-first"),
    pytest.param(["api", "web"], id="reordered"),
    pytest.param(["api", "x", "y", "web", "z"], id="three-added-around"),
])
def test_a_services_load_does_not_change_when_other_services_come_and_go(other):
    base = load_by_service(scenario_text(["web", "api"]))
    got = load_by_service(scenario_text(other))
    for name in ("web", "api"):
        np.testing.assert_array_equal(got[name], base[name], err_msg=name)
    assert not np.array_equal(base["web"], base["api"])  # and services differ from each other


def test_load_removed_service_leaves_the_rest_unchanged():
    base = load_by_service(scenario_text(["web", "api", "batch"]))
    got = load_by_service(scenario_text(["api", "batch"]))
    for name in ("api", "batch"):
        np.testing.assert_array_equal(got[name], base[name], err_msg=name)


def test_service_1000_under_seed_s_is_not_service_0_under_seed_s_plus_1():
    # the collision of the old seed * 1000 + i, on a scenario of 1,001 copies of one service
    under_s = load_scenario_text(scenario_text(["web"], seed=4, count=1001, duration="10m")).offered()
    under_s1 = load_scenario_text(scenario_text(["web"], seed=5, count=1001, duration="10m")).offered()
    assert not np.array_equal(under_s[:, 1000], under_s1[:, 0])
    assert len({under_s[:, j].tobytes() for j in range(under_s.shape[1])}) == 1001  # no two copies alike


def test_the_same_seed_gives_the_same_load_and_another_seed_another():
    a, b = load_scenario("flash-crowd", seed=11).offered(), load_scenario("flash-crowd", seed=11).offered()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, load_scenario("flash-crowd", seed=12).offered())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), name=st.text(min_size=1, max_size=12), term=st.integers(0, 5),
       chunk=st.integers(1, 700), start_s=st.sampled_from([-200_000.0, 0.0, 1_767_571_200.0]),
       interval_s=st.sampled_from([1.0, 5.0, 60.0]))
def test_noise_on_a_stream_is_the_same_in_chunks_as_whole(seed, name, term, chunk, start_s, interval_s):
    shapes = [Noise(0.2, seed=S.load_term(seed, name, term), interval_s=interval_s),
              Noise(0.1, seed=S.load_term(seed, name, term + 1), interval_s=interval_s)]
    duration_s, tick_s = 3 * 1024 * interval_s, interval_s  # crosses knot blocks (and 0 when start_s < 0)
    whole = offered_matrix(shapes, tick_times(start_s, duration_s, tick_s), 2)
    got = np.concatenate([load for _, _, load in offered_chunks(shapes, start_s, duration_s, tick_s, 2, chunk)])
    assert np.array_equal(got, whole)
    assert not np.array_equal(whole[:, 0], whole[:, 1])


ROOTS = [
    pytest.param([0, 7, 2**31], id="int-seeds-one-word"),
    pytest.param([2**40 + 3, 2**40 + 4], id="int-seeds-two-words"),
    pytest.param([2**64 + 5], id="int-seed-three-words"),
    pytest.param([S.load_term(1, f"svc-{i}", 1) for i in range(6)], id="load-term-streams"),
    pytest.param([S.load_term(2**63 - 1, "web", 3), S.load_term(0, "", 0)], id="load-term-extreme-seeds"),
    pytest.param([S.sequence(5, S.Purpose.LOAD_TERM, 2**32 - 1, 0, 9)], id="top-key-words"),
    pytest.param([np.random.SeedSequence(1, spawn_key=(2**40, 1)), np.random.SeedSequence(1, spawn_key=(2**41, 5))],
                 id="key-elements-of-two-words"),  # not the one-matrix path: each root's own words
]


@pytest.mark.parametrize("roots", ROOTS)
@pytest.mark.parametrize("block", [0, 1, 5, -1, -3000, 2**31 - 1], ids=lambda b: f"block-{b}")
def test_noise_blocks_of_many_streams_at_once_equal_each_streams_own(roots, block):
    got = S.noise_block_normals(roots, block, Noise.BLOCK)
    assert got.shape == (len(roots), Noise.BLOCK)
    for j, root in enumerate(roots):
        own = np.random.default_rng(S.noise_block(root, block)).standard_normal(Noise.BLOCK)
        assert got[j].tobytes() == own.tobytes(), f"stream {j}"


@pytest.mark.parametrize("roots", ROOTS)
def test_seeding_many_streams_at_once_is_numpys_seeding_step_by_step(roots):
    seqs = [S.noise_block(root, 3) for root in roots]
    entropy = np.array([S.assembled_entropy(root, (int(S.Purpose.NOISE_BLOCK), 6)) for root in roots], dtype=np.uint32)
    pool = S.pools(entropy)
    assert pool.tolist() == [list(seq.pool) for seq in seqs]
    states = S.generate_states(pool, 8)
    assert states.tolist() == [seq.generate_state(8).tolist() for seq in seqs]
    assert [S.pcg64_state(w) for w in states.tolist()] == [np.random.PCG64(seq).state for seq in seqs]


@pytest.mark.parametrize("roots", [
    pytest.param([np.random.SeedSequence([1, 2])], id="entropy-a-list"),
    pytest.param([np.random.SeedSequence(np.array([1, 2], dtype=np.uint32), spawn_key=(1,)),
                  np.random.SeedSequence(np.array([1, 2], dtype=np.uint32), spawn_key=(2,))], id="entropy-an-array"),
    pytest.param([np.random.SeedSequence(1, pool_size=8)], id="another-pool-size"),
    pytest.param([S.load_term(1, "web", 0), 1], id="keys-of-different-lengths"),
    pytest.param([1, 2**160], id="entropy-of-different-lengths"),
    pytest.param([np.random.SeedSequence(1, spawn_key=(2**40, 1)), np.random.SeedSequence(1, spawn_key=(3, 1))],
                 id="a-key-element-of-two-words-beside-one-of-one"),
    pytest.param([], id="no-stream"),
])
def test_streams_not_reproduced_at_once_are_left_to_numpy(roots):
    assert S.noise_block_normals(roots, 0, 8) is None


def test_a_noise_block_past_the_last_key_word_is_left_to_numpy():
    assert S.noise_block_normals([1], 2**31, 8) is None  # zigzag 2**32: sequence() refuses it


def service(name: str, replicas: int = 6) -> ServiceConfig:
    return ServiceConfig(name, initial_replicas=replicas, capacity_rps=100.0, startup_delay_s=5.0)


def pods_by_service(cluster) -> dict[str, dict[str, int]]:
    """service -> pod name -> container restarts."""
    return {s.ref.name: {p.name: p.restarts for p in s.pods} for s in cluster.statuses()}


@pytest.mark.parametrize("engine", [SimCluster, ReferenceCluster], ids=["vectorized", "reference"])
@pytest.mark.parametrize("other", [
    pytest.param(["batch", "web", "api"], id="one-added-first"),
    pytest.param(["api", "web"], id="reordered"),
    pytest.param(["web"], id="api-removed"),
])
def test_pod_names_and_crash_victims_of_a_service_do_not_depend_on_the_others(engine, other):
    faults = [F.PodCrash(10.0, count=2), F.PodCrash(40.0, count=3)]  # every service, twice
    base = engine([service(n) for n in ("web", "api")], np.random.default_rng(9), faults)
    got = engine([service(n) for n in other], np.random.default_rng(9), faults)
    run(base, 60.0)
    run(got, 60.0)
    a, b = pods_by_service(base), pods_by_service(got)
    for name in set(a) & set(b):
        assert b[name] == a[name], name
        assert sum(a[name].values()) == 5  # 2 + 3 victims, restarted


def test_an_int_seed_and_a_generator_of_it_root_the_same_cluster():
    config = [service("web"), service("api")]
    faults = [F.PodCrash(10.0, count=3)]
    clusters = [SimCluster(config, 21, faults), SimCluster(config, np.random.default_rng(21), faults),
                SimCluster(config, 22, faults)]
    for c in clusters:
        run(c, 30.0)
    same, other = pods_by_service(clusters[0]), pods_by_service(clusters[2])
    assert pods_by_service(clusters[1]) == same
    assert set(other["web"]) != set(same["web"])  # another seed, other pod names


def pod_samples(names: list[str], seed: int, load: dict[str, float]) -> dict[str, np.ndarray]:
    """Per-pod sampled request rates of each service after a few ticks under ``load``."""
    cluster = SimCluster([service(n, replicas=4) for n in names], seed)
    metrics = SimMetrics(cluster, {"req": "requests_rps", "lat": "latency_s"}, window_s=60.0, tick_s=5.0, seed=seed)
    offered = np.array([load[n] for n in names])
    for t in np.arange(0.0, 30.0, 5.0):
        cluster.step(float(t), 5.0, offered)
        metrics.push(cluster.signals())
    out = {}
    for i, name in enumerate(names):
        pods = [TargetRef("default", p) for p in cluster.pod_names(i)]
        req = metrics.query("req", pods, 25.0, labels=("namespace", "pod")).values
        lat = metrics.query("lat", pods, 25.0, labels=("namespace", "pod")).values
        out[name] = np.concatenate([req, lat])
    return out


def test_per_pod_samples_of_a_service_do_not_depend_on_the_others():
    load = {"web": 300.0, "api": 200.0, "batch": 150.0}
    base = pod_samples(["web", "api"], 5, load)
    got = pod_samples(["batch", "api", "web"], 5, load)
    for name in ("web", "api"):
        np.testing.assert_array_equal(got[name], base[name], err_msg=name)
    assert not np.array_equal(pod_samples(["web", "api"], 6, load)["web"], base["web"])  # the seed matters


def test_a_faulted_simulation_is_the_same_for_the_same_seed():
    faults = [F.PodCrash(10.0, count=2), F.NodeLoss(20.0, duration_s=30.0, share_ratio=0.3)]
    config = ClusterConfig((service("web"), service("api", replicas=4)), nodes=4, pods_per_node=4)
    clusters = [SimCluster(config, seed, faults) for seed in (13, 13)]
    ticks = [run(c, 80.0, load=250.0) for c in clusters]
    assert_same_ticks(ticks[0], ticks[1], rtol=0.0)
    assert pods_by_service(clusters[0]) == pods_by_service(clusters[1])
