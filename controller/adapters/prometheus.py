"""Prometheus as a MetricsSource: one instant query per policy metric, mapped onto the targets.

The only module of the project that imports prometheus-api-client.

One call of ``PrometheusSource.query(expr, targets, at)`` sends ONE HTTP request, whatever the
number of targets: the expression returns a vector keyed by target labels (by default
``namespace`` and ``deployment``), and the adapter maps each series to the row of the target
whose ``(namespace, name)`` equals the series' label values. ``query_many`` runs the queries of
a policy's cycle with bounded concurrency (its scaling metrics; its health checks' in two batches,
the workloads' and the pods': controller/runtime/healing.py).

What comes back (``controller.ports.Samples``, arrays of shape (N,) aligned with ``targets``):

- ``present``: exactly one series matched the target. No series: ``present`` False, value NaN.
- ``conflict``: several series matched the target (an error for that target only), value NaN.
- ``values``: NaN and +/-Inf pass through as Prometheus sent them; the core masks them.
- ``age_s``: ``at`` minus the sample timestamp, never negative. Prometheus stamps instant-query
  results with the evaluation time, so this is 0 for a live Prometheus: staleness is enforced by
  Prometheus itself (staleness markers when a series disappears, and its 5 min lookback delta).
  Use ``last_over_time(m[30s])`` in the policy's query for a tighter bound.

Errors (all ``MetricsUnavailable``, i.e. the metric as a whole is unknown this cycle):

- ``PrometheusUnreachable``: connection refused, DNS, TLS failure, timeout; HTTP 5xx, 408 and
  429 after ``retries`` retries with exponential backoff and jitter; HTTP 401/403 at once.
  Every call finishes within ``timeout_s`` (all attempts and waits included): each request,
  from connecting to the last byte of its answer, is stopped at the call's deadline (``Deadline``
  shuts its socket down), so an answer that trickles in counts as no answer.
- ``PrometheusBadQuery``: HTTP 400 or 422, Prometheus rejected the PromQL. Never retried.
- ``PrometheusBadResponse``: the answer is not the query API's JSON, ``status`` is not
  ``success``, the result type is neither vector nor scalar, a value is not a number, a
  scalar (or single unlabelled series) came back for a policy with several targets, or the
  answer is larger than ``MAX_ANSWER_BYTES`` (refused, not read).

Why the client is used the way it is (prometheus-api-client 0.7.2, read from its source):

- ``PrometheusConnect`` holds the connection: the ``requests.Session`` we configure and pass
  it, its url, headers, auth and retry adapter, and closes the session. Queries are sent on that
  session with the client's headers and auth by ``query_api_response``, our one small piece of
  transport, which returns the response itself: ``custom_query``/``custom_query_range`` return
  only ``data.result`` (no ``resultType``, no error envelope, no status code or headers but in
  an exception message, and every range sample as Python objects). Its docstring says which
  behaviour of this adapter needs each part. No response hook, nothing patched.
- Its retries are urllib3's ``Retry`` on the session adapter: no deadline over all attempts,
  an uncapped ``Retry-After``, and exhaustion surfaces as ``RetryError`` without the last body.
  So the client gets ``Retry(0)`` and this module retries, within one overall deadline.
- Its requests read the whole answer whatever its size and however slowly it comes (requests'
  timeout bounds each read, not a request): ``query_api_response`` streams it, ``read_answer``
  reads it within ``MAX_ANSWER_BYTES``, and a ``Deadline`` ends the request in time; the
  session's adapter (``DeadlineAdapter``) lets the Deadline find the request's socket.
- ``disable_ssl`` only switches verification off, and is ignored when a session is passed: a
  custom CA bundle needs our own ``requests.Session`` (``verify`` = CA path or bool). The
  client's ``auth`` and ``headers`` are used: ``auth`` gets a requests AuthBase that re-reads
  the bearer-token (or password) file when it changes.
- Its ``method="POST"`` still sends the query in the URL (0.7.2), so it buys nothing against
  URL length limits and is not offered; select a policy's targets by labels, not long regexes.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import requests
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from controller.errors import (MetricsUnavailable, PrometheusBadQuery, PrometheusBadResponse, PrometheusError,
                               PrometheusUnreachable)
from controller.model import DEFAULT_TARGET_LABELS, TargetIndex, TargetLabels, TargetRef
from controller.ports import PodSeries, Samples

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BAD_QUERY_STATUS = frozenset({400, 422})
AUTH_STATUS = frozenset({401, 403})
SNIPPET_CHARS = 300  # how much of an unreadable body or a long expression goes into a message
#: The longest ``timeout_s``: an hour, 30x Prometheus' own --query.timeout (2 min by default) and
#: far beyond any proxy's idle timeout, so a longer wait can only be for an answer that never
#: comes (and 1e12 s overflowed socket.settimeout: a crash, not a wait).
MAX_TIMEOUT_S = 3600.0


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrometheusConfig:
    """Where Prometheus is and how to talk to it. Secrets are never held here, only file paths.

    url: base URL of the server (``https://prometheus.monitoring:9090``, or with a path prefix
      such as ``http://gateway/prometheus``); no trailing slash.
    bearer_token_file: file holding a bearer token, re-read whenever it changes (projected
      service-account tokens rotate). Exclusive with basic auth.
    basic_auth_user, basic_auth_password_file: HTTP basic auth; the password file is re-read
      when it changes.
    ca_file: PEM bundle to verify the server's certificate with, instead of the system store.
    verify_tls: False disables certificate verification (a lab only).
    headers: extra HTTP headers, e.g. ``(("X-Scope-OrgID", "team-a"),)``. Shown by name only.
    timeout_s: the most one query may take, all attempts and backoff waits included (seconds;
      finite, at most ``MAX_TIMEOUT_S``). Each HTTP request, from connecting to the last byte of
      its answer, ends by the query's deadline.
    retries: extra attempts after a transient failure (5xx, 408, 429, connection error).
    backoff_s: first backoff wait (seconds); doubled per retry, with jitter in [0.5, 1] of it.
    max_concurrency: queries in flight at once in ``query_many``.
    target_labels: the labels a series is matched to its workload on, per kind (TargetLabels; a
      (namespace label, name label) pair means the same for every kind).
    """

    url: str
    bearer_token_file: str | None = None
    basic_auth_user: str | None = None
    basic_auth_password_file: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.2
    max_concurrency: int = 4
    target_labels: TargetLabels = DEFAULT_TARGET_LABELS

    def __post_init__(self) -> None:
        if isinstance(self.target_labels, (tuple, list)) and len(self.target_labels) == 2:
            # a pair (from_url's options, a list from a config file): the same labels for every kind
            object.__setattr__(self, "target_labels", TargetLabels.of(self.target_labels))
        problems = self._problems()
        if problems:
            raise InvalidPrometheusConfig(problems)

    def _problems(self) -> list[tuple[str, str]]:
        """Every problem at once: (the field, what was expected and what was found)."""
        out = []
        try:
            parsed = urllib.parse.urlsplit(self.url)
            parsed.port  # noqa: B018 -- raises for a port that is not a number from 0 to 65535
        except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"
            out.append(("url", f"expected http(s)://host[:port][/prefix], got {redact_url(self.url)!r} ({exc})"))
        else:
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                out.append(("url", f"expected http(s)://host[:port][/prefix], got {redact_url(self.url)!r}"))
        if self.bearer_token_file and (self.basic_auth_user or self.basic_auth_password_file):
            out.append(("bearer_token_file and basic auth", "expected at most one of them, got both"))
        if bool(self.basic_auth_user) != bool(self.basic_auth_password_file):
            out.append(("basic_auth_user and basic_auth_password_file", "expected both or neither, got one"))
        if not _seconds_in(self.timeout_s, MAX_TIMEOUT_S):
            out.append(("timeout_s", f"expected seconds > 0 and <= {MAX_TIMEOUT_S:g}, got {self.timeout_s!r}"))
        if not (isinstance(self.retries, int) and self.retries >= 0):
            out.append(("retries", f"expected an integer >= 0, got {self.retries!r}"))
        if not self.backoff_s >= 0:
            out.append(("backoff_s", f"expected >= 0, got {self.backoff_s!r}"))
        if not (isinstance(self.max_concurrency, int) and self.max_concurrency >= 1):
            out.append(("max_concurrency", f"expected an integer >= 1, got {self.max_concurrency!r}"))
        if not (isinstance(self.target_labels, TargetLabels)
                and all(len(pair) == 2 and all(pair) for _, pair in self.target_labels.pairs)):
            out.append(("target_labels", f"expected (namespace label, name label), got {self.target_labels!r}"))
        return out

    @classmethod
    def from_url(cls, url: str, *, headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 **options) -> "PrometheusConfig":
        """``PrometheusConfig.from_url("http://prom:9090/", bearer_token_file=..., headers={...})``.

        Strips trailing slashes and accepts headers as a mapping. Other options are the fields.
        """
        items = tuple((headers or {}).items()) if isinstance(headers, Mapping) else tuple(headers or ())
        return cls(url=url.rstrip("/"), headers=tuple((str(k), str(v)) for k, v in items), **options)

    @property
    def safe_url(self) -> str:
        """The URL without any user:password part, fit for messages and logs."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        # No secret ever appears: the URL's userinfo is dropped and headers show by name only.
        shown = {f: getattr(self, f) for f in ("bearer_token_file", "basic_auth_user", "ca_file") if getattr(self, f)}
        extra = "".join(f", {k}={v!r}" for k, v in shown.items())
        names = ", ".join(k for k, _ in self.headers)
        return (f"PrometheusConfig(url={self.safe_url!r}{extra}, verify_tls={self.verify_tls}, "
                f"headers=[{names}], timeout_s={self.timeout_s}, retries={self.retries}, "
                f"backoff_s={self.backoff_s}, max_concurrency={self.max_concurrency}, "
                f"target_labels={self.target_labels})")


class InvalidPrometheusConfig(ValueError):
    """PrometheusConfig's problems, each ``(field, what was expected and found)``; a CLI words
    them with its own option names (``renamed``)."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = tuple(problems)
        super().__init__(self.renamed({}))

    def renamed(self, names: Mapping[str, str]) -> str:
        """The message with each field called by ``names[field]`` when it has one."""
        return "invalid Prometheus configuration: " + "; ".join(f"{names.get(f, f)}: {text}"
                                                                 for f, text in self.problems)


def _seconds_in(value, most: float) -> bool:
    """``value`` is a finite number of seconds in (0, most] (nan, inf and bools are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= most


def redact_url(url: str) -> str:
    """``https://user:pw@host/x`` -> ``https://host/x`` (a URL too broken to parse loses whatever
    stands before an ``@``, so that a message about it never shows a password)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises for a bad port, as netloc below would
    except ValueError:
        return re.sub(r"//[^/@]*@", "//", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------------------------
# Credentials read from files, re-read when the file changes
# --------------------------------------------------------------------------------------------

class FileSecret:
    """The stripped content of a file, re-read when its (inode, size, mtime) changes.

    Kubernetes rotates projected tokens by swapping a symlink: stat() follows it, so the inode
    changes and the next request carries the new token. The value is never logged or repr'd.
    """

    def __init__(self, path: str, what: str):
        self.path = path
        self.what = what
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""
        self._lock = threading.Lock()

    def value(self) -> str:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            with self._lock:
                if stamp != self._stamp:
                    with open(self.path, encoding="utf-8") as f:
                        self._value = f.read().strip()
                    self._stamp = stamp
                return self._value
        except OSError as exc:
            raise PrometheusError(f"cannot read the {self.what} file {self.path}: {exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"FileSecret({self.path!r})"


class BearerTokenFileAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` with the token read from a file on every request."""

    def __init__(self, path: str):
        self.token = FileSecret(path, "bearer token")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token.value()}"
        return request


class BasicAuthPasswordFile(requests.auth.AuthBase):
    """HTTP basic auth with the password read from a file on every request."""

    def __init__(self, user: str, password_file: str):
        self.user = user
        self.password = FileSecret(password_file, "basic auth password")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return requests.auth.HTTPBasicAuth(self.user, self.password.value())(request)


def auth_for(config: PrometheusConfig) -> requests.auth.AuthBase | None:
    if config.bearer_token_file:
        return BearerTokenFileAuth(config.bearer_token_file)
    if config.basic_auth_user:
        return BasicAuthPasswordFile(config.basic_auth_user, config.basic_auth_password_file)
    return None


# --------------------------------------------------------------------------------------------
# Mapping a result onto the targets (pure functions)
# --------------------------------------------------------------------------------------------

def parse_sample_value(text) -> float:
    """A sample value as Prometheus encodes it ("12", "NaN", "+Inf", "-Inf") -> float."""
    try:
        return float(text)
    except (TypeError, ValueError):
        raise PrometheusBadResponse(f"expected a sample value such as \"12\", \"NaN\" or \"+Inf\", got {text!r:.80}") \
            from None


def parse_sample(pair) -> tuple[float, float]:
    """``[timestamp_s, "value"]`` -> (timestamp_s, value)."""
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        raise PrometheusBadResponse(f"expected a sample [timestamp, \"value\"], got {pair!r:.80}")
    ts, value = pair
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        raise PrometheusBadResponse(f"expected a numeric sample timestamp, got {ts!r:.80}")
    return float(ts), parse_sample_value(value)


def samples_for_one(targets: Sequence[TargetRef], ts: float, value: float, at: float, what: str) -> Samples:
    """A single unlabelled value: it belongs to the target of a single-target policy only."""
    n = len(targets)
    if n == 0:
        return Samples.missing(0)
    if n > 1:
        raise PrometheusBadResponse(
            f"expected a vector with one series per target (labels matched per target), got {what} for "
            f"{n} targets; a scalar applies to a single-target policy only: aggregate with "
            f"'sum by (namespace, deployment) (...)' or similar")
    return Samples(values=np.array([value]), present=np.ones(1, bool), age_s=np.array([max(at - ts, 0.0)]),
                   conflict=np.zeros(1, bool))


def map_vector(result: list, targets: Sequence[TargetRef], at: float,
               labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS) -> Samples:
    """Map a vector result onto the targets by their kind's labels (``TargetIndex``: a
    Deployment's ``namespace`` and ``deployment``, a StatefulSet's ``namespace`` and
    ``statefulset`` by default; a pair: the same for every kind).

    result: the API's ``data.result`` list of ``{"metric": {...}, "value": [ts, "v"]}``.
    Returns Samples of shape (N,). Series matching no target are ignored (the query may cover
    more workloads than the policy); one series with none of the labels applies only to a
    single-target policy (else PrometheusBadResponse).
    """
    if not isinstance(result, list):
        raise PrometheusBadResponse(f"expected a list of series in a vector result, got {type(result).__name__}")
    index = TargetIndex(targets, labels)
    if len(result) == 1 and _is_unlabelled(result[0], index):
        ts, value = parse_sample(result[0].get("value"))
        return samples_for_one(targets, ts, value, at, "one series without the labels "
                                                       f"{'/'.join(map(repr, index.label_names))}")
    n = len(targets)
    count = np.zeros(n, np.int64)
    values = np.full(n, np.nan)
    stamps = np.full(n, at)
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(metric, dict):
            raise PrometheusBadResponse(f"expected a series {{\"metric\": {{...}}, \"value\": [...]}}, got {series!r:.120}")
        rows = index.rows(metric)
        if not rows:
            continue
        ts, value = parse_sample(series.get("value"))
        for i in rows:
            stamps[i], values[i] = ts, value
            count[i] += 1
    present, conflict = count == 1, count > 1
    values[~present] = np.nan  # a conflict is never averaged or picked: the target has no value
    age = np.where(present, np.maximum(at - stamps, 0.0), 0.0)
    return Samples(values=values, present=present, age_s=age, conflict=conflict)


def misnamed_target(result, targets: Sequence[TargetRef], present: np.ndarray,
                    labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS) -> str | None:
    """Why a target read nothing, when a series of ``result`` names it by another kind's name label
    (a StatefulSet's query grouped by ``deployment``, as policies were written before per-kind
    labels): one sentence naming the target, the label found and the two fixes; None otherwise.
    ``present`` (N,): which targets read a sample. Only looked for where some target is missing."""
    labels = TargetLabels.of(labels)
    # (another kind's name label, the target's namespace label, namespace, name) -> (target, its name label)
    wanted: dict[tuple[str, str, str, str], tuple[TargetRef, str]] = {}
    for i in np.flatnonzero(~np.asarray(present, bool)).tolist():
        t = targets[i]
        ns_label, name_label = labels.for_kind(t.kind)
        for _, (_, other) in labels.pairs:
            if other != name_label:
                wanted.setdefault((other, ns_label, t.namespace, t.name), (t, name_label))
    if not wanted or not isinstance(result, list):
        return None
    looks = list(dict.fromkeys((other, ns_label) for other, ns_label, _, _ in wanted))
    for series in result:  # one lookup per series and label pair: linear in the answer
        metric = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(metric, dict):
            continue
        for other, ns_label in looks:
            hit = wanted.get((other, ns_label, metric.get(ns_label), metric.get(other)))
            if hit is not None:
                t, name_label = hit
                return (f"no series names {t} by its labels ({ns_label}, {name_label}), and one names it by "
                        f"{other}=\"{t.name}\": a {t.kind}'s series are matched by {name_label}; group by "
                        f"({ns_label}, {name_label}), or run with --target-labels {t.kind.lower()}={ns_label},{other}")
    return None


def _is_unlabelled(series, index: TargetIndex) -> bool:
    metric = series.get("metric") if isinstance(series, dict) else None
    return isinstance(metric, dict) and index.unlabelled(metric)


#: The label that names a pod in per-pod series (cAdvisor, kube-state-metrics, metrics adapters).
POD_LABEL = "pod"


def pod_series_from_data(data, targets: Sequence[TargetRef], at: float,
                         labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS) -> PodSeries | Samples:
    """A vector whose series carry a ``pod`` label -> PodSeries (one sample per series, keyed
    by the namespace label and the pod); any other result -> Samples aligned with ``targets``,
    as ``samples_from_data`` (an expression that aggregates the pods away)."""
    result = data.get("result") if isinstance(data, dict) and data.get("resultType") == "vector" else None
    if not isinstance(result, list) or not any(
            isinstance(s, dict) and isinstance(s.get("metric"), dict) and POD_LABEL in s["metric"] for s in result):
        return samples_from_data(data, targets, at, labels)
    namespaces, pods, values, ages = [], [], [], []
    # the namespace label of the targets' kinds (a pair per kind may name it differently: the first held)
    ns_labels = tuple(dict.fromkeys(TargetLabels.of(labels).for_kind(t.kind)[0] for t in targets)) or ("namespace",)
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(metric, dict) or POD_LABEL not in metric:
            continue  # a series without a pod in a per-pod vector names no pod: not used
        ts, value = parse_sample(series.get("value"))
        namespaces.append(str(next((metric[x] for x in ns_labels if x in metric), "")))
        pods.append(str(metric[POD_LABEL]))
        values.append(value)
        ages.append(max(at - ts, 0.0))
    return PodSeries(tuple(namespaces), tuple(pods), np.asarray(values, np.float64), np.asarray(ages, np.float64))


def samples_from_data(data, targets: Sequence[TargetRef], at: float,
                      labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS) -> Samples:
    """The API's ``data`` object (resultType + result) -> Samples aligned with ``targets``."""
    if not isinstance(data, dict):
        raise PrometheusBadResponse(f"expected a 'data' object with resultType and result, got {data!r:.120}")
    kind = data.get("resultType")
    if kind == "vector":
        return map_vector(data.get("result"), targets, at, labels)
    if kind == "scalar":
        ts, value = parse_sample(data.get("result"))
        return samples_for_one(targets, ts, value, at, "a scalar")
    raise PrometheusBadResponse(f"expected resultType 'vector' (or 'scalar' for one target), got {kind!r}: an "
                                f"instant query must select instant values, not a range or a string")


# --------------------------------------------------------------------------------------------
# Range queries (pure functions)
# --------------------------------------------------------------------------------------------

#: Prometheus refuses a range query with more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
#: A range query's default deadline, in instant-query timeouts (``query_range``).
RANGE_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels, sample times (K,) epoch seconds and values (K,)."""

    labels: dict
    times: np.ndarray
    values: np.ndarray


def range_chunks(start_s: float, end_s: float, step_s: float, max_points: int) -> list[tuple[float, float]]:
    """[(lo, hi)] covering the grid start, start + step, ... <= end with at most ``max_points``
    grid points each; consecutive chunks do not share a point."""
    if max_points < 1:
        raise ValueError(f"max_points: expected >= 1, got {max_points}")
    points = int((end_s - start_s) // step_s) + 1
    out = []
    for first in range(0, points, max_points):
        last = min(first + max_points, points) - 1
        out.append((start_s + first * step_s, start_s + last * step_s))
    return out


_VALUES = '"values":['
_BRACKETS_AND_QUOTES = str.maketrans("", "", '[]"')


def decode_matrix_body(text: str) -> dict | None:
    """A range query's JSON body, each series' ``values`` decoded straight into a (K, 2) float array
    (times, values) without a Python object per sample (5x faster than ``json.loads`` then
    ``parse_matrix`` for 100 series of 2,880 points). None when the text is not in the shape
    Prometheus writes (the caller then decodes it the ordinary way).

    Safe to cut on the text: ``"values":[`` cannot occur inside a JSON string (its quotes would be
    escaped), and a values array ``[[t,"v"],...,[t,"v"]]`` holds no other ``]]``."""
    parts, arrays, pos = [], [], 0
    while (i := text.find(_VALUES, pos)) >= 0:
        start = i + len(_VALUES)
        end = text.find("]]", start)
        if end < 0 or text.startswith("]", start):
            return None
        parts += [text[pos:i], f'"values":{len(arrays)}']
        arrays.append(text[start:end + 1])
        pos = end + 2
    parts.append(text[pos:])
    try:
        body = json.loads("".join(parts))
        result = body["data"]["result"]
        for series in result:
            raw = arrays[series["values"]]
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a malformed number stops the parse with a warning
                numbers = np.fromstring(raw.translate(_BRACKETS_AND_QUOTES), sep=",")
            if numbers.size != 2 * raw.count("["):
                return None
            series["values"] = numbers.reshape(-1, 2)
    except (KeyError, TypeError, IndexError, ValueError, Warning):
        return None
    return body


def parse_matrix(data) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """A range query's ``data`` (resultType matrix) -> [(labels, times (K,), values (K,))]."""
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusBadResponse(f"expected resultType 'matrix' from a range query, got {kind!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusBadResponse(f"expected a list of series in a matrix result, got {type(result).__name__}")
    out = []
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        values = series.get("values") if isinstance(series, dict) else None
        if isinstance(metric, dict) and isinstance(values, np.ndarray):  # from decode_matrix_body
            out.append((metric, values[:, 0].copy(), values[:, 1].copy()))
            continue
        if not isinstance(metric, dict) or not isinstance(values, list):
            raise PrometheusBadResponse(f"expected a series {{\"metric\": {{...}}, \"values\": [...]}}, "
                                        f"got {series!r:.120}")
        try:
            times = np.fromiter((p[0] for p in values), dtype=np.float64, count=len(values))
            # as an instant query's: "NaN" and "+Inf" parse, null is no value
            numbers = np.fromiter((parse_sample_value(p[1]) for p in values), dtype=np.float64, count=len(values))
        except (TypeError, ValueError, IndexError, KeyError):
            raise PrometheusBadResponse(f"expected samples [timestamp, \"value\"], got {values[:2]!r:.120}") from None
        out.append((metric, times, numbers))
    return out


# --------------------------------------------------------------------------------------------
# The source
# --------------------------------------------------------------------------------------------

class _Retryable(Exception):
    """One attempt failed in a way a later attempt may not: carries the error to raise at the end."""

    def __init__(self, error: PrometheusError, retry_after_s: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.retry_after_s = retry_after_s


QUERY_PATH = "/api/v1/query"
QUERY_RANGE_PATH = "/api/v1/query_range"


#: The most bytes read of one answer, by API path: a 200 that declares more (Content-Length) is
#: refused before any of it is read, and one that sends more is refused at that byte
#: (PrometheusBadResponse, not retried). Unbounded, a 300 MB answer took 2.4 GB to decode.
#: - a range query: 1 GiB. The largest Setpoint asks for is one backtest segment, 2,880 samples
#:   (12 h at 15 s) per series; for 10,000 targets that is 28.8 M samples, which Prometheus writes
#:   in at most ~36 bytes each (a rate: ``[1793491200,"0.016666666666666666"],``; a gauge's
#:   ``[1793491200,"412.5"],`` is 21): 1.04 GB (0.97 GiB), plus ~100 bytes of labels per series.
#:   So a day of 15 s samples for 10,000 targets comes in two answers within the bound.
#: - an instant query: 64 MiB. One sample per series: 100,000 per-pod series (10,000 targets of
#:   10 pods) with cAdvisor's labels are ~300 bytes each, 30 MB; 2x headroom.
MAX_ANSWER_BYTES: Mapping[str, int] = {QUERY_RANGE_PATH: 1 << 30, QUERY_PATH: 64 << 20}
#: The most bytes read of an answer that is not a 200: its error message is in the first few.
ERROR_BODY_BYTES = 64 << 10
#: Bytes asked of the socket at a time while reading an answer.
READ_CHUNK_BYTES = 1 << 20


#: Seconds between this controller's clock and Prometheus' past which a warning is logged; far
#: above the estimate's error (the Date header is whole seconds, plus the answer's travel time).
CLOCK_SKEW_WARN_S = 10.0


def server_clock_skew_s(date_header: str | None, received_s: float) -> float | None:
    """This clock minus the server's: ``received_s`` (epoch seconds, when the answer's headers came
    in) against its HTTP Date header, which is truncated to the second (hence + 0.5). None when
    there is no readable Date."""
    if not date_header:
        return None
    try:
        server_s = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return received_s - (server_s + 0.5)


def query_api_response(client: PrometheusConnect, session: requests.Session, path: str, params: Mapping[str, str],
                       timeout_s: float) -> requests.Response:
    """GET ``client.url + path`` with ``params`` as the client's ``custom_query`` sends it (on
    ``session``, the one the client was built with, with the client's headers and auth), and
    return the response once its headers are in, its body unread (``stream``: read it with
    ``read_answer``). ``timeout_s`` applies to connecting and to each read; a ``Deadline``
    around the request and the reading bounds them all.

    Our own, small, because ``custom_query`` and ``custom_query_range`` (0.7.2) return only
    ``data.result``, which is not enough for this adapter's contract:
    - they drop ``resultType``: an instant query's scalar and string results have the same shape,
      and an empty matrix looks like an empty vector, yet the first is a value and the others are
      a policy error to report;
    - a 200 whose ``status`` is not ``success`` (proxies do send that) surfaces as a KeyError,
      without the ``error`` text;
    - a non-200 becomes ``PrometheusApiClientException("HTTP Status Code N (b'...')")``: status
      and body only inside a message, and no headers, so a 429's ``Retry-After`` is lost;
    - every sample of a range query becomes Python lists and strings, where the backtests decode
      the body text straight into numpy (``decode_matrix_body``, issue #10: 5x faster);
    - they read the whole body, however long it takes and however large it is.
    """
    # verify and cert passed explicitly, as the client does: else requests lets REQUESTS_CA_BUNDLE
    # or CURL_CA_BUNDLE from the environment override the session's CA bundle.
    return session.request("GET", f"{client.url}{path}", params=params, headers=client.headers,
                           auth=client.auth, verify=session.verify, cert=session.cert, timeout=timeout_s,
                           stream=True)


def read_answer(response: requests.Response, deadline: "Deadline", limit: int) -> bytearray:
    """The body of a streamed ``response``, read by ``deadline``: at most ``limit`` bytes of a 200
    (more raises PrometheusBadResponse, before reading when Content-Length says so), the first
    ``ERROR_BODY_BYTES`` of any other status (enough for its message). Raises requests' errors,
    or _Retryable when the deadline passes."""
    ok = response.status_code == 200
    cap = limit if ok else ERROR_BODY_BYTES
    declared = _content_length(response)
    if ok and declared is not None and declared > cap:
        raise PrometheusBadResponse(_too_large(f"{declared:,} bytes (its Content-Length)", cap))
    body = bytearray()
    for chunk in response.iter_content(READ_CHUNK_BYTES):
        body += chunk
        if len(body) > cap:
            if not ok:
                return body[:cap]
            raise PrometheusBadResponse(_too_large(f"more than {cap:,} bytes", cap))
        if deadline.passed:  # the watchdog stops a read that blocks; this, one that trickles
            raise deadline.error()
    if deadline.fired:  # its shutdown can look like the end of an answer that has no length
        raise deadline.error()
    return body


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None


def _too_large(found: str, cap: int) -> str:
    most = f"{cap >> 20:,} MiB" if cap % 2**20 == 0 else f"{cap:,} bytes"
    return (f"expected an answer of at most {most} (the most this client reads of one), got "
            f"{found}: ask for less: fewer series (narrower label matchers, or one series per workload: "
            f"'sum by (namespace, deployment) (...)'), or for a range query fewer steps (a shorter window)")


def response_body(response: requests.Response, body: bytes, *, decode_matrix: bool = False) -> tuple[object, str]:
    """(the parsed JSON ``body`` of ``response``, "") or (None, why it is not JSON). A non-200 that
    does not say it is JSON (an HTML error page) is not parsed: (None, ""). ``decode_matrix``: a
    range query's 200, tried with ``decode_matrix_body`` first."""
    if response.status_code != 200 and not response.headers.get("Content-Type", "").startswith("application/json"):
        return None, ""
    if decode_matrix:
        parsed = decode_matrix_body(body.decode("utf-8", "replace"))
        if parsed is not None:
            return parsed, ""
    try:
        return json.loads(body), ""
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, str(exc)


# --------------------------------------------------------------------------------------------
# One request within its deadline
# --------------------------------------------------------------------------------------------

_CURRENT = threading.local()  # .deadline: the Deadline of the request this thread is sending


class Deadline:
    """One HTTP request's deadline, ``timeout_s`` from now: at that moment the socket the request
    uses is shut down, so no read outlasts it, headers and body alike. (A socket timeout bounds
    each read, never a request: a server that sent one byte every 0.5 s held one for minutes.)

    ``with Deadline(timeout_s) as deadline:`` around sending the request and reading its answer,
    on the thread that sends it, over a session whose adapter is ``DeadlineAdapter``."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s
        self.connection = None  # the connection the request uses, and its socket (see _watch)
        self.sock: socket.socket | None = None
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        _CURRENT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.deadline = None
        with self._lock:
            self._done = True
        self._timer.cancel()

    @property
    def passed(self) -> bool:
        return self.fired or time.monotonic() >= self.at

    def error(self) -> "_Retryable":
        return _Retryable(PrometheusUnreachable(f"no complete answer within {round(self.timeout_s, 3):g}s"))

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self.sock is None or getattr(self.connection, "_setpoint_deadline", None) is not self:
                return  # not connected yet (connecting has its own timeout), or another request's now
            with contextlib.suppress(OSError):  # e.g. closed since: nothing left to stop
                # socket.socket's own shutdown, for TLS too: SSLSocket.shutdown would first drop
                # the TLS state the blocked reader is using. The read then ends at once.
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


def _watch(connection) -> None:
    """Tell the current request's Deadline (if any) that it uses ``connection`` and its socket
    (kept: http.client drops ``connection.sock`` once an answer says ``Connection: close``,
    while the body is still read from it)."""
    deadline = getattr(_CURRENT, "deadline", None)
    if deadline is not None:
        connection._setpoint_deadline = deadline
        deadline.connection = connection
        deadline.sock = connection.sock or deadline.sock


class _Watched:
    """A urllib3 connection that reports itself to the Deadline of the request using it, once
    connected (TLS connects before the request) and when it sends a request."""

    def connect(self):
        super().connect()
        _watch(self)

    def request(self, *args, **kwargs):
        _watch(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' HTTPAdapter whose connections report to the current request's Deadline, through
    an HTTP(S) proxy too (not SOCKS: its own pools)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


# The client's adapter must not retry: this module retries within one deadline. read=False,
# as in requests' own default, so a read timeout surfaces as ReadTimeout, not ConnectionError.
NO_RETRY = Retry(0, read=False)


class PrometheusSource:
    """``MetricsSource`` backed by a Prometheus server's instant-query API.

    ``query(expr, targets, at)``: one HTTP request (plus retries on transient failures).
    ``query_many(exprs, targets, at)``: the same for several expressions, at most
    ``config.max_concurrency`` in flight. ``requests_sent`` counts HTTP attempts.
    ``max_answer_bytes`` overrides ``MAX_ANSWER_BYTES`` by path.
    Thread-safe. Close it (or use ``with``) to release the connection pool and threads.
    """

    def __init__(self, config: PrometheusConfig | str, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 max_answer_bytes: Mapping[str, int] | None = None, wall: Callable[[], float] = time.time):
        self.config = PrometheusConfig.from_url(config) if isinstance(config, str) else config
        self._limits = {**MAX_ANSWER_BYTES, **(max_answer_bytes or {})}
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = self._configure_session(session or requests.Session())
        # The client owns the session: its url, headers and auth go into every request; its
        # retry adapter is told not to retry (this module retries within one deadline, below).
        self._client = PrometheusConnect(url=self.config.url, headers=dict(self.config.headers) or None,
                                         retry=NO_RETRY, auth=auth_for(self.config), session=self._session,
                                         timeout=self.config.timeout_s)
        # Mounted after the client's own adapter (same prefix, so it replaces it): still no
        # retries, a pool that holds a connection for each concurrent query, and connections a
        # Deadline can stop.
        self._session.mount(self.config.url, DeadlineAdapter(pool_maxsize=max(10, self.config.max_concurrency),
                                                             max_retries=NO_RETRY))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.requests_sent = 0
        self._stopping = threading.Event()  # stop_requests(): no new attempt is made
        self._misnamed_said: set[str] = set()  # queries a misnamed_target warning was logged for
        self._wall = wall
        self.clock_skew_s: float | None = None  # this controller's clock minus Prometheus' (its Date header)
        self._skew_said = False

    def stop_requests(self) -> None:
        """From now on no query attempt is made (PrometheusUnreachable: the metric is unknown,
        which holds): the controller is stopping."""
        self._stopping.set()

    def _configure_session(self, session: requests.Session) -> requests.Session:
        # verify: the CA bundle path when given; the client's disable_ssl is ignored for a
        # session passed in, so set it here.
        session.verify = self.config.ca_file if (self.config.verify_tls and self.config.ca_file) \
            else self.config.verify_tls
        # No gzip: compressing a range query's JSON is ~85 % of Prometheus' CPU for it (a 12 h chunk of
        # 100 series: 0.76 -> 0.12 CPU-s); the bytes saved matter little on a cluster network.
        session.headers["Accept-Encoding"] = "identity"
        return session

    # -- public API -------------------------------------------------------------------------
    def query(self, expr: str, targets: Sequence[TargetRef], at: float, *,
              labels: TargetLabels | tuple[str, str] | None = None) -> Samples:
        """Evaluate ``expr`` at ``at`` (UTC epoch seconds) for all ``targets`` in one request.

        Returns Samples of shape (N,) aligned with ``targets``. ``labels`` overrides
        ``config.target_labels`` for this call (a pair: for every kind, as the pods' checks'
        (namespace, pod)). Raises PrometheusUnreachable, PrometheusBadQuery
        or PrometheusBadResponse (all MetricsUnavailable).
        """
        at = round(float(at), 3)  # Prometheus works in milliseconds: stamps then equal ``at`` exactly
        data = self._fetch_instant(expr, at)
        try:
            samples = samples_from_data(data, targets, at, labels or self.config.target_labels)
        except PrometheusBadResponse as exc:
            raise PrometheusBadResponse(f"query {_short(expr)!r} at {self.config.safe_url}: {exc}") from None
        if not samples.present.all() and expr not in self._misnamed_said:
            self._say_misnamed(expr, data, targets, samples, labels or self.config.target_labels)
        return samples

    def _say_misnamed(self, expr: str, data, targets: Sequence[TargetRef], samples: Samples, labels) -> None:
        """Warn once per query when a target read nothing that a series names by another kind's
        label (``misnamed_target``): the metric then says only "missing" at every cycle."""
        result = data.get("result") if isinstance(data, dict) and data.get("resultType") == "vector" else None
        hint = misnamed_target(result, targets, samples.present | samples.conflict, labels)
        if hint is not None:
            self._misnamed_said.add(expr)  # a set only grows by the policies' queries: bounded
            log.warning("query %r: %s", _short(expr), hint, extra={"query": expr})

    def query_pods(self, expr: str, targets: Sequence[TargetRef], at: float) -> PodSeries | Samples:
        """The ``PodMetricsSource`` capability: evaluate ``expr`` once at ``at``; per-pod series
        when its series keep the ``pod`` label, else one value per target as ``query`` returns.
        Raises the same errors as ``query``."""
        at = round(float(at), 3)
        data = self._fetch_instant(expr, at)
        try:
            return pod_series_from_data(data, targets, at, self.config.target_labels)
        except PrometheusBadResponse as exc:
            raise PrometheusBadResponse(f"query {_short(expr)!r} at {self.config.safe_url}: {exc}") from None

    def query_many(self, exprs: Sequence[str], targets: Sequence[TargetRef], at: float, *,
                   labels: TargetLabels | tuple[str, str] | None = None,
                   return_exceptions: bool = False) -> list[Samples | MetricsUnavailable]:
        """``query`` for each expression, at most ``config.max_concurrency`` at once; results in order.

        One failing query does not stop the others. With ``return_exceptions`` False (default)
        the first failure in ``exprs`` order is raised once all have finished; with True, a
        failed query's slot holds its MetricsUnavailable instead of Samples.
        """
        results = self._each(lambda e: self.query(e, targets, at, labels=labels), exprs, MetricsUnavailable)
        if not return_exceptions:
            for r in results:
                if isinstance(r, MetricsUnavailable):
                    raise r
        return results

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float, *,
                    max_points: int = MAX_POINTS_PER_SERIES, timeout_s: float | None = None,
                    on_chunk: Callable[[int, int], None] | None = None) -> list[RangeSeries]:
        """Evaluate ``expr`` at ``start_s, start_s + step_s, ... <= end_s`` (UTC epoch seconds, whole
        seconds) with range queries of at most ``max_points`` points per series each (Prometheus
        refuses more than 11,000), and join the chunks per series.

        Returns one RangeSeries per label set (times (K,), values (K,)), in first-seen order.
        ``on_chunk(done, total)`` after each chunk. Each chunk is one query of its own deadline,
        ``timeout_s`` (all its attempts and waits; default ``RANGE_TIMEOUT_FACTOR`` x the
        instant-query timeout: a range query does more work). Raises PrometheusError subclasses.
        """
        start_s, end_s, step_s = float(round(start_s)), float(round(end_s)), float(step_s)
        if step_s < 1 or step_s != int(step_s):
            raise ValueError(f"step: expected whole seconds >= 1, got {step_s:g}")
        if end_s < start_s:
            raise ValueError(f"end ({end_s:.0f}) is before start ({start_s:.0f})")
        chunks = range_chunks(start_s, end_s, step_s, max_points)
        timeout_s = self.config.timeout_s * RANGE_TIMEOUT_FACTOR if timeout_s is None else timeout_s
        series: dict[tuple, tuple[dict, list, list]] = {}
        for done, (lo, hi) in enumerate(chunks, 1):
            for labels, times, values in self._range_chunk(expr, lo, hi, step_s, timeout_s):
                key = tuple(sorted(labels.items()))
                _, ts, vs = series.setdefault(key, (labels, [], []))
                ts.append(times)
                vs.append(values)
            if on_chunk:
                on_chunk(done, len(chunks))
        return [RangeSeries(labels, np.concatenate(ts), np.concatenate(vs)) for labels, ts, vs in series.values()]

    def query_range_many(self, exprs: Sequence[str], start_s: float, end_s: float,
                         step_s: float) -> list[list[RangeSeries]]:
        """``query_range`` for each expression over the same grid, at most
        ``config.max_concurrency`` at once; results in order. One failing query does not stop the
        others; the first failure in ``exprs`` order is raised once all have finished."""
        results = self._each(lambda e: self.query_range(e, start_s, end_s, step_s), exprs,
                             (MetricsUnavailable, ValueError))
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def _each(self, call: Callable, exprs: Sequence[str], caught) -> list:
        """``call(expr)`` for each expression, at most ``config.max_concurrency`` at once (one at a
        time for a single one); results in order, an exception of ``caught`` in its call's slot."""
        def one(expr: str):
            try:
                return call(expr)
            except caught as exc:
                return exc

        if len(exprs) <= 1 or self.config.max_concurrency == 1:
            return [one(e) for e in exprs]
        return list(self._executor().map(one, exprs))

    def _range_chunk(self, expr: str, lo: float, hi: float, step_s: float, timeout_s: float) -> list:
        """One range query's series, as ``parse_matrix`` returns them."""
        params = {"query": expr, "start": f"{lo:.0f}", "end": f"{hi:.0f}", "step": f"{step_s:.0f}s"}
        data = self._fetch(expr, QUERY_RANGE_PATH, params, timeout_s)
        try:
            return parse_matrix(data)
        except PrometheusBadResponse as exc:
            raise PrometheusBadResponse(f"query {_short(expr)!r} at {self.config.safe_url}: {exc}") from None

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self._client.close()

    def __enter__(self) -> "PrometheusSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrometheusSource({self.config!r})"

    # -- one query: attempts within a deadline ------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="prometheus-query")
            return self._pool

    def _fetch_instant(self, expr: str, at: float):
        return self._fetch(expr, QUERY_PATH, {"query": expr, "time": f"{at:.3f}"})

    def _fetch(self, expr: str, path: str, params: dict[str, str], timeout_s: float | None = None):
        """The ``data`` object of a successful answer of the query API at ``path`` (``QUERY_PATH``
        or ``QUERY_RANGE_PATH``) to ``params``, retrying transient failures until the deadline
        (``timeout_s``, default ``config.timeout_s``, all attempts and waits included)."""
        cfg = self.config
        total_s = cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total_s
        last: _Retryable | None = None
        attempts = 0
        for attempt in range(cfg.retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._stopping.is_set():
                raise PrometheusUnreachable(f"query {_short(expr)!r} at {cfg.safe_url}: not sent, the controller is "
                                            f"stopping") from None
            attempts += 1
            try:
                return self._attempt(expr, path, params, remaining)
            except _Retryable as exc:
                last = exc
            if attempt == cfg.retries:
                break
            wait = self._backoff_s(attempt, last.retry_after_s)
            if wait >= deadline - time.monotonic():
                break  # the next attempt could not finish in time: say so now
            log.debug("prometheus query failed (%s); retry %d/%d in %.2fs", last, attempt + 1, cfg.retries, wait)
            self._sleep(wait)
        raise PrometheusUnreachable(gave_up_message(expr, cfg.safe_url, attempts, total_s, last)) from None

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter in [0.5, 1] of it; at least the server's Retry-After."""
        wait = self.config.backoff_s * (2 ** attempt) * self._rng.uniform(0.5, 1.0)
        return max(wait, retry_after_s or 0.0)

    def _attempt(self, expr: str, path: str, params: dict[str, str], timeout_s: float):
        """One HTTP request, answer read whole within ``timeout_s``. Returns ``data``; raises
        _Retryable or a permanent PrometheusError."""
        with self._count_lock:
            self.requests_sent += 1
        # Prometheus' own "timeout" makes it stop evaluating when we stop waiting.
        params = {**params, "timeout": f"{timeout_s:.3f}"}
        where = f"query {_short(expr)!r} at {self.config.safe_url}"
        with Deadline(timeout_s) as deadline:
            try:
                response, body = self._exchange(path, params, deadline)
            except requests.exceptions.RequestException as exc:
                raise self._transport_error(exc, deadline, where) from None
            except PrometheusBadResponse as exc:  # an answer too large to read
                raise PrometheusBadResponse(f"{where}: {exc}") from None
        return self._data_from(response, body, path, where)

    def _exchange(self, path: str, params: dict[str, str], deadline: Deadline) -> tuple[requests.Response, bytes]:
        """The response to one request and its whole body (``read_answer``); the response is closed."""
        response = query_api_response(self._client, self._session, path, params, deadline.timeout_s)
        self._note_clock_skew(server_clock_skew_s(response.headers.get("Date"), self._wall()))
        try:
            return response, read_answer(response, deadline, self._limits[path])
        finally:
            response.close()

    def _note_clock_skew(self, skew_s: float | None) -> None:
        """Keep the latest skew; warn once when it passes CLOCK_SKEW_WARN_S, and once when it is back
        under half of it. Queries are evaluated at this controller's clock: ahead of Prometheus', a
        rate() over [1m] covers a minute partly in Prometheus' future and reads low (a scale-down
        nobody asked for); behind it, every reading is that much older."""
        if skew_s is None:
            return
        self.clock_skew_s = skew_s
        if abs(skew_s) > CLOCK_SKEW_WARN_S and not self._skew_said:
            self._skew_said = True
            side = "ahead of" if skew_s > 0 else "behind"
            log.warning("this controller's clock is %.0f s %s Prometheus' (%s, its Date header): queries are evaluated "
                        "at this clock, so readings are off (%s); fix the clock (NTP)", abs(skew_s), side,
                        self.config.safe_url, "a rate() reads low, part of its range in Prometheus' future"
                        if skew_s > 0 else "each reading is that much older", extra={"clock_skew_s": round(skew_s, 1)})
        elif abs(skew_s) < CLOCK_SKEW_WARN_S / 2 and self._skew_said:
            self._skew_said = False
            log.warning("this controller's clock agrees with Prometheus' again (%.1f s apart)", skew_s,
                        extra={"clock_skew_s": round(skew_s, 1)})

    @staticmethod
    def _transport_error(exc: requests.exceptions.RequestException, deadline: Deadline, where: str) -> Exception:
        """The error to raise for a request that failed in transport (nothing, or not all, came back)."""
        if deadline.passed or isinstance(exc, requests.exceptions.Timeout):
            return deadline.error()
        if isinstance(exc, requests.exceptions.SSLError):
            return PrometheusUnreachable(f"{where}: TLS failure (check ca_file / verify_tls): {_reason(exc)}")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return _Retryable(PrometheusUnreachable(f"cannot connect: {_reason(exc)}"))
        return PrometheusUnreachable(f"{where}: request failed: {_reason(exc)}")

    def _data_from(self, response: requests.Response, raw: bytes, path: str, where: str):
        """The ``data`` of a successful answer; else the error that classifies the response."""
        status = response.status_code
        body, body_error = response_body(response, raw, decode_matrix=status == 200 and path == QUERY_RANGE_PATH)
        if status != 200:
            raise self._status_error(status, response, raw, body, path, where)
        if not isinstance(body, dict):
            found = f"invalid JSON ({body_error})" if body_error else f"{type(body).__name__}"
            raise PrometheusBadResponse(f"{where}: expected the query API's JSON object, got {found}: "
                                        f"{_snippet(raw)!r}")
        if body.get("status") != "success":
            raise PrometheusBadResponse(f"{where}: expected status 'success', got {body.get('status')!r}"
                                        f"{_api_error(body)}")
        return body.get("data")

    def _status_error(self, status: int, response: requests.Response, raw: bytes, body, path: str,
                      where: str) -> Exception:
        detail = _api_error(body) if isinstance(body, dict) else f": {_snippet(raw)!r}"
        if status in BAD_QUERY_STATUS:
            return PrometheusBadQuery(f"{where}: Prometheus rejected the query (HTTP {status}){detail}")
        if status in RETRYABLE_STATUS:
            return _Retryable(PrometheusUnreachable(f"HTTP {status}{detail}"), _retry_after_s(response))
        if status in AUTH_STATUS:
            return PrometheusUnreachable(f"{where}: HTTP {status}: Prometheus refused our credentials (check "
                                         f"bearer_token_file / basic auth){detail}")
        return PrometheusBadResponse(f"{where}: expected HTTP 200 from the query API at {self.config.safe_url}"
                                     f"{path}, got HTTP {status}{detail}")


def _api_error(body: dict) -> str:
    """`` (errorType: error)`` from an API error envelope, or empty."""
    kind, error = body.get("errorType"), body.get("error")
    return f": {kind}: {str(error)[:SNIPPET_CHARS]}" if kind or error else ""


def _retry_after_s(response: requests.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not worth supporting here)."""
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _snippet(raw: bytes) -> str:
    return bytes(raw[:SNIPPET_CHARS]).decode("utf-8", "replace")


def gave_up_message(expr: str, url: str, attempts: int, total_s: float, last: object | None) -> str:
    """Why a query gave up: ``attempts`` made within its ``total_s`` seconds, and the last
    failure (None: the deadline left no time for an attempt)."""
    from controller.policy.summary import plural  # the policy layer: loaded on a failure only

    return (f"query {_short(expr)!r} at {url}: gave up after {plural(attempts, 'attempt')} within {total_s:g}s: "
            f"{last or 'no time left for an attempt'}")


def _short(expr: str) -> str:
    return expr if len(expr) <= SNIPPET_CHARS else expr[:SNIPPET_CHARS] + "..."


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, without the long wrapper chain."""
    inner = exc
    while inner.__cause__ is not None or (inner.__context__ is not None and not inner.__suppress_context__):
        inner = inner.__cause__ or inner.__context__
    text = str(inner) or type(inner).__name__
    return text[:SNIPPET_CHARS]


__all__ = ["PrometheusConfig", "InvalidPrometheusConfig", "PrometheusSource", "RangeSeries", "range_chunks",
           "parse_matrix", "MAX_POINTS_PER_SERIES", "MAX_ANSWER_BYTES", "MAX_TIMEOUT_S", "RANGE_TIMEOUT_FACTOR",
           "BearerTokenFileAuth", "BasicAuthPasswordFile", "FileSecret", "map_vector", "samples_from_data",
           "redact_url", "DEFAULT_TARGET_LABELS"]
