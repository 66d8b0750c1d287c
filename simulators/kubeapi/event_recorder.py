"""Events as client-go's event recorder writes them (tools/record), for the simulated cluster's
own controllers (:mod:`simulators.kubeapi.cluster_events`).

Each source (component, host: ``deployment-controller``, ``kubelet`` on node ``sim-node-3``, ...)
has its own :class:`Correlator`, as each real component has its own broadcaster, which runs
client-go's EventCorrelator (tools/record/events_cache.go) before anything is written:

1. **aggregate**: events alike but for their message (same source, involved object, type and
   reason) are counted per :data:`AGGREGATE_WINDOW_S` (10 min, restarted by each one); from the
   :data:`AGGREGATE_MAX_MESSAGES`-th distinct message on, the event written is one
   ``(combined from similar events): <message>``, the same object each time (its count goes up).
   Upstream then forgets an arbitrary message of the 10 (Go's ``PopAny``); here the oldest.
2. **observe**: an event identical to one seen before (source, involved object with its
   fieldPath, type, reason, message) updates that Event: count + 1, lastTimestamp, the message,
   a new resourceVersion (a watch sees MODIFIED), with no time limit while the key is among the
   :data:`LRU_ENTRIES` last seen. An update of an Event gone since (expired by the TTL) creates it
   again under its name, its count going on, as client-go's ``recordEvent`` does after a 404.
3. **spam filter**: a token bucket per source, involved object and type (burst :data:`SPAM_BURST`, one
   more every 5 min) drops what is beyond it, updates included (the count then jumps).

An Event is written through the store's Event table (create, or update: the path of every API
write), so lists, watches (resumed ones too), field selectors and the ``--event-ttl`` expiry see
it as any other. Its name is ``<involvedObject.name>.<wall time in ns, hex>`` as client-go names
one, made unique (and deterministic for a given wall start) by never repeating the last one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from simulators.kubeapi import objects as K

#: Keys each of a correlator's caches keeps (client-go's maxLruCacheEntries).
LRU_ENTRIES = 4096
#: Distinct messages of alike events within the window before they are combined (defaultAggregateMaxEvents).
AGGREGATE_MAX_MESSAGES = 10
#: Seconds since the last alike event after which their count starts again (defaultAggregateIntervalInSeconds).
AGGREGATE_WINDOW_S = 600.0
#: Events a source may write about one object at once, then one per SPAM_REFILL_S (defaultSpamBurst, defaultSpamQPS).
SPAM_BURST = 25
SPAM_REFILL_S = 300.0
COMBINED_PREFIX = "(combined from similar events): "


@dataclass(frozen=True)
class Source:
    """An Event's ``source``: the component and, for a kubelet, its node."""

    component: str
    host: str = ""


class Lru(OrderedDict):
    """An LRU map of at most ``size`` keys (groupcache's lru.Cache, as client-go uses it)."""

    def __init__(self, size: int = LRU_ENTRIES):
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        if key not in self:
            return default
        self.move_to_end(key)
        return self[key]

    def add(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Aggregate:
    messages: dict  # the distinct messages seen (as an ordered set)
    last_s: float


@dataclass
class _Seen:
    count: int
    first: str | None  # firstTimestamp
    name: str


@dataclass
class _Bucket:
    tokens: float
    at_s: float


class Correlator:
    """client-go's EventCorrelator of one source: the three caches of the module docstring."""

    def __init__(self, lru_entries: int = LRU_ENTRIES):
        self.aggregates = Lru(lru_entries)
        self.seen = Lru(lru_entries)
        self.buckets = Lru(lru_entries)

    def aggregate(self, event: dict, now_s: float, new_name: Callable[[], str]) -> tuple[dict, tuple]:
        """EventAggregate: (the event to write, its key for :meth:`observe`)."""
        group = _group_key(event)
        record = self.aggregates.get(group)
        if record is None or now_s - record.last_s > AGGREGATE_WINDOW_S:
            record = _Aggregate({}, now_s)
        record.messages[event["message"]] = None
        record.last_s = now_s
        self.aggregates.add(group, record)
        if len(record.messages) < AGGREGATE_MAX_MESSAGES:
            return event, _event_key(event)
        del record.messages[next(iter(record.messages))]  # PopAny: here the oldest
        at = K.rfc3339(now_s)
        combined = {**event, "metadata": {**event["metadata"], "name": new_name()}, "count": 1,
                    "firstTimestamp": at, "lastTimestamp": at, "message": COMBINED_PREFIX + event["message"]}
        return combined, ("combined",) + group

    def observe(self, event: dict, key: tuple) -> tuple[dict, bool]:
        """eventObserve: the event as it will be written and whether it updates an existing one."""
        last = self.seen.get(key)
        update = last is not None and last.count > 0
        if update:
            event = {**event, "metadata": {**event["metadata"], "name": last.name}, "count": last.count + 1,
                     "firstTimestamp": last.first}
        self.seen.add(key, _Seen(event["count"], event["firstTimestamp"], event["metadata"]["name"]))
        return event, update

    def allow(self, event: dict, now_s: float) -> bool:
        """EventSourceObjectSpamFilter: whether the source's bucket for the object has a token."""
        key = _spam_key(event)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(SPAM_BURST), now_s)
        bucket.tokens = min(float(SPAM_BURST), bucket.tokens + max(0.0, now_s - bucket.at_s) / SPAM_REFILL_S)
        bucket.at_s = max(bucket.at_s, now_s)
        self.buckets.add(key, bucket)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def written(self, event: dict) -> None:
        """UpdateState: remember the Event as the server stored it."""
        self.seen.add(_event_key(event), _Seen(int(event.get("count") or 1), event.get("firstTimestamp"),
                                               event["metadata"]["name"]))


def _involved(event: dict) -> tuple:
    ref = event["involvedObject"]
    return (ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""),
            ref.get("apiVersion", ""))


def _source(event: dict) -> tuple:
    return event["source"].get("component", ""), event["source"].get("host", "")


def _event_key(event: dict) -> tuple:
    """getEventKey: source, involved object (with its fieldPath), type, reason, message."""
    return (_source(event) + _involved(event) + (event["involvedObject"].get("fieldPath", ""), event["type"],
                                                 event["reason"], event["message"]))


def _group_key(event: dict) -> tuple:
    """EventAggregatorByReasonFunc's aggregate key: the event key without the message and fieldPath
    (its reporting controller and instance are the source's component and host here: in it already)."""
    return _source(event) + _involved(event) + (event["type"], event["reason"])


def _spam_key(event: dict) -> tuple:
    """getSpamKey: source, involved object and type (client-go 1.31+: a Warning burst leaves the
    Normal events about the same object their own bucket)."""
    return _source(event) + _involved(event) + (event["type"],)


class EventRecorder:
    """Writes Events into ``table`` (the store's Event table; call under the store's lock) through
    one Correlator per source; ``now`` gives the wall time (epoch s) the Events show."""

    def __init__(self, table, now: Callable[[], float], lru_entries: int = LRU_ENTRIES):
        self.table = table
        self.now = now
        self.lru_entries = lru_entries
        self.correlators: dict[Source, Correlator] = {}
        self._last_ns = 0

    def _name(self, involved_name: str, now_s: float) -> str:
        ns = max(int(round(now_s * 1e9)), self._last_ns + 1)
        self._last_ns = ns
        return f"{involved_name}.{ns:x}"

    def record(self, involved: dict, event_type: str, reason: str, message: str, source: Source) -> dict | None:
        """Record one event about ``involved`` (an ObjectReference as client-go's GetReference makes
        it: kind, namespace, name, uid, apiVersion, resourceVersion, optionally fieldPath; a repeat
        counted on an Event keeps the resourceVersion of its first, as upstream's patch of count,
        lastTimestamp and message does): the Event written (created or updated; the stored
        object itself: read it, never change it), or None when the spam filter dropped it or the
        write failed."""
        now_s = self.now()
        at = K.rfc3339(now_s)
        src = {"component": source.component, **({"host": source.host} if source.host else {})}
        event = {"metadata": {"name": self._name(involved["name"], now_s), "namespace": involved["namespace"]},
                 "involvedObject": dict(involved), "reason": reason, "message": message, "source": src,
                 "firstTimestamp": at, "lastTimestamp": at, "count": 1, "type": event_type,
                 "reportingComponent": source.component, "reportingInstance": source.host}
        correlator = self.correlators.get(source)
        if correlator is None:
            correlator = self.correlators[source] = Correlator(self.lru_entries)
        event, key = correlator.aggregate(event, now_s, lambda: self._name(involved["name"], now_s))
        event, update = correlator.observe(event, key)
        if not correlator.allow(event, now_s):
            return None
        written = self._write(event, update)
        if written is not None:
            correlator.written(written)
        return written

    def _write(self, event: dict, update: bool) -> dict | None:
        """recordEvent: a patch of count, lastTimestamp and message when it updates one, else (or
        when that one is gone) a create under its name; None when the store refuses it."""
        namespace, name = event["metadata"]["namespace"], event["metadata"]["name"]
        try:
            if update and (namespace, name) in self.table.items:
                current = self.table.get(namespace, name)
                current.update(count=event["count"], lastTimestamp=event["lastTimestamp"], message=event["message"])
                return self.table.update(namespace, name, current, owned=True)
            body = {**event, "metadata": {"name": name}}  # built here: the table may keep it as it is
            return self.table.create(namespace, body, owned=True)
        except K.KubeApiError:  # a namespace gone, a name taken: upstream drops the event too
            return None
