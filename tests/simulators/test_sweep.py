"""setpoint sweep: the grid, resuming an interrupted sweep, the same numbers on 1 or 2 workers,
the merged result and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.cli import main
from simulators.frontier import monotone_envelope
from simulators.sweep import CellStore, GridProgress, build_grid, local_pool, run_grid
from simulators.sweep_result import merge, result_json, write_result
from tests.simulators.sweep_fixtures import DEFAULT_POLICY, HPA_POLICY, TARGET, write_scenarios

SCENARIOS = {"tiny-a": (1, 700), "tiny-b": (5, 1100)}


@pytest.fixture
def scenarios(tmp_path):
    return write_scenarios(tmp_path, SCENARIOS)


def small_grid(scenarios, seeds=2, hpa=True):
    return build_grid(scenarios, [str(DEFAULT_POLICY)], [f"{TARGET}=60..90:30"], seeds=seeds,
                      hpa_policy=str(HPA_POLICY) if hpa else None, hpa_targets_pct=[50.0, 80.0])


def test_the_grid_is_scenarios_x_variants_x_seeds_with_seeds_from_the_scenario(scenarios):
    grid = small_grid(scenarios)
    assert [v.name for v in grid.variants] == ["averagePerReplica=60", "averagePerReplica=90", "hpa@50%", "hpa@80%"]
    cells = grid.cells()
    assert len(cells) == 2 * 4 * 2
    assert sorted({(c.scenario, c.seed) for c in cells}) == [("tiny-a", 1), ("tiny-a", 2), ("tiny-b", 5), ("tiny-b", 6)]
    assert len({c.key for c in cells}) == len(cells)
    # the key depends on what the cell computes, not on the order or the name
    assert [c.key for c in small_grid(list(reversed(scenarios))).cells()][:8] == [c.key for c in cells][8:16]


def _copy_policy(folder: Path, name: str, *edits: tuple[str, str]) -> str:
    """The default policy written to folder/name with each (old, new) text replaced."""
    text = DEFAULT_POLICY.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return str(folder / name)


@pytest.mark.parametrize("files, labels", [
    pytest.param([("main.yaml", ()), ("pr.yaml", (("averagePerReplica: 85", "averagePerReplica: 75"),))],
                 ["setpoint-default (main)", "setpoint-default (pr)"], id="a-policy-and-its-changed-copy"),
    pytest.param([("a/web.yaml", ()), ("b/web.yaml", ())], ["setpoint-default (a/web.yaml)", "setpoint-default (b/web.yaml)"],
                 id="same-stem-told-by-path"),
    pytest.param([("web.yaml", ()), ("other.yaml", (("name: setpoint-default", "name: other"),))],
                 ["setpoint-default", "other"], id="different-names-stay-as-they-are"),
])
def test_policy_files_that_share_a_name_are_told_apart_by_their_files(scenarios, tmp_path, monkeypatch, files, labels):
    """A reviewer sweeps a policy against its changed copy, both named alike (it was refused:
    'two variants are named ...'); the rows are named by file, and the spec differences said."""
    monkeypatch.chdir(tmp_path)
    paths = [_copy_policy(tmp_path / Path(f).parent, Path(f).name, *edits) for f, edits in files]
    grid = build_grid(scenarios, [os.path.relpath(p) for p in paths], [], hpa_policy=None)
    assert [v.name for v in grid.variants] == labels


HEALING = Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml"


@pytest.mark.parametrize("policy, edit, said", [
    pytest.param(DEFAULT_POLICY, ('setpoint.io/autoscale: "true"', 'setpoint.io/autoscale: "yes"'),
                 "setpoint-default (pr): targets.selector.matchLabels.setpoint.io/autoscale: true vs yes (not in the "
                 "scores: a simulated policy drives every service of the scenario)", id="a-selector-that-moved"),
    pytest.param(HEALING, ("unhealthy: {above: 600, for: 30s}", "unhealthy: {above: 6000, for: 30s}"),
                 "setpoint-healing (pr): health.checks.memory.unhealthy.above: 600 vs 6000", id="a-health-threshold"),
])
def test_a_sweep_of_two_files_names_a_change_of_targets_or_health(scenarios, tmp_path, policy, edit, said):
    """A review's sweep of main's file against a PR's said '(no difference in scaling)' for a PR
    that moved the selector (in production: no workload selected) or raised a memory check's
    threshold tenfold: the reviewer read it as no change."""
    main_file, pr = tmp_path / "main.yaml", tmp_path / "pr.yaml"
    main_file.write_text(policy.read_text())
    pr.write_text(policy.read_text().replace(*edit))
    grid = build_grid(scenarios, [str(main_file), str(pr)], [], hpa_policy=None)
    assert grid.differences == (said,)


def test_a_sweep_of_two_files_says_how_their_specs_differ(scenarios, tmp_path):
    main_file = _copy_policy(tmp_path, "main.yaml")
    pr = _copy_policy(tmp_path, "pr.yaml", ("averagePerReplica: 85", "averagePerReplica: 75"),
                      ("stabilizationWindow: 15m", "stabilizationWindow: 10m"))
    grid = build_grid(scenarios, [main_file, pr], [], hpa_policy=None)
    assert grid.differences == ("setpoint-default (pr): scaling.behavior.scaleDown.stabilizationWindow: 15m vs 10m",
                                "setpoint-default (pr): scaling.metrics.rps.target.averagePerReplica: 85 vs 75")
    same = build_grid(scenarios, [main_file, _copy_policy(tmp_path, "copy.yaml")], [], hpa_policy=None)
    assert same.differences == ("setpoint-default (copy): (no difference)",)
    assert build_grid(scenarios, [main_file], [], hpa_policy=None).differences == ()
    from simulators.sweep_result import report_html

    records = run_grid(grid.cells(), CellStore(tmp_path / "cells"))
    html_text = report_html(merge(grid, records))
    assert "<dt>policies differ in</dt><dd>setpoint-default (pr): scaling.behavior.scaleDown.stabilizationWindow: " \
           "15m vs 10m; setpoint-default (pr): scaling.metrics.rps.target.averagePerReplica: 85 vs 75</dd>" in html_text


def test_the_same_policy_file_twice_is_refused(scenarios):
    from simulators.sweep import SweepError

    with pytest.raises(SweepError, match="the same policy file is given twice"):
        build_grid(scenarios, [str(DEFAULT_POLICY), str(DEFAULT_POLICY)], [], hpa_policy=None)


@pytest.mark.parametrize("edits, says", [
    pytest.param((("name: rps", "name: weird"),), "metric 'weird' is not bound to a simulated signal (",
                 id="a-metric-no-scenario-binds"),
    pytest.param((("name: rps", "name: weird"), ("name: setpoint-default", "name: odd")),
                 "bind it for this run with --scenario-set 'spec.metrics.weird=SIGNAL'", id="how-to-bind-it"),
])
def test_what_a_scenario_does_not_bind_is_refused_before_any_cell_runs(scenarios, tmp_path, edits, says):
    """It was said by the first cell that ran it ("cell ... failed: ValueError"), after the output
    folder was made; now by the grid, once per scenario, with the scenario's file."""
    from simulators.sweep import SweepError

    with pytest.raises(SweepError) as refused:
        build_grid(scenarios, [_copy_policy(tmp_path, "odd.yaml", *edits)], [], hpa_policy=str(HPA_POLICY))
    errors = [str(e) for e in refused.value.errors]
    assert len(errors) == len(scenarios) and all(says in e for e in errors), errors
    assert [e.split(":")[0] for e in errors] == [Path(s).name for s in scenarios]


def test_an_interrupted_sweep_resumes_with_only_the_missing_cells(scenarios, tmp_path):
    grid = small_grid(scenarios, hpa=False)
    cells = grid.cells()
    store = CellStore(tmp_path / "cells")
    run_grid(cells, store, limit=3)  # as if the process died after 3 cells
    assert len(list(store.folder.glob("*.json"))) == 3
    assert not list(store.folder.glob(".*"))  # no half-written file
    seen = []
    records = run_grid(cells, store, on_cell=lambda c, done, total, cached: seen.append((c.key, cached)))
    assert sum(cached for _, cached in seen) == 3
    assert [k for k, cached in seen if not cached] == [c.key for c in cells[3:]]
    fresh = run_grid(cells, CellStore(tmp_path / "fresh"))
    assert result_json(merge(grid, records)) == result_json(merge(grid, fresh))
    again = []
    run_grid(cells, store, on_cell=lambda c, done, total, cached: again.append(cached))
    assert again == [True] * len(cells)


GOOD_SCORES = {"slo_violation_minutes": 0.0, "replica_hours": 1.5, "replica_changes": 1, "reversals": 0,
               "mitigation_seconds": {}}


@pytest.mark.parametrize("content, problem", [
    pytest.param(b"{trunc", "not JSON", id="truncated"),
    pytest.param(b"\xff\xfe\x00garbage", "not JSON", id="binary"),
    pytest.param(b"", "not JSON", id="empty"),
    pytest.param(b"[1, 2]", "expected a JSON object, got list", id="a-list"),
    pytest.param(b'{"key": "KEY"}', "no scores object", id="no-scores"),
    # these two crashed the merge on resume (TypeError, KeyError: exit 70)
    pytest.param(json.dumps({"key": "KEY", "scores": "garbage"}).encode(), "no scores object", id="scores-a-string"),
    pytest.param(json.dumps({"key": "KEY", "scores": {**GOOD_SCORES, "replica_hours": None}}).encode(),
                 "scores.replica_hours: expected a number >= 0, got null", id="score-null"),
    pytest.param(json.dumps({"key": "KEY", "scores": {k: v for k, v in GOOD_SCORES.items() if k != "reversals"}}).encode(),
                 "scores.reversals: expected a number", id="score-missing"),
    pytest.param(json.dumps({"key": "KEY", "scores": {**GOOD_SCORES, "replica_changes": True}}).encode(),
                 "scores.replica_changes: expected a number >= 0, got true", id="score-a-boolean"),
    pytest.param(json.dumps({"key": "KEY", "scores": {**GOOD_SCORES, "mitigation_seconds": {"f": "soon"}}}).encode(),
                 "scores.mitigation_seconds: expected an object of seconds (>= 0) or nulls", id="mitigation-not-seconds"),
    # these two stopped a resumed sweep (or tune) with exit 70: OverflowError, RecursionError
    pytest.param(b'{"key": "KEY", "scores": {"slo_violation_minutes": 0, "replica_hours": 1' + b"0" * 400 + b"}}",
                 "scores.replica_hours: expected a number >= 0, got 1000", id="score-an-integer-of-401-digits"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "not JSON (nested too deep)", id="nested-100000-deep"),
    # another cell's file under this cell's name (copied by hand): its numbers are not this cell's
    pytest.param(json.dumps({"key": "another", "scores": GOOD_SCORES}).encode(), "holds the record of another cell",
                 id="another-cells-record"),
])
def test_an_unreadable_cell_file_is_kept_aside_said_and_run_again(scenarios, tmp_path, content, problem):
    grid = small_grid(scenarios, seeds=1, hpa=False)
    cells = grid.cells()[:1]
    notes = []
    store = CellStore(tmp_path / "cells", note=notes.append)
    path = store.path(cells[0].key)
    content = content.replace(b'"KEY"', json.dumps(cells[0].key).encode())
    path.write_bytes(content)
    seen = []
    run_grid(cells, store, on_cell=lambda c, done, total, cached: seen.append(cached))
    assert seen == [False]
    assert store.get(cells[0].key)["scores"]["replica_hours"] > 0
    kept = path.with_name(path.name + ".unreadable")
    assert kept.read_bytes() == content  # not overwritten: the user may want it
    (note,) = notes
    assert path.name in note and problem in note and f"kept as {kept.name}, running the cell again" in note


def test_a_second_unreadable_copy_does_not_replace_the_first(scenarios, tmp_path):
    grid = small_grid(scenarios, seeds=1, hpa=False)
    key = grid.cells()[0].key
    store = CellStore(tmp_path / "cells", note=lambda message: None)
    for content in (b"{first", b"{second"):
        store.path(key).write_bytes(content)
        assert store.get(key) is None
    assert store.path(key).with_name(f"{key}.json.unreadable").read_bytes() == b"{first"
    assert store.path(key).with_name(f"{key}.json.unreadable.1").read_bytes() == b"{second"


def test_a_missing_cell_is_not_a_note(scenarios, tmp_path):
    notes = []
    assert CellStore(tmp_path / "cells", note=notes.append).get("0" * 32) is None
    assert notes == []


def test_a_process_reads_each_scenario_and_variant_once_and_reused_they_give_the_same_numbers(scenarios, tmp_path,
                                                                                               monkeypatch):
    """A cell parsed and validated its scenario's and its policy's YAML again each time (a quarter of
    a short cell's CPU): now once per process for every cell of that scenario and seed, or of that
    variant, and the cells' numbers are those of cells whose set-up is read afresh."""
    import controller.policy
    import simulators.scenario
    from simulators import sweep

    cells = small_grid(scenarios).cells()  # 2 scenarios x 2 seeds x 4 variants (2 policy, 2 hpa)
    read = {"scenario": 0, "policy": 0}

    def counted(kind, real):
        def wrapper(*args, **kwargs):
            read[kind] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(simulators.scenario, "load_scenario_text", counted("scenario", simulators.scenario.load_scenario_text))
    monkeypatch.setattr(controller.policy, "load_policy_text", counted("policy", controller.policy.load_policy_text))
    sweep._scenario_of.cache_clear()
    sweep._spec_of.cache_clear()
    reused = run_grid(cells, CellStore(tmp_path / "cells"))
    assert read == {"scenario": 4, "policy": 4}
    for cell in cells:
        sweep._scenario_of.cache_clear()
        sweep._spec_of.cache_clear()
        assert sweep.run_cell(cell.payload)["scores"] == reused[cell.key]["scores"], cell


@pytest.mark.parametrize("start_method", [
    pytest.param("fork", id="workers-forked-from-the-warm-main-process"),
    pytest.param("forkserver", id="workers-from-a-forkserver"),
])
def test_one_or_two_workers_give_identical_results(scenarios, tmp_path, start_method):
    grid = small_grid(scenarios)
    one = run_grid(grid.cells(), CellStore(tmp_path / "one"), jobs=1)
    with local_pool(2, start_method) as pool:
        two = run_grid(grid.cells(), CellStore(tmp_path / "two"), jobs=2, pool=pool)
    for cell in grid.cells():
        assert one[cell.key]["scores"] == two[cell.key]["scores"], (cell.scenario, cell.variant, cell.seed)
    assert result_json(merge(grid, one)) == result_json(merge(grid, two))


def test_workers_run_tasks_of_several_cells_and_store_each_cell_themselves(scenarios, tmp_path, monkeypatch):
    """The collecting process stores only the cell it runs itself (the first, warming it) and reads
    the others back: each worker wrote its own, as it finished. Tasks of up to 7 cells here (one
    share a worker): the same numbers as one worker's, every cell stored once."""
    from simulators import sweep

    grid = small_grid(scenarios)
    one = run_grid(grid.cells(), CellStore(tmp_path / "one"), jobs=1)
    monkeypatch.setattr(sweep, "CHUNK_SHARE", 1)
    put_here = []
    store = CellStore(tmp_path / "two")
    monkeypatch.setattr(store, "put", lambda cell, outcome: put_here.append(cell) or sweep.write_cell(store.folder, cell, outcome))
    with local_pool(2, "fork") as pool:
        two = run_grid(grid.cells(), store, jobs=2, pool=pool)
    assert len(put_here) == 1
    assert sorted(p.name for p in store.folder.iterdir()) == sorted(f"{c.key}.json" for c in grid.cells())
    for cell in grid.cells():
        assert one[cell.key]["scores"] == two[cell.key]["scores"] == store.get(cell.key)["scores"], cell


def _cells(n: int, work: int = 960) -> list:
    from simulators.sweep import Cell

    return [Cell("s", f"v{i}", 1, {"i": i}, work) for i in range(n)]


@pytest.mark.parametrize("cells, jobs, sizes", [
    # 143 cells of a 40-minute, 2-service scenario on 2 workers: 8 a task, shrinking to single cells
    pytest.param(_cells(143), 2, [8] * 10 + [7, 7, 6, 5, 4, 4, 3, 3, 3, 2, 2, 2] + [1] * 15, id="bench-grid-2-workers"),
    pytest.param(_cells(10), 2, [1] * 10, id="few-cells-one-a-task"),
    pytest.param(_cells(40, work=3_000), 1, [2] * 17 + [1] * 6, id="at-most-chunk-work"),
    pytest.param(_cells(3, work=50_000) + _cells(30), 1, [1, 1, 1] + [7, 5, 4, 3, 2, 2] + [1] * 7, id="a-long-cell-alone"),
])
def test_cells_go_to_workers_in_tasks_that_shrink_to_single_cells_at_the_end(cells, jobs, sizes):
    from collections import deque

    from simulators.sweep import next_chunk

    rest, taken = deque(cells), []
    while rest:
        taken.append(next_chunk(rest, jobs))
    assert [len(t) for t in taken] == sizes
    assert [c for t in taken for c in t] == cells  # in order, each once


def test_a_failing_cell_ends_its_task_with_the_cells_before_it_stored(scenarios, tmp_path):
    """A worker's task stops at a failing cell: those before it are stored (a rerun skips them),
    its exception goes back to be said, those after it are not run."""
    from dataclasses import replace

    from simulators import sweep

    good, after = small_grid(scenarios, seeds=1, hpa=False).cells()[:2]
    bad = replace(good, variant="bad", payload={**good.payload, "traces": "not-these"})
    folder = tmp_path / "cells"
    folder.mkdir()
    done, failure = sweep._run_cells_in_worker([good, bad, after], str(folder))
    assert [stored for _, stored in done] == [True]
    assert isinstance(failure, RuntimeError) and "a trace it replays" in str(failure)
    assert CellStore(folder).get(good.key)["scores"] == done[0][0]["scores"]
    assert [p.name for p in folder.iterdir()] == [f"{good.key}.json"]  # nothing of the others, no half-written file


@pytest.mark.parametrize("other_thread, expected", [
    pytest.param(False, "fork", id="no-other-thread-forks"),
    pytest.param(True, "forkserver", id="another-thread-alive-uses-the-forkserver"),
])
def test_workers_fork_only_from_a_process_without_other_threads(other_thread, expected):
    """In a fresh interpreter: a pytest-xdist worker runs threads of its own (the test skipped
    there, depending on which tests ran before it on that worker)."""
    start = "threading.Thread(target=stop.wait, daemon=True).start(); " if other_thread else ""
    code = ("import threading; from simulators.sweep import local_pool; stop = threading.Event(); " + start
            + f"assert threading.active_count() == {2 if other_thread else 1}; print(local_pool(2).method())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_the_costliest_cell_runs_first_in_the_main_process_and_warms_it_for_the_workers(tmp_path):
    short = write_scenarios(tmp_path, {"short": (1, 700)}, duration="4m")
    long = write_scenarios(tmp_path, {"long": (5, 1100)}, duration="8m")
    grid = build_grid(short + long, [str(DEFAULT_POLICY)], [f"{TARGET}=60..90:30"], seeds=1)
    order = []
    with local_pool(2, "fork") as pool:
        records = run_grid(grid.cells(), CellStore(tmp_path / "cells"), jobs=2, pool=pool,
                           on_cell=lambda c, done, total, cached: order.append(c))
    assert [c.scenario for c in order[:1]] == ["long"]
    here = f"{os.uname().nodename}:{os.getpid()}"
    assert [records[c.key]["worker"] == here for c in order] == [True, False, False, False]


def _progress_by_cell(grid, store, **options) -> tuple[dict, dict]:
    """run_grid's records, and each cell key's fractions in the order on_progress gave them."""
    seen: dict[str, list[float]] = {}
    records = run_grid(grid.cells(), store, on_progress=lambda c, f: seen.setdefault(c.key, []).append(f), **options)
    return records, seen


def test_cells_report_their_ticks_while_they_run_in_this_process(tmp_path):
    grid = build_grid(write_scenarios(tmp_path, {"short": (1, 700)}, duration="20m"), [str(DEFAULT_POLICY)],
                      [f"{TARGET}=60..90:30"], seeds=1)
    _, seen = _progress_by_cell(grid, CellStore(tmp_path / "cells"), jobs=1)
    assert set(seen) == {c.key for c in grid.cells()}
    for fractions in seen.values():
        assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == 1.0
        assert 50 <= len(fractions) <= 250  # about 200 a cell, not one per tick (240 ticks here)


@pytest.mark.parametrize("start_method", [
    pytest.param("fork", id="forked-workers"),
    pytest.param("forkserver", id="forkserver-workers"),
])
def test_cells_in_worker_processes_report_their_ticks_to_the_collecting_process(tmp_path, start_method):
    # cells of a simulated day (~1 s each): long enough for several reads of the workers' messages
    grid = build_grid(write_scenarios(tmp_path, {"day": (1, 700)}, duration="24h"), [str(DEFAULT_POLICY)],
                      [f"{TARGET}=60,70,80,90"], seeds=1)
    with local_pool(2, start_method) as pool:
        records, seen = _progress_by_cell(grid, CellStore(tmp_path / "cells"), jobs=2, pool=pool)
    here = f"{os.uname().nodename}:{os.getpid()}"
    in_workers = [c.key for c in grid.cells() if records[c.key]["worker"] != here]
    assert in_workers and any(seen.get(k) for k in in_workers), seen.keys()
    for fractions in seen.values():
        assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions)


def test_a_worker_sends_a_cells_progress_at_most_every_progress_send_s(tmp_path, monkeypatch):
    """A cell reports ~200 times; a worker forwards at most one report per PROGRESS_SEND_S (each
    is pickled through a pipe and read by the collecting process: a short cell's 200 cost 10%)."""
    from simulators import sweep

    grid = build_grid(write_scenarios(tmp_path, {"day": (1, 700)}, duration="24h"), [str(DEFAULT_POLICY)],
                      [f"{TARGET}=60"], seeds=1)
    [cell] = grid.cells()
    sent: list[tuple[str, float]] = []
    monkeypatch.setattr(sweep, "_worker_progress", SimpleNamespace(put=sent.append))
    started = time.monotonic()
    record = sweep._run_cell_in_worker(cell.key, cell.payload)
    elapsed = time.monotonic() - started
    assert record["scores"]
    fractions = [f for key, f in sent if key == cell.key]
    assert len(fractions) == len(sent) and fractions == sorted(fractions)
    assert len(sent) <= elapsed / sweep.PROGRESS_SEND_S
    assert len(sent) >= 1 or elapsed < 2 * sweep.PROGRESS_SEND_S


def test_grid_progress_counts_finished_cells_whole_and_running_ones_by_their_ticks(scenarios):
    cells = small_grid(scenarios, seeds=1, hpa=False).cells()  # 2 scenarios x 2 variants: work 700s vs 1100s ticks
    state = GridProgress(cells)
    assert state.total == sum(c.work for c in cells) and state.completed == 0
    state.cell_progress(cells[0], 0.5)
    state.cell_progress(cells[2], 0.25)
    assert state.completed == pytest.approx(0.5 * cells[0].work + 0.25 * cells[2].work)
    assert state.running(most=1).endswith("50% (+1)")
    state.cell_progress(cells[0], 1.5)  # clipped: a cell never counts more than its work
    state.cell_done(cells[0], 1, len(cells), False)
    assert state.completed == pytest.approx(cells[0].work + 0.25 * cells[2].work)
    assert state.done_cells == 1
    for i, c in enumerate(cells[1:], start=2):
        state.cell_done(c, i, len(cells), True)
    assert state.completed == state.total and state.running() == ""


def test_the_merge_has_means_a_pareto_front_and_hpa_at_equal_cost(scenarios, tmp_path):
    grid = small_grid(scenarios)
    result = merge(grid, run_grid(grid.cells(), CellStore(tmp_path / "cells"), jobs=1))
    doc = result_json(result)
    for name, s in doc["by_scenario"].items():
        rows = [c for c in doc["cells"] if c["scenario"] == name and c["variant"] == "averagePerReplica=60"]
        assert len(rows) == 2
        mean = s["variants"]["averagePerReplica=60"]
        assert mean["replica_hours"] == pytest.approx(sum(r["replica_hours"] for r in rows) / 2, abs=1e-3)
        assert mean["slo_violation_minutes_range"] == [min(r["slo_violation_minutes"] for r in rows),
                                                       max(r["slo_violation_minutes"] for r in rows)]
        names = list(s["variants"])
        front = monotone_envelope([s["variants"][n]["replica_hours"] for n in names],
                                  [s["variants"][n]["slo_violation_minutes"] for n in names])
        assert s["pareto"] == [names[i] for i in front]
        assert [p["target_pct"] for p in s["frontier"]["points"]] == [50.0, 80.0]
        assert set(s["frontier"]["equal_cost"]) == {"averagePerReplica=60", "averagePerReplica=90"}
    total = doc["overall"]["variants"]["hpa@80%"]["replica_hours"]
    assert total == pytest.approx(sum(s["variants"]["hpa@80%"]["replica_hours"] for s in doc["by_scenario"].values()),
                                  abs=2e-3)
    paths = write_result(result, tmp_path / "out")
    assert json.loads(paths["result"].read_text()) == doc
    html = paths["report"].read_text()
    assert html.count("<img") == 3 and "Pareto" in html


def test_cli_sweep_writes_the_result_and_reruns_from_stored_cells(scenarios, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    argv = ["sweep", *scenarios, "-p", str(DEFAULT_POLICY), "--set", f"{TARGET}=60..90:30", "--no-hpa", "-j", "1",
            "-o", str(out)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code in (0, None)
    captured = capsys.readouterr()
    assert "cell 4/4: tiny-b / averagePerReplica=90 / seed 5" in captured.err
    assert "averagePerReplica=60" in captured.out
    first = (out / "result.json").read_text()
    assert (out / "report.html").is_file()
    with pytest.raises(SystemExit):
        main(argv)
    assert captured.err.count("(stored)") == 0 and capsys.readouterr().err.count("(stored)") == 4
    assert (out / "result.json").read_text() == first


@pytest.mark.parametrize("extra, message", [
    pytest.param(["--set", "spec.scaling.metrics[2].target.averagePerReplica=1,2"], "index [2] is out of range",
                 id="bad-path"),
    pytest.param(["--set", f"{TARGET}=0..20:10"], "must be > 0, got 0", id="bad-value"),
    pytest.param(["--set", f"{TARGET}=50..90"], "has no step", id="no-step"),
    # a billion variants: the grid was built in memory (4 GB and growing after a minute)
    pytest.param(["--set", f"{TARGET}=1..1000:1", "--set", "spec.scaling.tolerance.up=0..9.99:0.01",
                  "--set", "spec.scaling.tolerance.down=0..0.999:0.001"],
                 "1000 x 1000 x 1000 = 1,000,000,000 combinations of the --set values, more than 10,000", id="huge-product"),
    # a billion seeds: 7.6 GB before a MemoryError
    pytest.param(["--seeds", "1000000000"], "--seeds: at most 100,000 seeds, got 1,000,000,000", id="billion-seeds"),
    pytest.param(["--seeds", "50001"], "2 scenarios x 1 variant x 50,001 seeds = 100,002 cells, more than 100,000",
                 id="too-many-cells"),
    # the cells ran, then the last seed failed: "--seed must be in [0, 2**63)"
    pytest.param(["--seeds", "2", "bigseed"], "its seed 9223372036854775807 plus 1 is beyond the largest seed",
                 id="seeds-beyond-the-largest"),
    # the cells ran, then ".result.json.993fbd3c.tmp: Is a directory"
    pytest.param(["result.json-in-the-way"], "result.json is a folder, where the results go", id="result-json-a-folder"),
    pytest.param(["cells-in-the-way"], "cells is a file, where the results go", id="cells-a-file"),
    pytest.param(["--set", f"{TARGET}=60,60.0"], "60 is given twice", id="a-value-twice"),
])
def test_cli_sweep_bad_set_exits_1_naming_the_path_before_running(scenarios, tmp_path, capsys, extra, message):
    if "bigseed" in extra:  # the scenario's own seed at the largest there is: a second seed overflows
        big = Path(scenarios[0]).read_text().replace("seed: 1\n", "seed: 9223372036854775807\n")
        scenarios = [str(tmp_path / "big.yaml")]
        Path(scenarios[0]).write_text(big)
        extra = [e for e in extra if e != "bigseed"]
    for name, kind in (("result.json", "dir"), ("cells", "file")):  # rows that put one in the way
        if f"{name}-in-the-way" in extra:
            (tmp_path / "out").mkdir(exist_ok=True)
            (tmp_path / "out" / name).mkdir() if kind == "dir" else (tmp_path / "out" / name).write_text("x")
            extra = [e for e in extra if e != f"{name}-in-the-way"]
    with pytest.raises(SystemExit) as info:
        main(["sweep", *scenarios, "--no-hpa", "-o", str(tmp_path / "out"), *extra])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    cells = tmp_path / "out" / "cells"
    assert not cells.is_dir() or not list(cells.iterdir())


def test_cli_sweep_says_each_scenarios_warnings_once_and_keeps_them_in_result_json(tmp_path, capsys, monkeypatch):
    # 2 minutes: each file's step at 3m never happens; 2 seeds x 2 --scenario-set values on 2 workers,
    # 8 cells that each load the file, and each file's warning is said once, before the first cell
    monkeypatch.setenv("CI", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    files = write_scenarios(tmp_path, SCENARIOS, duration="2m")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["sweep", *files, "--seeds", "2", "--scenario-set", "spec.services[*].startupDelay=20s,40s", "--no-hpa",
              "--no-report", "-j", "2", "-o", str(out)])
    assert info.value.code in (0, None)
    expected = "spec.services[0].load[0].step.at: warning: at 3m, after the run's end (2m): it never happens"
    said = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert said == [f"{file}:17: {expected}" for file in files]
    result = json.loads((out / "result.json").read_text())
    assert {name: s["warnings"] for name, s in result["scenarios"].items()} == {
        f"{name}[startupDelay={delay}]": [{"file": f"{name}.yaml", "line": 17, "field": expected.split(": ")[0],
                                           "message": expected.split(": warning: ")[1]}]
        for name in SCENARIOS for delay in ("20s", "40s")}


@pytest.mark.parametrize("jobs", [pytest.param(1, id="in-this-process"), pytest.param(2, id="two-workers")])
def test_a_sigterm_whose_exception_was_lost_still_stops_the_sweep(scenarios, tmp_path, jobs):
    """The SIGTERM handler's Terminated can land in a weakref callback or a __del__, where Python
    prints "Exception ignored" and goes on: the sweep then ran to its end and exited 0 (seen once in
    CI, in logging's lock release). Set here as the handler sets it, with its raise lost."""
    from controller.errors import TERMINATION, Terminated

    cells = small_grid(scenarios, hpa=False).cells()
    store = CellStore(tmp_path / "cells")

    def lose_the_raise(cell, done, total, cached):
        TERMINATION.set()

    try:
        with pytest.raises(Terminated):
            run_grid(cells, store, jobs=jobs, on_cell=lose_the_raise)
    finally:
        TERMINATION.clear()
    kept = len(list(store.folder.glob("*.json")))
    assert 1 <= kept < len(cells), kept  # the finished cells kept, the rest not run
