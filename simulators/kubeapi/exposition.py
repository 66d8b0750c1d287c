"""The text of sim serve's /metrics (:meth:`SimMetricsExporter.render`): prefixes cached, numbers in bulk.

A scrape at 1,000 services (6,000 pods) is some 260k lines, each a prefix (family and labels) and a
number; most are the pods' latency histograms (:meth:`Exposition._histogram`: a bucket line is its
pod's prefix, its ``le`` and the number).
Prefixes change only with the objects: a workload's are fixed for the store's life (made with
the :class:`Exposition`); a pod's are a function of its workload row, serial and revision seq
(they make its name; its container is named after its workload), made the first time the pod is
shown and kept while it is (:class:`PodLines`). A scrape picks the prefixes of what it shows with
numpy indices, formats the numbers in bulk (:func:`format_numbers`) and joins prefixes and
numbers in one ``"".join`` (each prefix starts with the newline that ends the line before).

The pods of now are read from the engine's slot arrays (statuses' order: per workload, by
serial); the per-pod counters of the last tick are matched to them by slot (a pod keeps its slot
for life: the same serial in the same slot is the same pod). The text is the one the exporter
wrote line by line from every workload's status and its counters by name
(tests/support/reference_exposition.py), byte for byte. That text read the counters by name, so
when two pods shown share a name (their 5-character suffixes collide) they are read by name here
too, a name's last pod winning as there.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from typing import NamedTuple

import numpy as np

from simulators.simcluster.slots import EMPTY, PENDING, READY

#: the per-pod application counters: (family, the exporter's _pods field, help)
APP_COUNTERS = (("http_requests_total", "requests",
                 "Requests the pod received (simulated): its even share of the workload's offered load while Ready."),
                ("http_request_errors_total", "errors",
                 "Requests the pod failed at its revision's error ratio or rejected (dropped) (simulated)."))
HISTOGRAM = "http_request_duration_seconds"
APP_GAUGES = (("setpoint_sim_cpu_utilization_ratio", "Mean CPU utilization of ready pods over their request."),
              ("setpoint_sim_requests_per_second", "Offered load, requests per second."),
              ("setpoint_sim_error_ratio", "Failed or dropped requests over all requests."))
PERCENTILES = ("50", "95", "99")  # not "quantile": promtool reserves that label for summaries
KUBE_STATE = (("Deployment", "kube_deployment", "deployment"), ("StatefulSet", "kube_statefulset", "statefulset"))
#: The label that names a workload in its series, by kind: kube-state-metrics' (``deployment``,
#: ``statefulset``), which the application's series get too (as a relabelling from the pod's
#: owner gives them), so every series of a workload is matched by the same label.
NAME_LABEL = {kind: label for kind, _, label in KUBE_STATE}
#: Lines of pods no longer shown kept beyond as many as are shown (dropped all at once, then).
SPARE_POD_LINES = 1024


def num(v: float) -> str:
    """A sample value as the text format writes it (``NaN``, ``+Inf``, integers without ``.0``)."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def format_numbers(values) -> list[str]:
    """``[num(v) for v in values]`` in bulk: whole numbers below 1e15 through int, the others
    through repr (once per distinct value: pods of a workload often count the same), NaN and
    infinities by name; as float64 first, as ``num`` converts."""
    a = np.asarray(values, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore"):
        whole = (np.abs(a) < 1e15) & (np.floor(a) == a)
    if whole.all():
        return list(map(str, a.astype(np.int64).tolist()))
    out = np.empty(a.size, dtype=object)
    if whole.any():
        out[whole] = list(map(str, a[whole].astype(np.int64).tolist()))
    rest = ~whole
    distinct, at = np.unique(a[rest], return_inverse=True)  # -0.0 is whole: no other equal values print apart
    text = np.array(list(map(repr, distinct.tolist())), dtype=object)
    if not np.isfinite(distinct).all():
        text[np.isnan(distinct)] = "NaN"
        text[distinct == np.inf] = "+Inf"
        text[distinct == -np.inf] = "-Inf"
    out[rest] = text[at]
    return out.tolist()


def labels(**kv: str) -> str:
    """``{k="v",...}`` with the text format's escapes."""
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in kv.items()) + "}"


def first_buckets(configs, bounds_s) -> np.ndarray:
    """(S,) the index of the first latency bucket each workload's pods show: the last bound below
    its latency floor, half its zero-load median (``base_latency_s`` times the first of its
    ``latency_tail_ratios``, at most its ``timeout_s``). The engine's latencies never go below
    that median, nor a pod's CDF below half of it (metrics.latency_cdf_knots), so the buckets
    before hold 0 forever: left out, they change no sum (a missing bucket is 0) and no
    ``histogram_quantile`` (the first bucket shown is 0, the lower end of the next one's range).
    (One edge: beside slow pods of a workload whose latency the timeout caps, the others' latency
    is the cap less the slow pods' share and may go lower; buckets shown stay cumulative, only a
    quantile inside the first one shown is interpolated from 0.)"""
    floor_s = np.array([0.5 * min(c.base_latency_s * c.latency_tail_ratios[0], c.timeout_s) for c in configs])
    below = np.searchsorted(np.asarray(bounds_s, dtype=np.float64), floor_s, side="left")  # bounds < floor
    return np.maximum(below - 1, 0)


def _pick(items: list, idx: np.ndarray) -> list:
    """``[items[k] for k in idx]``; ``items`` itself when ``idx`` is all of it in order (every
    workload shown: no copy of the longest lists)."""
    if idx.size == len(items) and bool((idx == np.arange(idx.size)).all()):
        return items
    return list(map(items.__getitem__, idx.tolist()))


class PodLines(NamedTuple):
    """One pod's lines without their numbers: each starts with a newline and a prefix ends with
    the space before the number (a histogram bucket's: before its ``le`` value, whose text and the
    rest of the line are the Exposition's ``_le_tails``)."""

    key: tuple[str, str]  # (namespace, name): what the counters by name are keyed on
    requests: str
    errors: str
    bucket: str  # http_request_duration_seconds_bucket{namespace,deployment,pod,le=" : the le's text follows
    latency_sum: str
    served: str  # the histogram's _count
    ready: tuple[str, str]  # kube_pod_status_ready's three lines, whole: (not ready, ready)
    restarts: str
    resource_requests: str  # the whole lines, CPU (cores) then memory (bytes): the workload's requests
    cpu: str
    memory: str
    deletion: str  # kube_pod_deletion_timestamp{namespace,pod}: shown while it terminates


class PodsNow(NamedTuple):
    """The pods of now, in the order of the engine's statuses, and the workloads' replica counts."""

    rows: np.ndarray  # (P,) workload row
    flat: np.ndarray  # (P,) row * K + slot
    serial: np.ndarray
    phase: np.ndarray
    restarts: np.ndarray
    lines: list[PodLines]
    spec: np.ndarray  # (S,) spec.replicas
    pods: np.ndarray  # (S,) status.replicas
    ready: np.ndarray  # (S,) ready pods
    updated: np.ndarray  # (S,) pods on the current revision


class Terminating(NamedTuple):
    """The pods listed terminating (out of the engine, not yet gone), by (row, name): their indices
    in the last tick's pods (``LastTick.pods``, their values as they were then), lines, and
    deletionTimestamps (epoch s)."""

    at: np.ndarray  # (T,) int
    lines: list[PodLines]
    deletion_s: np.ndarray  # (T,)


NO_TERMINATING = Terminating(np.zeros(0, dtype=np.int64), [], np.zeros(0))


class LastTick(NamedTuple):
    """The pods of the exporter's last tick (its ``_pods``, in slot order) with their lines."""

    pods: dict  # the exporter's _pods it was made from
    lines: list[PodLines]
    by_name: np.ndarray  # indices sorted by (row, name): the order of the per-pod application series


class Exposition:
    """The exposition's text for one store's workloads: their prefixes, and the pods' while shown."""

    def __init__(self, store, latency_buckets_s: tuple[float, ...]):
        self.store = store
        workloads = store.workloads
        self.S, self.K = len(workloads), store.engine.K
        self._ns_name = [(w.namespace, w.name) for w in workloads]
        self._cpu_request = [num(w.config.cpu_request_cores) for w in workloads]
        self._memory_request = [num(w.config.memory_request_bytes) for w in workloads]
        self._name_label = [NAME_LABEL.get(w.kind, "deployment") for w in workloads]
        app = [labels(namespace=w.namespace, **{label: w.name}) for w, label in zip(workloads, self._name_label)]
        self._app = {name: [f"\n{name}{lab} " for lab in app] for name, _ in APP_GAUGES}
        les = [num(b) for b in latency_buckets_s] + ["+Inf"]
        #: the end of each of a pod's bucket lines, after its prefix (PodLines.bucket): le's text
        self._le_tails = np.array([f'{le}"}} ' for le in les], dtype=object)
        self._first_bucket = first_buckets([w.config for w in workloads], latency_buckets_s)
        self._latency = ["\nsetpoint_sim_latency_seconds"
                         f"{labels(namespace=w.namespace, **{label: w.name}, percentile=q)} "
                         for w, label in zip(workloads, self._name_label) for q in PERCENTILES]
        #: per kind present: (kind, its rows, [(family, prefixes)]: spec, pods, ready, available, updated)
        self._kinds = []
        for kind, prefix, label in KUBE_STATE:
            rows = np.array([w.index for w in workloads if w.kind == kind], dtype=np.int64)
            if rows.size:
                lab = [labels(namespace=w.namespace, **{label: w.name}) for w in workloads if w.kind == kind]
                spec = f"{prefix}_spec_replicas" if kind == "Deployment" else f"{prefix}_replicas"
                names = (spec, *(f"{prefix}_status_replicas{s}" for s in ("", "_ready", "_available", "_updated")))
                self._kinds.append((kind, rows, [(n, [f"\n{n}{x} " for x in lab]) for n in names]))
        #: pod -> its lines; a pod is its row and serial (as in the engine's name cache), kept in one int
        #: (row << 40 | serial): a tuple per pod and scrape would wake the garbage collector
        self._pods: dict[int, PodLines] = {}
        self._names: Counter = Counter()  # (namespace, name) -> pods of self._pods with it
        self._shared = 0  # names that more than one pod of self._pods has
        self._last: LastTick | None = None

    # ------------------------------------------------------------------ pods (under the store's lock)
    def pods_now(self) -> PodsNow:
        """The pods of now and the replica counts; names the new pods."""
        engine = self.store.engine
        a = engine.slot_arrays()
        rows, slots = np.nonzero(a.phase != EMPTY)
        serial = a.serial[rows, slots]
        order = np.lexsort((serial, rows))  # statuses list a workload's pods by serial
        rows, slots, serial = rows[order], slots[order], serial[order]
        seq = a.revision_seq[rows, slots]
        # statuses compare a pod's revision number with its workload's, and a workload's revisions
        # have distinct numbers (a new one, or one rolled back to, gets the highest): the same as seqs
        current = seq == a.current_seq[rows]
        lines = self._lines(rows, serial, seq)
        return PodsNow(rows, rows * self.K + slots, serial, a.phase[rows, slots], a.restarts[rows, slots], lines,
                       a.spec_replicas.copy(), np.bincount(rows, minlength=self.S), engine.ready_replicas,
                       np.bincount(rows, weights=current, minlength=self.S))

    def last_tick(self, pods: dict | None) -> LastTick | None:
        """The exporter's last-tick pods (its ``_pods``) with their lines, made once per tick."""
        if pods is None:
            return None
        if self._last is None or self._last.pods is not pods:
            lines = self._lines(pods["row"], pods["serial"], pods["revision_seq"])
            names = np.array([p.key[1] for p in lines], dtype=str)  # code point order, as str's (no NULs)
            self._last = LastTick(pods, lines, np.lexsort((names, pods["row"])))
        return self._last

    def terminating(self, now: PodsNow, last: LastTick | None, listed: dict) -> Terminating:
        """The pods of the last tick gone from their slots since (deleted by a write after it) or
        terminating then, that the store lists terminating now (``listed``: (row, name) -> its
        TerminatingPod), but for one whose name a pod of now has (the store lists only the new
        one: a StatefulSet's recreated at once); by (row, name). Under the store's lock."""
        if last is None or not listed:
            return NO_TERMINATING
        pods, a = last.pods, self.store.engine.slot_arrays()
        flat, leaving = pods["flat"], pods["leaving"]
        moved = a.serial.reshape(-1)[flat] != pods["serial"]
        candidates = np.flatnonzero(leaving | (a.phase.reshape(-1)[flat] == EMPTY) | moved)
        keys = [(int(pods["row"][j]), last.lines[j].key[1]) for j in candidates.tolist()]
        kept = [(key, j) for key, j in zip(keys, candidates.tolist()) if key in listed]
        if not kept:
            return NO_TERMINATING
        rows = {row for (row, _), _ in kept}
        live = {(int(r), p.key[1]) for r, p in zip(now.rows.tolist(), now.lines) if r in rows}
        kept = sorted((key, j) for key, j in kept if key not in live)
        at = np.array([j for _, j in kept], dtype=np.int64)
        return Terminating(at, _pick(last.lines, at), np.array([listed[key].deletion_timestamp_s for key, _ in kept],
                                                                dtype=np.float64))

    def names_collide(self, now: PodsNow, last: LastTick | None) -> bool:
        """Whether two pods shown (now or at the last tick) share a namespace and name. Drops the
        lines of the pods no longer shown when the lines kept exceed the pods of now and of the
        last tick (counted apart) by SPARE_POD_LINES (amortized: a drop halves them at least), and
        whenever two lines kept share a name (so that only pods shown can make the answer yes)."""
        shown = now.lines if last is None else now.lines + last.lines
        if self._shared or len(self._pods) > len(shown) + SPARE_POD_LINES:
            keep = set(map(id, shown))  # a pod's PodLines is one object, now and at the last tick
            self._pods = {k: p for k, p in self._pods.items() if id(p) in keep}
            self._names = Counter(p.key for p in self._pods.values())
            self._shared = sum(1 for n in self._names.values() if n > 1)
        return self._shared > 0

    def _lines(self, rows: np.ndarray, serial: np.ndarray, seq: np.ndarray) -> list[PodLines]:
        """The lines of the pods (P,) ``rows``, ``serial``, ``seq`` (revision seq); made for new ones."""
        keys = ((rows.astype(np.int64) << 40) | serial).tolist()
        lines = list(map(self._pods.get, keys))
        if None in lines:
            for j in [j for j, p in enumerate(lines) if p is None]:
                lines[j] = self._make(keys[j], int(rows[j]), int(serial[j]), int(seq[j]))
        return lines

    def _make(self, key: int, row: int, serial: int, seq: int) -> PodLines:
        ns, container = self._ns_name[row]
        pod = self.store.engine.pod_name_of(row, serial, seq)
        by_container = labels(namespace=ns, pod=pod, container=container)
        # the application's series carry the workload's name as relabeling from the pod's owner
        # gives it, in its kind's label (deployment=, a StatefulSet's statefulset=): by (namespace,
        # deployment|statefulset) and by (namespace, pod) both sum the same series
        app = labels(namespace=ns, **{self._name_label[row]: container}, pod=pod)
        ready = [f"\nkube_pod_status_ready{labels(namespace=ns, pod=pod, condition=c)} "
                 for c in ("true", "false", "unknown")]
        request = labels(namespace=ns, pod=pod, container=container, resource="cpu", unit="core")
        memory_request = labels(namespace=ns, pod=pod, container=container, resource="memory", unit="byte")
        lines = self._pods[key] = PodLines(
            (ns, pod), f"\nhttp_requests_total{app} ", f"\nhttp_request_errors_total{app} ",
            f'\n{HISTOGRAM}_bucket{app[:-1]},le="', f"\n{HISTOGRAM}_sum{app} ", f"\n{HISTOGRAM}_count{app} ",
            (f"{ready[0]}0{ready[1]}1{ready[2]}0", f"{ready[0]}1{ready[1]}0{ready[2]}0"),
            f"\nkube_pod_container_status_restarts_total{by_container} ",
            f"\nkube_pod_container_resource_requests{request} {self._cpu_request[row]}"
            f"\nkube_pod_container_resource_requests{memory_request} {self._memory_request[row]}",
            f"\ncontainer_cpu_usage_seconds_total{by_container} ",
            f"\ncontainer_memory_working_set_bytes{by_container} ",
            f"\nkube_pod_deletion_timestamp{labels(namespace=ns, pod=pod)} ")
        self._names[lines.key] += 1
        self._shared += self._names[lines.key] == 2
        return lines

    # ------------------------------------------------------------------ text (under the exporter's lock)
    def render(self, exporter, now: PodsNow, last: LastTick | None, named: dict | None,
               leaving: Terminating = NO_TERMINATING) -> str:
        """The whole text; ``named``: the exporter's counters by name when names collide, else None;
        ``leaving``: the pods terminating (:meth:`terminating`), whose kube-state-metrics and cAdvisor
        series stay until they are gone."""
        out: list[str] = []
        observed = exporter.last
        visible = ~observed.unavailable if observed is not None else np.zeros(self.S, dtype=bool)
        self._application(out, exporter, visible, last, named)
        self._kube_state(out, now, last, leaving)
        self._cadvisor(out, exporter, visible, now, last, named, leaving)
        out[0] = out[0][1:]  # the first header: no line before it
        out.append("\n")
        return "".join(out)

    @staticmethod
    def _family(out: list[str], name: str, kind: str, help_text: str, prefixes: list[str], values) -> None:
        """A family's header and samples: each prefix followed by its value, formatted."""
        out.append(f"\n# HELP {name} {help_text}\n# TYPE {name} {kind}")
        samples = [""] * (2 * len(prefixes))
        samples[::2] = prefixes
        samples[1::2] = format_numbers(values)
        out += samples

    def _application(self, out, exporter, visible, last: LastTick | None, named) -> None:
        fam, shown = self._family, np.flatnonzero(visible)
        lines, values, rows = self._app_pods(visible, last, named)
        for name, field, help_text in APP_COUNTERS:
            fam(out, name, "counter", help_text, list(map(operator.attrgetter(field), lines)), values[field])
        self._histogram(out, lines, values, rows)
        v = exporter.last.values if exporter.last is not None else None
        gauges = (lambda: v["utilization_pct"][shown] / 100.0, lambda: v["offered_rps"][shown],
                  lambda: v["error_ratio"][shown])
        for (name, help_text), get in zip(APP_GAUGES, gauges):
            fam(out, name, "gauge", help_text, _pick(self._app[name], shown), get() if v is not None else [])
        at = (shown[:, None] * len(PERCENTILES) + np.arange(len(PERCENTILES))).ravel()
        latency = np.stack([v[f"latency_p{q}_s"][shown] for q in PERCENTILES], axis=1) if v is not None else []
        fam(out, "setpoint_sim_latency_seconds", "gauge", "Latency percentiles of the engine (s).",
            _pick(self._latency, at), latency)

    def _histogram(self, out: list[str], lines: list[PodLines], values: dict, rows: np.ndarray) -> None:
        """Each pod's latency histogram: its buckets (whole requests, at most its count) from its
        workload's first (``first_buckets``; ``rows``: the pods' workloads), +Inf, _sum, _count;
        a bucket line is three strings (the pod's prefix, the le's tail, the number)."""
        out.append(f"\n# HELP {HISTOGRAM} Latency of the requests the pod served (simulated)."
                   f"\n# TYPE {HISTOGRAM} histogram")
        n, tails = len(lines), self._le_tails
        if not n:
            return
        total = np.floor(values["served"])  # the buckets, +Inf and _count are whole requests
        counts = np.empty((n, tails.size))
        counts[:, :-1] = np.minimum(np.floor(values["buckets"] + 1e-9), total[:, None])
        counts[:, -1] = total
        width = 3 * tails.size
        block = np.empty((n, width + 4), dtype=object)
        block[:, 0:width:3] = np.array(list(map(operator.attrgetter("bucket"), lines)), dtype=object)[:, None]
        block[:, 1:width:3] = tails[None, :]
        block[:, 2:width:3] = self._bucket_texts(counts, total)
        block[:, width] = list(map(operator.attrgetter("latency_sum"), lines))
        block[:, width + 1] = format_numbers(values["latency_sum"])
        block[:, width + 2] = list(map(operator.attrgetter("served"), lines))
        block[:, width + 3] = block[:, width - 1]  # _count: the +Inf bucket's number
        first = self._first_bucket[rows]
        if not first.any():
            out += block.ravel().tolist()
            return
        shown = np.ones(block.shape, dtype=bool)
        shown[:, :width] = np.repeat(np.arange(tails.size)[None, :] >= first[:, None], 3, axis=1)
        out += block[shown].tolist()  # row by row: each pod's lines in order

    @staticmethod
    def _bucket_texts(counts: np.ndarray, total: np.ndarray) -> np.ndarray:
        """(n, B + 1) object array: the text of each pod's cumulative bucket counts (whole numbers,
        +Inf last). Most buckets of a pod are 0 (below its latencies) or its total (above them):
        those reuse one string each; only the buckets between are formatted."""
        totals = np.array(format_numbers(total), dtype=object)
        texts = np.repeat(totals[:, None], counts.shape[1], axis=1)
        texts[counts == 0.0] = "0"
        between = (counts != 0.0) & (counts != total[:, None])
        if between.any():
            texts[between] = format_numbers(counts[between])
        return texts

    def _app_pods(self, visible: np.ndarray, last: LastTick | None,
                  named) -> tuple[list[PodLines], dict, np.ndarray]:
        """The pods whose application series are shown (the last tick's pods of the workloads
        shown, by (row, name)), their counters (the exporter's POD_COUNTERS: (n,) arrays,
        ``buckets`` (n, B)) and (n,) workload rows, from the last tick's arrays, or from the
        counters by name (``named``) when names collide: a series per (row, name), a name's
        last pod winning."""
        fields = ("requests", "errors", "served", "latency_sum", "buckets")
        if last is None:
            empty = {f: np.zeros((0, self._le_tails.size - 1) if f == "buckets" else 0) for f in fields}
            return [], empty, np.zeros(0, dtype=np.int64)
        if named is not None:
            lines = {(row, p.key): p for row, p in zip(last.pods["row"].tolist(), last.lines)}
            keys = [k for k in sorted(named["pod_requests"]) if visible[k[0]]]
            values = {f: np.array([named[f"pod_{f}"][k] for k in keys], dtype=np.float64) for f in fields}
            if not keys:
                values["buckets"] = values["buckets"].reshape(0, self._le_tails.size - 1)
            rows = np.array([row for row, _, _ in keys], dtype=np.int64)
            return [lines[(row, (ns, pod))] for row, ns, pod in keys], values, rows
        at = last.by_name[visible[last.pods["row"][last.by_name]]]
        return _pick(last.lines, at), {f: last.pods[f][at] for f in fields}, last.pods["row"][at]

    def _kube_state(self, out: list[str], now: PodsNow, last: LastTick | None, leaving: Terminating) -> None:
        """Workloads' replica counts; every pod's Ready condition, restarts and requests, those
        terminating last (kube-state-metrics shows a pod until its object is gone: not Ready, with
        its deletionTimestamp)."""
        fam = self._family
        for kind, rows, families in self._kinds:
            helps = (f"Desired replicas of the {kind}.", f"Pods of the {kind}.", f"Ready pods of the {kind}.",
                     f"Available pods of the {kind}.", f"Pods of the {kind} on its current revision.")
            counts = (now.spec, now.pods, now.ready, now.ready, now.updated)
            for (name, prefixes), help_text, values in zip(families, helps, counts):
                fam(out, name, "gauge", help_text, prefixes, values[rows])
        out.append("\n# HELP kube_pod_status_ready Whether the pod is ready to serve requests."
                   "\n# TYPE kube_pod_status_ready gauge")
        out += map(operator.getitem, map(operator.attrgetter("ready"), now.lines), (now.phase == READY).tolist())
        out += [p.ready[0] for p in leaving.lines]
        restarts = now.restarts if not leaving.lines else np.concatenate([now.restarts, last.pods["restarts"][leaving.at]])
        fam(out, "kube_pod_container_status_restarts_total", "counter", "Container restarts of the pod.",
            list(map(operator.attrgetter("restarts"), now.lines + leaving.lines)), restarts)
        out.append("\n# HELP kube_pod_container_resource_requests Resources requested by the container."
                   "\n# TYPE kube_pod_container_resource_requests gauge")
        out += map(operator.attrgetter("resource_requests"), now.lines + leaving.lines)
        fam(out, "kube_pod_deletion_timestamp", "gauge", "Unix deletion timestamp",
            list(map(operator.attrgetter("deletion"), leaving.lines)), leaving.deletion_s)

    def _cadvisor(self, out, exporter, visible, now: PodsNow, last: LastTick | None, named,
                  leaving: Terminating) -> None:
        """Each running container's CPU seconds and working set; then those of the terminating
        pods whose container ran when they left, as they were then (it runs through the grace,
        out of its Service's endpoints: no new request)."""
        running = np.flatnonzero(visible[now.rows] & (now.phase != PENDING))  # statuses' phase Running
        lines = _pick(now.lines, running)
        if named is not None:
            cpu = [named["cpu_seconds"].get(p.key, 0.0) for p in lines]
        else:  # the last tick's counter of the pod in that slot if it is this pod, else (a new pod) 0
            flat = now.flat[running]
            cpu = np.where(exporter._slot_serial[flat] == now.serial[running], exporter._slot_cpu_s[flat], 0.0)
        stopping = leaving.at[last.pods["running"][leaving.at]] if leaving.lines else leaving.at
        stopping_lines = [p for p, up in zip(leaving.lines, last.pods["running"][leaving.at].tolist()) if up]
        if stopping.size:
            seen = visible[last.pods["row"][stopping]]
            lines = lines + [p for p, v in zip(stopping_lines, seen.tolist()) if v]
            cpu = np.concatenate([np.asarray(cpu, dtype=np.float64), last.pods["cpu_s"][stopping[seen]]])
        self._family(out, "container_cpu_usage_seconds_total", "counter", "Cumulative CPU time of the container (s).",
                     list(map(operator.attrgetter("cpu"), lines)), cpu)
        if named is not None:
            memory = named["pod_memory"]
            shown = [p for p in now.lines if p.key in memory]
            values = [memory[p.key] for p in shown]
        elif last is not None:  # the pods of now that ran at the last tick, with the memory they had then
            at = np.full(self.S * self.K, -1, dtype=np.int64)
            in_slots = np.flatnonzero(~last.pods["leaving"])  # not those terminating: their slots are others' now
            at[last.pods["flat"][in_slots]] = in_slots
            j = at[now.flat]
            ran = np.flatnonzero((j >= 0) & (last.pods["serial"][j] == now.serial) & last.pods["running"][j])
            shown, values = _pick(now.lines, ran), last.pods["memory_bytes"][j[ran]]
        else:
            shown, values = [], []
        if stopping.size:
            shown = shown + stopping_lines
            values = np.concatenate([np.asarray(values, np.float64), last.pods["memory_bytes"][stopping]])
        self._family(out, "container_memory_working_set_bytes", "gauge",
                     "Working set of the container (bytes): the engine's memory, a leak included.",
                     list(map(operator.attrgetter("memory"), shown)), values)
