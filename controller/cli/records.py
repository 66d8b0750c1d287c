"""Reading what the controller did: ``setpoint explain`` (decision records, one line each) and
``setpoint status`` (each target's replicas, conditions and health, from a running controller or
its records)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.cli.common import fail, table_console
from controller.cli.root import app
from controller.policy.durations import format_duration
from controller.policy.summary import plural


@app.command(short_help="Print decision records and the reason for each.")
def explain(
    source: Annotated[Path, typer.Argument(
        exists=True, help="A simulation output folder, or a decisions .jsonl file written by `setpoint run` (its rotated "
                          "FILE.1, FILE.2, ... are read too).")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Only this target (name or namespace/name).")] = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", help="Only the last decision at or before this time: seconds, a duration since the first record "
                     "(30m, 1h10m), or a live run's wall-clock time (2026-12-04T20:17:00Z, now-10m).")] = None,
    controller: Annotated[Optional[str], typer.Option(
        "--controller", "-c", help="Only this controller (policy, hpa). Default: a simulation's first, the policy "
                                   "under test.")] = None,
    changes: Annotated[bool, typer.Option(
        "--changes", help="Only decisions that changed the replica count or took a health action (a restart, "
                          "a rollback); one the cluster refused or that timed out is listed too, marked NOT "
                          "APPLIED with the error.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Print at most this many records (the last ones; stderr says "
                                                   "how many there were).")] = 40,
) -> None:
    """Print decision records: for each target and cycle, every stage's number and the reason.

    Columns: time, controller, target, current -> desired, reason, then per metric the raw and
    smoothed value and the replica proposal (a dash where the metric was missing); for a
    forecast metric, the forecast, its upper bound, its recent error (MASE against persistence;
    "ignored" above the policy's errorBound) and the reactive and predictive proposals; then
    the combined, stabilized and limited counts.
    """
    import json

    from controller.runtime.records import read_all_records, select_records, target_matches

    path = source / "decisions.jsonl" if source.is_dir() else source
    if not path.exists():
        fail([f"{source}: no decisions.jsonl here; pass a `setpoint simulate` output folder or the --records "
               f"file of `setpoint run`"])
    if not path.is_file():  # a device or pipe: /dev/zero is one endless line
        fail([f"{path}: not a regular file; pass a `setpoint simulate` output folder or a decisions .jsonl file"])
    first = next(read_all_records(path), {})  # its time (--at durations count from it) and controller
    when = None if at is None else _at_option(at, first.get("at"))
    if controller is None and isinstance(first.get("controller"), str):  # a simulation's: the policy under
        controller = first["controller"]  # test first, not the last 40 of the baseline that ran last
        typer.echo(f"setpoint: showing controller {controller}'s records", err=True)
    skipped: list[str] = []
    read = [0]  # records of the controller asked for, counted as they stream by
    others: list[str] = []  # the other controllers with records (the oracle and fixed-max keep none)
    targets: dict[str, None] = {}  # the targets of those records, in order (for a --target that is none of them)

    def of_controller():
        for r in read_all_records(path, lambda f, n, why: skipped.append(f"{f}:{n}: {why}")):
            if controller is None or r.get("controller") == controller:
                read[0] += 1
                if isinstance(r.get("target"), str):
                    targets.setdefault(r["target"], None)
                yield r
            elif isinstance(r.get("controller"), str) and r["controller"] not in others:
                others.append(r["controller"])

    # streamed: the last --limit records (or one per target with --at) are held, not the file
    total: list[int] = []
    records = select_records(of_controller(), target=target, at=when, changed_only=changes, last=limit, total=total)
    if skipped:
        more = f" (and {len(skipped) - 1} more such lines)" if len(skipped) > 1 else ""
        if not read[0]:
            fail([f"no decision records: {skipped[0]}{more}; is this a decisions .jsonl file?"])
        typer.echo(f"setpoint: skipped {skipped[0]}{more}", err=True)
    if not read[0] and others:  # a decisions file, of other controllers
        fail([f"{path}: no decision records of controller {controller!r} in it; it holds those of "
              f"{', '.join(others)} (--controller NAME)"])
    if not read[0]:  # an empty file said "no decision records match" and to drop filters there were not
        fail([f"{path}: no decision records{f' of controller {controller!r}' if controller else ''} in it; pass a "
              "`setpoint simulate` output folder or the --records file of `setpoint run`"])
    if others:
        typer.echo(f"setpoint: this file also holds the records of {', '.join(others)} (--controller NAME)", err=True)
    if not records and target is not None and not any(target_matches(t, target) for t in targets):
        shown = ", ".join(list(targets)[:10]) + (f" (and {len(targets) - 10} more)" if len(targets) > 10 else "")
        fail([f"no decision records of target {target!r}; the targets in {path}: {shown}"])
    if not records:
        typer.echo("no decision records match; drop --target, --at, --controller or --changes to see more", err=True)
        raise typer.Exit(1)
    if total and total[0] > len(records):  # said: the first change shown is not the first there was
        typer.echo(f"setpoint: the last {len(records)} of {total[0]} {'changes' if changes else 'records'} "
                   f"(--limit {total[0]} for all)", err=True)
    printed = 0
    for r in records:
        try:
            typer.echo(_format_record(r))
            printed += 1
        # edited or another program's JSON; OverflowError: an integer too large for a float (a time of 10**400)
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            where = getattr(r, "origin", path)
            typer.echo(f"setpoint: skipped {where}: not a decision record ({type(exc).__name__}: {exc}): "
                       f"{json.dumps(r)[:120]}", err=True)
    if not printed:
        raise typer.Exit(1)


def _at_option(text: str, first) -> float:
    """``--at`` as a record time: seconds as they are; a duration (30m) since ``first``, the first
    record's time (a simulation's start, or a live run's first cycle); a wall-clock time
    (2026-12-04T20:17:00Z, or now-10m) as epoch seconds, which a live run's records carry."""
    import time

    from controller.model import finite_number
    from controller.policy import parse_duration
    from controller.runtime.backtest import parse_time

    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not finite_number(seconds):  # nan matched nothing, inf everything
            fail([f"--at: expected a finite number of seconds, got {text!r}"])
        return seconds
    try:
        since = parse_duration(text)
    except ValueError:
        try:
            wall = parse_time(text, time.time(), parse_duration)
        except ValueError:
            fail([f"--at: expected seconds, a duration since the first record (30m, 1h10m) or a time "
                  f"(2026-12-04T20:17:00Z, now-10m), got {text!r}"])
        if finite_number(first) and first < EPOCH_FROM_S:  # a simulation's: any date is after its every record
            fail([f"--at {text}: these are a simulation's records, timed from its start, not by the clock; give "
                  f"seconds or a duration since the start (e.g. 1380 or 23m)"])
        return wall
    return (first if finite_number(first) and first >= EPOCH_FROM_S else 0.0) + since


def _format_record(r: dict) -> str:
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    metrics = "  ".join(f"{name}: raw {num(m['raw'])} smoothed {num(m['smoothed'])} -> "
                        f"{'-' if m['proposal'] is None else m['proposal']}" for name, m in r.get("metrics", {}).items())
    forecasts = "  ".join(
        f"{name}: forecast {num(f['forecast'])} (upper {num(f['upper'])}, error {num(f['error'])}"
        f"{'' if f['trusted'] else ', ignored'}) reactive {'-' if f['reactive'] is None else f['reactive']} "
        f"predictive {'-' if f['predictive'] is None else f['predictive']}" for name, f in r.get("forecast", {}).items())
    if forecasts:
        metrics = f"{metrics}  | {forecasts}"
    ramps = "  ".join(f"{name}: no reading" if g['slope'] is None and g['ahead'] is None and g['proposal'] is None
                      else f"{name}: slope {num(g['slope'])}/s ahead {num(g['ahead'])} -> "
                      f"{'-' if g['proposal'] is None else g['proposal']}"
                      f"{' held (a look-ahead step under ramp.minStep)' if g.get('held') else ''}"
                      for name, g in r.get("ramp", {}).items())
    if ramps:
        metrics = f"{metrics}  | ramp {ramps}"
    if r.get("saturated"):  # core/scaling/saturation.py
        latest = "".join(f" (its latest reading {num(v)} is above the window's)" if [name] == r["saturated"] else
                         f" ({name}'s latest reading {num(v)} is above the window's)"
                         for name, v in r.get("saturatedLatest", {}).items())
        metrics = (f"{metrics}  | saturated {', '.join(r['saturated'])}{latest}: read at what the Ready pods serve, "
                   f"a lower bound on demand: sized with the target's headroom once more")
    if r.get("implausible"):  # core/scaling/signal.py
        read = ", ".join(f"{name} {num(v.get('value'))} (above {num(v.get('above'))})"
                         for name, v in r["implausible"].items())
        metrics = (f"{metrics}  | implausible {read}: a reading that asks for over 1000 x replicas.max (or above "
                   f"the metric's implausibleAbove), not used: it may hold replicas, never change them")
    if not all(k in r for k in ("target", "current", "desired")):  # a JSON object, but not a decision's
        raise KeyError(f"no {', '.join(k for k in ('target', 'current', 'desired') if k not in r)}")
    who = f"{r['controller']} " if "controller" in r else ""
    health = r.get("health") or (r.get("extra") or {}).get("health")
    if health and not r.get("metrics") and r.get("reason") != "HealthOnly":  # a health-only policy: no scaling side
        line = (f"{_when(r.get('at', 0.0))} {who}{r.get('target')}: {plural(r.get('current'), 'replica')} "
                f"[{health.get('reason')}]  health only (ready {r.get('ready')})")
    elif r.get("reason") == "HealthOnly":  # Reconciler.health_cycle: between full cycles while a rollout runs
        line = (f"{_when(r.get('at', 0.0))} {who}{r.get('target')}: {plural(r.get('current'), 'replica')} [HealthOnly]  "
                f"the health side alone while a rollout runs; scaling not evaluated (ready {r.get('ready')})")
    else:
        line = (f"{_when(r.get('at', 0.0))} {who}{r.get('target')}: {r.get('current')} -> {r.get('desired')} "
                f"[{r.get('reason')}]  "
                f"{metrics}  | combined {r.get('combined')} stabilized {r.get('stabilized')} limited {r.get('limited')} "
                f"(ready {r.get('ready')})")
    failed = r.get("actionFailed")
    if isinstance(failed, dict):  # decided, but the cluster did not take it (reconciler.cycle_records)
        line += f"  | NOT APPLIED: {failed.get('action')} failed: {failed.get('error')}"
    if r.get("withheld"):  # core/scaling/withheld.py
        line += (f"  | withheld {r['withheld']}: pods not Ready long past their start-up, sized on top "
                 f"of the proposals")
    external = r.get("externalScale")
    if isinstance(external, dict):  # controller/runtime/external_scale.py
        line += (f"  | replicas set to {external.get('replicas')} by {external.get('by')} (from "
                 f"{external.get('from')}): {'a real run would leave them' if external.get('rehearsal') else 'left'} "
                 f"as set until {_when(external.get('until'), pad=False)}")
    warm = r.get("warm_start")
    if warm:
        line += f"  | {_format_warm_start(warm)}"
    if isinstance(r.get("checkHistory"), dict):
        line += f"  | {_format_check_history(r['checkHistory'])}"
    if r.get("startup"):
        line += f"  | {_format_startup(r['startup'])}"
    return line + _format_health(health, r.get("desired")) if health else line


#: A record time at or after this is wall-clock epoch seconds (``setpoint run``'s records); before
#: it, seconds since a simulation's start (no scenario lasts 31 years).
EPOCH_FROM_S = 1e9


def _when(at, pad: bool = True) -> str:
    """A record's time: ``2026-12-04T20:17:00Z`` for a live run's (UTC, as Kubernetes shows
    times), ``t=    1380s`` for a simulation's; ``-`` when it is not a number."""
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return "-"
    if at >= EPOCH_FROM_S:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"t={at:>8.0f}s" if pad else f"t={at:.0f}s"


def _format_startup(s: dict) -> str:
    """The start-up delay a ramp's lead used (startupDelay: observed) and where it came from."""
    seen = s.get("range_s")
    source = (f"observed over {plural(s.get('pods'), 'pod start-up')}, {seen[0]:.0f}-{seen[1]:.0f}s" if s.get("source") == "observed"
              else f"policy's initial value, {plural(s.get('pods', 0), 'start-up')} observed")
    leads = ", ".join(f"{name} {v:.0f}s" for name, v in (s.get("lead_s") or {}).items())
    return f"start-up {s.get('delay_s', 0):.0f}s ({source}); lead {leads}"


#: Why a policy's state was rebuilt (the warm start's ``cause``) in `setpoint status`'s "state: ..."
#: line (a record's words: warm_start.CAUSE_WORDS); an older controller's records say none ("rebuilt").
_STATE_WORDS = {"start": "started with the controller", "reload": "rebuilt at a policy reload",
                "leader": "rebuilt when this replica became leader"}


def _format_warm_start(w: dict) -> str:
    """The first cycle after a start, a reload of its policy or a leadership change: how its
    state was rebuilt."""
    unread = f": {w['why']}" if w.get("warm") and w.get("why") else ""  # its metrics read nothing
    if w.get("joined"):  # joined a policy already running (its HPA deleted, its selector matching it now)
        if w.get("warm"):
            return (f"taken over warm from {w.get('source')} ({plural(w.get('ticks'), 'tick')} over "
                    f"{w.get('window_s', 0):.0f}s){unread}")
        return f"taken over cold (scale-down held one window): {w.get('why')}"
    from controller.runtime.warm_start import CAUSE_WORDS

    when = CAUSE_WORDS.get(w.get("cause"), "")
    if w.get("warm"):
        return (f"warm-started{when} from {w.get('source')} ({plural(w.get('ticks'), 'tick')} over "
                f"{w.get('window_s', 0):.0f}s){unread}")
    return f"cold start{when}: {w.get('why')}"


def _format_check_history(c: dict) -> str:
    """The first cycle after a start, a leadership change or a workload's joining: how the health
    checks' state was rebuilt (controller/runtime/check_history.py)."""
    window = c.get("windowS") or 0
    if "error" in c:
        return (f"checks' history unavailable ({c.get('error')}): checks started at OK, the revision is no "
                f"rollback target before healthyAfter")
    fired = c.get("firedUntil")
    last = f"; a check fired until {_when(fired, pad=False)}" if fired is not None else "; no check fired"
    return f"checks replayed from their history ({plural(c.get('ticks'), 'tick')} over {window:.0f}s){last}"


def _format_health(h: dict, desired=None) -> str:
    """The health side of a record: its action and reason, the scaling decision's count when
    arbitration did not apply it, and each revision check that ran (both revisions' values and
    traffic, the test statistic against its thresholds, the verdict)."""
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    out = ""
    kept = h.get("replicas")  # the replicas after arbitration (the current count unless it scaled)
    if h.get("action") or h.get("reason") not in (None, "NoAction", "Scaling"):
        to = f" to revision {h['rollback_to']}" if h.get("rollback_to") else ""
        if h.get("action") == "scale" and count(kept) and kept != desired:
            to = f" to {kept}"
        out += (f"\n    health: {h.get('action') or 'no action'}{to} [{h.get('reason')}]"
                f"{' trigger ' + h['trigger'] if h.get('trigger') else ''}")
    if h.get("rollback_gone"):  # RollbackTargetGone: why no rollback, with the revision it would have gone to
        out += (f"\n    no rollback: revision {h['rollback_gone']}, the last known healthy, is no longer on the cluster "
                f"(its ReplicaSet was deleted; spec.revisionHistoryLimit trims old ones)")
    if h.get("reason") == "RestartHungPod":
        seen = ((h.get("checks") or {}).get(h.get("trigger")) or {}).get("raw")
        longest = f" (the longest {seen:.0f}s)" if isinstance(seen, (int, float)) else ""
        out += (f"\n    hung: {', '.join(p.split('/', 1)[-1] for p in h.get('restart_pods') or []) or 'pods'} not Ready "
                f"past start-up{longest} while most pods of their revision are Ready: a stuck process, restarted; a "
                f"readiness outage (most pods not Ready: a dependency down) restarts none")
        out += _hung_verify_line(h)
    out += _verifying_line(h)
    if h.get("outcome") == "HungReplacementNotJudged":
        out += ("\n    verification: the hung pod's replacement was never seen running (Pending: unschedulable, an image "
                "pull) [HungReplacementNotJudged]: closed with no verdict; a hang once it runs is a new fault")
    if h.get("outcome") == "HungPodHungAgain":
        out += ("\n    verification: the hung pod's restart did not cure it (it hangs again) [HungPodHungAgain]: "
                "restarted again while restartsPerHour allows, never escalated (no rolling restart, no rollback)")
    if h.get("reason") == "HungPodRestartsExhausted":
        out += ("\n    held: restartsPerHour allows no more restarts of pods the hung-pod check finds hung; nothing "
                "stronger follows (one pod's fault, not the release's): see why the pod hangs, then `setpoint resume`")
    for name, c in (h.get("checks") or {}).items():
        out += _hung_check_line(name, c.get("hung"), c.get("pods"), h.get("reason"))
    if h.get("reason") == "RollbackBlockedByPause":
        out += ("\n    no rollback: the Deployment is paused (spec.paused, not by setpoint) and would not roll back; "
                "it goes out once the Deployment is resumed")
    if h.get("reason") == "RestartWaitsForRevisionVerdict":
        out += ("\n    not restarted yet: the check fires only on pods of the new revision, which a record revision "
                "check still compares with the stable pods beside them (no verdict): restarted once it is judged no "
                "worse, not at all if worse (they would come back on the same revision)")
    out += ORDERED_WORDS.get(h.get("reason"), "")
    if h.get("reason") == "CondemnedPodNotRestarted":
        out += _condemned_words(h)
    if h.get("revision_worse") or h.get("reason") == "RevisionWorseRecorded":
        out += _revision_worse_lines(h)
    out += _acceptance_line(h)
    if count(kept) and count(desired) and kept != desired and h.get("action") != "scale":
        why = ("the health action takes this cycle: one action per target" if h.get("action") else
               "no scale-down while a rollout or rollback is in progress, nor below a recent health scale-up's floor")
        out += f"\n    not applied: the scaling decision's {desired}; replicas stay {kept} ({why})"
    if h.get("rollout"):  # a rollout hold: paused while its revision test is undecided, or resumed
        out += f"\n    rollout: {h['rollout']} [{h.get('rollout_reason')}]"
    elif h.get("rollout_held"):
        out += "\n    rollout: held (paused by setpoint until its revision test decides)"
    for name, c in (h.get("revision_checks") or {}).items():
        if not c.get("active") and c.get("verdict") == "undecided":
            continue
        unit = "pod samples" if c.get("measure") == "latency" else "requests"
        out += (f"\n    {name}: revision {c['new_revision']} {num(c['new_value'])} ({num(c['new_requests'])} {unit}) vs "
                f"stable {c.get('stable_revision') or '-'} {num(c['stable_value'])} ({num(c['stable_requests'])}); "
                f"LLR {c['statistic']:.3g} (bad >= {c['bad_at']:.3g}, good <= {c['good_at']:.3g}, worse by "
                f"{c['worse_by']:g}x{'; with its recorded baseline' if c.get('compared_with') == 'baseline' else ''}) "
                f"-> {c['verdict']}")
    return out


def _hung_check_line(name: str, hung: dict | None, pods, reason: str | None) -> str:
    """A hung-pod check's counts (``CheckRecord.hung``: pods not Ready past notReadyFor, those the peer
    rule held back) in words; '' when it has nothing to add (none past it, or all restarted as hung,
    which the RestartHungPod line says)."""
    if not hung or (not hung.get("held_back") and reason == "RestartHungPod"):
        return ""
    past, held = hung.get("past", 0), hung.get("held_back", 0)
    line = (f"\n    hung check '{name}': {past} of {pods if isinstance(pods, int) else '?'} pods not Ready past "
            f"{format_duration(float(hung.get('not_ready_for') or 0.0))}")
    if held:
        revision = f"revision {hung['revision']}'s" if hung.get("revision") else "their revision's"
        some = "" if held == past else f" {held} of them"
        line += f", held back{some}: most of {revision} pods are not Ready (an outage, not a hung pod)"
    return line


DEFAULT_STATUS_SERVER = "http://127.0.0.1:8080"  # `setpoint run --listen`'s default port


@app.command(short_help="Show each target's replicas, conditions and health.")
def status(
    server: Annotated[Optional[str], typer.Option(
        "--server", "-s", metavar="URL", show_default=DEFAULT_STATUS_SERVER,
        help="Base URL of a running controller's HTTP port (its --listen); GET /status is read.")] = None,
    records: Annotated[Optional[Path], typer.Option(
        "--records", "-r", metavar="FILE", help="Build the view from a decisions .jsonl file instead (its rotated FILE.1, FILE.2, "
                                "... are read too), e.g. the --records file of `setpoint run`, or a `setpoint "
                                "simulate` output folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status document as JSON.")] = False,
    timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="Seconds --server has to answer in full (at most 3600).")] = 5.0,
) -> None:
    """Show per target: current and desired replicas, the reason, the last action, the
    HPA-style conditions (AbleToScale, ScalingActive, ScalingLimited: type, status, reason,
    message, as kubectl describe hpa shows them), health checks and held targets; per policy,
    when and why its state was (re)built: with the controller, at a policy reload (a new or
    changed policy starts afresh), when this replica became leader, or for one target it took
    over later; and, from a running controller, when it started.

    Times print in local wall-clock time (set TZ to change the zone) with how long ago.
    The view comes from a running controller (--server, default http://127.0.0.1:8080) or
    from its decision records (--records: the latest record of each target). With --json,
    the document GET /status serves, times in RFC 3339 with the local offset (a simulation's:
    seconds since its start).
    """
    from controller.errors import StatusError
    from controller.runtime.records import read_all_records, record_files
    from controller.runtime.status import REHEARSALS, book_from_records, fetch_status, to_document

    if server is not None and records is not None:
        raise StatusError("give --server or --records, not both")
    if not 0 < timeout <= 3600:  # NaN fails this too; inf overflowed deep in urllib (exit 70)
        raise StatusError(f"--timeout: expected seconds above 0 and at most 3600, got {timeout:g}")
    now = time.time()
    if records is not None:
        if records.is_dir():  # a `setpoint simulate` output folder
            records = records / "decisions.jsonl"
        if not record_files(records):
            raise StatusError(f"{records}: no such file (nor rotated {records.name}.1, ...); pass the --records "
                              f"file of `setpoint run`")
        skipped: list[str] = []
        book = book_from_records(read_all_records(records), on_skip=skipped.append)
        if skipped:
            typer.echo(f"note: {records}: {plural(len(skipped), 'record')} skipped, not decision records "
                       f"(the first: {skipped[0]})", err=True)
        if not len(book):
            raise StatusError(f"{records}: no decision records in it; pass the --records file of `setpoint run`")
        policies = book.view()
    about: dict = {}
    if records is None:
        policies = fetch_status(server or DEFAULT_STATUS_SERVER, timeout_s=timeout, about=about)
    if as_json:
        import json

        typer.echo(json.dumps(to_document(policies, now, tz=None, leader=about.get("leader"),
                                          rejected=about.get("rejected"), mode=about.get("mode"),
                                          lease=about.get("lease"), started=about.get("started")), indent=1))
        return
    _say_rejected_files(about.get("rejected"))
    if about.get("mode") in REHEARSALS:  # "last action: none" and want != cur are expected, not a fault
        typer.echo(REHEARSALS[about["mode"]], err=True)
    if about.get("leader") is False:  # kubectl port-forward deploy/setpoint may pick the standby
        typer.echo(standby_hint(about.get("lease")), err=True)
    _print_status(policies, now, about.get("started"))


def standby_hint(lease: str | None) -> str:
    """What `setpoint status` says of a standby replica, with the kubectl that names the leader's
    pod (the Lease ``NAMESPACE/NAME`` the replica reports; placeholders from an older one)."""
    namespace, _, name = (lease or "NAMESPACE/setpoint").partition("/")
    return ("this replica is a standby (it does not hold the leader Lease): it runs no cycle, so what follows is "
            f"empty or from before it stood by; read the leader's, the pod `kubectl -n {namespace} get lease "
            f"{name} -o jsonpath='{{.spec.holderIdentity}}'` names")


def _say_rejected_files(rejected) -> None:
    """The controller's policy files are rejected: say so before the tables (they show what runs)."""
    if not rejected:
        return
    errors = [str(e) for e in rejected.get("errors") or []]
    more = f" (and {len(errors) - 1} more; `setpoint validate` lists them all)" if len(errors) > 1 else ""
    typer.echo(f"the controller's policy files are invalid: {errors[0] if errors else 'unknown error'}{more}; it "
               f"runs {rejected.get('running', 'its last good policies')}", err=True)


def _print_status(policies: dict, now: float, started: float | None = None) -> None:
    """Per policy: a table of its targets, then each target's conditions and health checks;
    ``started``: when the controller started (a running one's), on the first line."""
    from rich import box
    from rich.table import Table

    from controller.runtime.status import hands_off_line, wall_clock, zone_name

    console = table_console(highlight=False)

    def table(title: str, columns: list[str], fold: tuple[int, ...] = ()) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for i, column in enumerate(columns):
            t.add_column(column, overflow="fold", no_wrap=i not in fold)
        return t

    since = f"; controller started {wall_clock(started, now)}" if started is not None else ""
    console.print(f"times in local time, {zone_name(now)}; now {wall_clock(now, now).split(' ')[0]}{since}",
                  markup=False)
    for name, policy in policies.items():
        targets = policy["targets"]
        # a simulation's records are kept per controller (policy, hpa, ...): say which policy each ran
        ran = sorted({str(s.get("policy")) for s in targets.values() if s.get("policy") not in (None, name)})
        who = f"controller {name} (policy {', '.join(ran)})" if ran else f"policy {name}"
        summary = table(f"{who}: last cycle {wall_clock(policy['at'], now)}",
                        ["target", "cur", "want", "reason", "last action", "health"], fold=(4, 5))
        for key, s in targets.items():
            summary.add_row(key, _num(s.get("current")), _num(s.get("desired")), s.get("reason") or "-",
                            _action_cell(s.get("last_action"), now), _health_cell(s.get("health")))
        if not targets:  # all it selects left alone (an HPA scales them, another policy governs them): say so
            summary.add_row("(none governed: see below)" if policy.get("left_alone") else "(no target yet)",
                            "", "", "", "", "")
        console.print(summary)
        for key, why in (policy.get("left_alone") or {}).items():
            console.print(f"{key}: left alone, {why}", markup=False)
        started = _warm_start_line(targets, now)
        if started:
            console.print(started, markup=False)
        for key, s in targets.items():
            line = hands_off_line(key, s.get("hands_off"), now)
            if line:
                console.print(line, markup=False)
            if s.get("withheld"):
                console.print(f"{key}: {plural(s['withheld'], 'replica')} withheld (pods running but not Ready past twice "
                              "their start-up), sized on top of the decision", markup=False)
            conditions = s.get("conditions") or {}
            if conditions:
                t = table(f"{key} conditions", ["type", "status", "reason", "message"], fold=(3,))
                for kind, c in conditions.items():
                    t.add_row(kind, c.get("status", ""), c.get("reason", ""), c.get("message", ""))
                console.print(t)
            health = s.get("health")
            if health and health.get("checks"):
                t = table(f"{key} health checks", ["check", "phase", "value", "since"], fold=(3,))
                for c in health["checks"]:
                    pods = f" ({c['firing_pods']}/{c['pods']} pods)" if c.get("scope") == "pod" else ""
                    value = "no data" if c.get("value") is None else _num(c.get("value"))
                    t.add_row(c["name"], c.get("phase") or "-", value + pods, wall_clock(c.get("since"), now))
                console.print(t)
            line = _rollout_line(key, (health or {}).get("rollout"), now)
            if line:
                console.print(line, markup=False)


def _rollout_line(key: str, rollout: dict | None, now: float) -> str:
    """One line on a target's rollout hold: paused by Setpoint since when, or its last pause/resume."""
    from controller.runtime.status import wall_clock

    if not rollout:
        return ""
    last = rollout.get("last") or {}
    if rollout.get("held"):
        return (f"{key} rollout: paused by setpoint since {wall_clock(rollout.get('since'), now)}, "
                f"waiting for its revision test's verdict ({last.get('reason') or 'hold'})")
    if last:
        return f"{key} rollout: last {last.get('action')} {wall_clock(last.get('at'), now)} ({last.get('reason')})"
    return ""


def _warm_start_line(targets: dict, now: float) -> str:
    """How the policy's state started, and when: with the controller, at a reload of the policy (a
    new or changed policy starts afresh: every target's state, the ones it had too) or when this
    replica became leader (an older controller's records say none: "rebuilt"); warm from
    Prometheus' history (over what window), and the targets that started cold; then each target
    taken over since (its HPA deleted, a label that brought it into the selector), warm or cold,
    on a line of its own: a take-over is not how the policy started."""
    from controller.runtime.status import wall_clock

    starts = {k: s["warm_start"] for k, s in targets.items() if s.get("warm_start")}
    began = {k: w for k, w in starts.items() if not w.get("joined")}
    lines = []
    if began:
        w = next(iter(began.values()))
        cold = [k for k, x in began.items() if not x.get("warm")]
        line = f"state: {_STATE_WORDS.get(w.get('cause'), 'rebuilt')} {wall_clock(w.get('at'), now)}"
        if len(cold) < len(began):
            line += f", warm from {w.get('source')} ({plural(w.get('ticks'), 'tick')} over {w.get('window_s', 0):.0f}s)"
        if cold:
            line += f"; cold (scale-down held one window): {_cold_whys(cold, began)}"
        lines.append(line)
    lines += [f"{k}: {_format_warm_start(w)}, {wall_clock(w.get('at'), now)}" for k, w in starts.items()
              if w.get("joined")]
    return "\n".join(lines)


def _cold_whys(cold: list[str], began: dict) -> str:
    """The targets that started cold, each group with its why after a colon (``shop/a, shop/b:
    replicas that ran unknown ... (no ...: kube-state-metrics?)``), groups joined by "; ". A why
    is not put in parentheses: its own would nest in them."""
    by_why: dict[str, list[str]] = {}
    for key in cold:
        by_why.setdefault(str(began[key].get("why") or "no history"), []).append(key)
    return "; ".join(f"{', '.join(keys)}: {why}" for why, keys in by_why.items())


def _num(v) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _action_cell(action: dict | None, now: float) -> str:
    if not action:
        return "none"
    from controller.runtime.status import wall_clock

    what = action["action"]
    if action.get("to") is not None:
        what += f" {action.get('from')}->{action['to']}"
    reason = action.get("reason")
    if reason:
        what += f" ({reason})" if len(what) + len(reason) <= 20 else f"\n{reason}"
    # read back from the cluster at a take-over: not this replica's doing (status.prior_last_action)
    before = f"\nbefore this replica led{', by ' + action['by'] if action.get('by') else ''}" \
        if action.get("before_leading") else ""
    return f"{what}\n{wall_clock(action.get('at'), now)}{before}"


def _revision_worse_lines(h: dict) -> str:
    """explain's lines for a revision a record check judged worse (a record's ``health``): by which
    check, why it is still said after its comparison ended, until when, and what is not done."""
    rev = h.get("revision")
    bad = {name: c for name, c in (h.get("revision_checks") or {}).items() if c.get("verdict") == "bad"}
    by = ", ".join(bad) or h.get("trigger") or "a record check"
    when = ("its comparison runs" if any(c.get("active") for c in bad.values()) else
            "its comparison has ended (rollbackWindow after the rollout), the verdict stands (final for the pair)")
    return (f"\n    revision worse: revision {rev}, judged by {by} (action record); {when}: said until revision {rev} "
            f"is rolled back or replaced"
            "\n    not acted on: no rollback for a record check (nor of a StatefulSet at all), no rolling restart (a "
            "new revision of the same code), no restart of its pods while the stable revision's pods serve beside "
            "them (they come back on it); running alone, its firing pods are restarted as any revision's")


def _acceptance_line(h: dict) -> str:
    """explain's line for the setpoint.io/accept-revision annotation (a record's ``health``): the
    revision judged worse it accepts, or that it names another revision than the current one."""
    from controller.model import ACCEPT_REVISION_ANNOTATION

    rev, named = h.get("revision"), h.get("accept_revision")
    if h.get("revision_accepted"):
        judged = ", ".join(n for n, c in (h.get("revision_checks") or {}).items() if c.get("verdict") == "bad")
        return (f"\n    revision accepted: revision {rev}, judged worse{f' by {judged}' if judged else ''}, is accepted "
                f"by annotation ({ACCEPT_REVISION_ANNOTATION}={named}): not said worse (setpoint_revision_worse 0), "
                f"its pods restarted as any revision's; it ends when revision {rev} is replaced or the annotation "
                f"removed")
    if named and named != rev and (h.get("revision_worse") or h.get("reason") == "RevisionWorseRecorded"):
        return (f"\n    not accepted: {ACCEPT_REVISION_ANNOTATION} names revision {named}, not the current revision "
                f"{rev}: it accepts nothing (an acceptance is of one revision, not of those after it)")
    return ""


#: What explain adds under a health line for a StatefulSet walking up (controller/core/arbitrate.py,
#: rule 7; rule 3c, CondemnedPodNotRestarted: _condemned_words)
ORDERED_WORDS = {
    "OrderedScaleUpPending": ("\n    no health scale-up: the StatefulSet (OrderedReady) has not created every pod of its last "
                              "scale-up yet; it creates them one at a time, each once every lower pod is Ready, so more "
                              "replicas would come after those"),
}


def _condemned_words(h: dict) -> str:
    """explain's line for CondemnedPodNotRestarted: the ordinals the StatefulSet keeps (the record's
    ``ordinals`` [first, end): spec.ordinals.start plus spec.replicas), the pods out of them removed."""
    kept = h.get("ordinals")
    if (isinstance(kept, list) and len(kept) == 2 and all(isinstance(k, int) and not isinstance(k, bool) for k in kept)):
        first, end = kept
        keeps = f"it keeps {first}..{end - 1}" if end > first else "it keeps none"
        where = f"ordinal {end} or above" + (f", or below {first}" if first else "")
        start = f"spec.ordinals.start {first} + " if first else ""
        return (f"\n    not restarted: the check fires only on pods the StatefulSet's scale-down removes ({where}: "
                f"{keeps}, {start}spec.replicas {end - first}; deleted, never recreated)")
    # a record written before the range was: the rule alone
    return ("\n    not restarted: the check fires only on pods the StatefulSet's scale-down removes (ordinal at or "
            "above spec.ordinals.start + spec.replicas; deleted, never recreated)")


def _health_cell(health: dict | None) -> str:
    if not health:
        return "-"
    checks = health.get("checks", [])
    firing = [c["name"] for c in checks if c.get("phase") == "firing"]
    # missing data never fires a check: one whose query answers nothing (Prometheus down, a series
    # gone) reads ok, so say which checks are blind rather than "ok" alone
    blind = [c["name"] for c in checks if c.get("value") is None and c.get("phase") != "firing"]
    parts = ["HELD", health.get("held_reason") or ""] if health.get("held") else []
    if (health.get("rollout") or {}).get("held"):  # spec.paused by us until the revision test decides
        parts.append("ROLLOUT PAUSED")
    if health.get("reason") == "RollbackBlockedByPause":  # a rollback is due: it waits for someone's resume
        parts.append("NO ROLLBACK: PAUSED")
    # a revision judged worse by a record check: said (not acted on) until rolled back or replaced
    if health.get("revision_worse") or health.get("reason") == "RevisionWorseRecorded":
        named = health.get("accept_revision")
        parts.append(f"REVISION WORSE (accept-revision names {named}: not accepted)" if named else "REVISION WORSE")
    elif health.get("revision_accepted"):  # the SRE keeps it on purpose (setpoint.io/accept-revision)
        parts.append("REVISION WORSE, accepted by annotation")
    for w in health.get("verifying") or []:  # what a verification window judges, while it is open
        parts.append(f"verifying {w.get('action')}" + (f" ({w['check']})" if w.get("check") else ""))
    parts.append(f"firing: {', '.join(firing)}" if firing else "" if checks and len(blind) == len(checks) else "ok")
    parts.append(f"no data: {', '.join(blind)}" if blind else "")
    return "\n".join(p for p in parts if p)


def _hung_verify_line(h: dict) -> str:
    """explain's line for when a hung-pod restart is judged: its window covers the replacement's
    start-up + notReadyFor + a cycle (the record's ``verify_until``; '' on an older record)."""
    until, at = h.get("verify_until"), h.get("at")
    if not isinstance(until, (int, float)) or not isinstance(at, (int, float)):
        return ""
    return (f"\n    verification: judged {format_duration(until - at)} on at the earliest, the replacement's start-up + "
            f"notReadyFor + a cycle counted from when it is first seen running (the first it could be seen hung; "
            f"no rolling restart or rollback meanwhile, another check's pod restart may go)")


def _verifying_line(h: dict) -> str:
    """explain's line naming the verification windows open after a cycle (the record's ``verifying``),
    on the cycles they hold a health action back (Verifying) or where two are open."""
    windows = [w for w in h.get("verifying") or [] if isinstance(w, dict)]
    if not windows or (h.get("reason") != "Verifying" and len(windows) < 2):
        return ""

    def one(w: dict) -> str:
        by = f" by {w['check']}" if w.get("check") else ""
        pending = " (its replacement not yet seen running: not judged yet)" if "seen" in w and w["seen"] is None else ""
        return f"{w.get('action')}{by} until {_when(w.get('until'), pad=False)}{pending}"

    return f"\n    verifying: {'; '.join(one(w) for w in windows)}"
