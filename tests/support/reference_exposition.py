"""sim serve's /metrics text as SimMetricsExporter.render wrote it before the exposition's strings
were cached (simulators/kubeapi/exposition.py): a label string and a number formatted per line,
from every workload's status and the per-pod counters by name. Slow on purpose, kept as the
reference the tests compare the product's text with, byte for byte. It reads the exporter's
state as the product renderer does (``_by_name`` under the store's lock, then its own)."""

from __future__ import annotations

import math

from simulators.kubeapi.exposition import first_buckets
from simulators.kubeapi.metrics import LATENCY_BUCKETS_S, SimMetricsExporter


def _num(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _labels(**kv: str) -> str:
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in kv.items()) + "}"


def _named(w) -> dict:
    """The label naming workload ``w`` in its series: ``statefulset`` for a StatefulSet, else
    ``deployment`` (kube-state-metrics' labels, the application's series' too)."""
    return {"statefulset" if w.kind == "StatefulSet" else "deployment": w.name}


def reference_render(exporter: SimMetricsExporter) -> str:
    """The whole exposition, as the exporter rendered it line by line."""
    statuses = exporter.store.pod_statuses()
    with exporter.store.lock, exporter.lock:
        named = exporter._by_name()
        out: list[str] = []
        _application(exporter, out, statuses, named)
        leaving = _terminating(exporter.store, statuses)
        _kube_state(out, statuses, leaving)
        _cadvisor(exporter, out, statuses, named, leaving)
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, str, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(f"{name}{suffix}{labels} {_num(value)}" for suffix, labels, value in samples)


def _terminating(store, statuses) -> list:
    """(workload, pod name, restarts, deletionTimestamp epoch s) of each pod the store lists
    terminating (not one whose name a pod of now has: the store lists the new one), by (row, name)."""
    workload = {w.index: w for w, _ in statuses}
    live = {(w.index, p.name) for w, st in statuses for p in st.pods}
    return [(workload[row], name, t.obj["status"]["containerStatuses"][0]["restartCount"], t.deletion_timestamp_s)
            for (row, name), t in sorted(store.terminating_pods().items()) if (row, name) not in live]


def _visible(exporter, statuses) -> list:
    if exporter.last is None:
        return []
    return [(w, st) for w, st in statuses if not exporter.last.unavailable[w.index]]


def _application(self, out: list[str], statuses, named: dict[str, dict]) -> None:
    shown = _visible(self, statuses)
    ids = [(w, _labels(namespace=w.namespace, **_named(w))) for w, _ in shown]
    fam = _family
    visible = {w.index for w, _ in shown}
    workload = {w.index: w for w, _ in statuses}
    pods = [(row, ns, pod) for row, ns, pod in sorted(named["pod_requests"]) if row in visible]
    app = {key: dict(namespace=key[1], **_named(workload[key[0]]), pod=key[2]) for key in pods}
    fam(out, "http_requests_total", "counter",
        "Requests the pod received (simulated): its even share of the workload's offered load while Ready.",
        [("", _labels(**app[key]), named["pod_requests"][key]) for key in pods])
    fam(out, "http_request_errors_total", "counter",
        "Requests the pod failed at its revision's error ratio or rejected (dropped) (simulated).",
        [("", _labels(**app[key]), named["pod_errors"][key]) for key in pods])
    hist = []
    first = first_buckets([w.config for w, _ in statuses], LATENCY_BUCKETS_S)  # statuses: by row
    for key in pods:
        total = math.floor(named["pod_served"][key])
        for bound, count in list(zip(LATENCY_BUCKETS_S, named["pod_buckets"][key]))[first[key[0]]:]:
            hist.append(("_bucket", _labels(**app[key], le=_num(bound)), min(math.floor(count + 1e-9), total)))
        hist.append(("_bucket", _labels(**app[key], le="+Inf"), total))
        hist.append(("_sum", _labels(**app[key]), named["pod_latency_sum"][key]))
        hist.append(("_count", _labels(**app[key]), total))
    fam(out, "http_request_duration_seconds", "histogram", "Latency of the requests the pod served (simulated).",
        hist)
    v = self.last.values if self.last is not None else {}
    gauges = [("setpoint_sim_cpu_utilization_ratio", "Mean CPU utilization of ready pods over their request.",
               lambda i: v["utilization_pct"][i] / 100.0),
              ("setpoint_sim_requests_per_second", "Offered load, requests per second.",
               lambda i: v["offered_rps"][i]),
              ("setpoint_sim_error_ratio", "Failed or dropped requests over all requests.",
               lambda i: v["error_ratio"][i])]
    for name, help_text, get in gauges:
        fam(out, name, "gauge", help_text, [("", lab, float(get(w.index))) for w, lab in ids])
    quantiles = []
    for w, _ in shown:
        for q in ("50", "95", "99"):
            quantiles.append(("", _labels(namespace=w.namespace, **_named(w), percentile=q),
                              float(v[f"latency_p{q}_s"][w.index])))
    fam(out, "setpoint_sim_latency_seconds", "gauge", "Latency percentiles of the engine (s).", quantiles)


def _kube_state(out: list[str], statuses, leaving: list) -> None:
    fam = _family
    for kind, prefix, label in (("Deployment", "kube_deployment", "deployment"),
                                ("StatefulSet", "kube_statefulset", "statefulset")):
        rows = [(w, st, _labels(namespace=w.namespace, **{label: w.name})) for w, st in statuses if w.kind == kind]
        if not rows:
            continue
        spec_name = f"{prefix}_spec_replicas" if kind == "Deployment" else f"{prefix}_replicas"
        fam(out, spec_name, "gauge", f"Desired replicas of the {kind}.", [("", l, st.spec_replicas) for _, st, l in rows])
        fam(out, f"{prefix}_status_replicas", "gauge", f"Pods of the {kind}.",
            [("", l, st.status_replicas) for _, st, l in rows])
        fam(out, f"{prefix}_status_replicas_ready", "gauge", f"Ready pods of the {kind}.",
            [("", l, st.ready_replicas) for _, st, l in rows])
        fam(out, f"{prefix}_status_replicas_available", "gauge", f"Available pods of the {kind}.",
            [("", l, st.ready_replicas) for _, st, l in rows])
        fam(out, f"{prefix}_status_replicas_updated", "gauge", f"Pods of the {kind} on its current revision.",
            [("", l, sum(1 for p in st.pods if p.revision == st.revision)) for _, st, l in rows])
    pods = [(w, p) for w, st in statuses for p in st.pods]
    ready = []
    for w, p in pods:
        for condition, value in (("true", p.ready is True), ("false", p.ready is False), ("unknown", p.ready is None)):
            ready.append(("", _labels(namespace=w.namespace, pod=p.name, condition=condition), float(value)))
    for w, name, _, _ in leaving:  # not Ready while it terminates
        for condition, value in (("true", 0.0), ("false", 1.0), ("unknown", 0.0)):
            ready.append(("", _labels(namespace=w.namespace, pod=name, condition=condition), value))
    fam(out, "kube_pod_status_ready", "gauge", "Whether the pod is ready to serve requests.", ready)
    restarts = [(w, p.name, p.restarts) for w, p in pods] + [(w, name, n) for w, name, n, _ in leaving]
    fam(out, "kube_pod_container_status_restarts_total", "counter", "Container restarts of the pod.",
        [("", _labels(namespace=w.namespace, pod=name, container=w.name), n) for w, name, n in restarts])
    fam(out, "kube_pod_container_resource_requests", "gauge", "Resources requested by the container.",
        [("", _labels(namespace=w.namespace, pod=name, container=w.name, resource=resource, unit=unit), value)
         for w, name, _ in restarts for resource, unit, value in (
             ("cpu", "core", w.config.cpu_request_cores), ("memory", "byte", w.config.memory_request_mib * 2 ** 20))])
    fam(out, "kube_pod_deletion_timestamp", "gauge", "Unix deletion timestamp",
        [("", _labels(namespace=w.namespace, pod=name), at) for w, name, _, at in leaving])


def _cadvisor(self, out: list[str], statuses, named: dict[str, dict], leaving: list) -> None:
    cpu_seconds, pod_memory = named["cpu_seconds"], named["pod_memory"]
    visible = {w.index for w, _ in _visible(self, statuses)}
    rows = [("", _labels(namespace=w.namespace, pod=p.name, container=w.name),
             cpu_seconds.get((w.namespace, p.name), 0.0))
            for w, st in statuses if w.index in visible for p in st.pods if p.phase == "Running"]
    ran = [(w, name) for w, name, _, _ in leaving if (w.namespace, name) in pod_memory]  # its container runs
    rows += [("", _labels(namespace=w.namespace, pod=name, container=w.name), cpu_seconds[(w.namespace, name)])
             for w, name in ran if w.index in visible]
    _family(out, "container_cpu_usage_seconds_total", "counter", "Cumulative CPU time of the container (s).", rows)
    memory = [("", _labels(namespace=w.namespace, pod=p.name, container=w.name),
               pod_memory[(w.namespace, p.name)])
              for w, st in statuses for p in st.pods if (w.namespace, p.name) in pod_memory]
    memory += [("", _labels(namespace=w.namespace, pod=name, container=w.name), pod_memory[(w.namespace, name)])
               for w, name in ran]
    _family(out, "container_memory_working_set_bytes", "gauge",
            "Working set of the container (bytes): the engine's memory, a leak included.", memory)
