"""Engine bounds of a policy: what the schema accepts is what ``run`` and ``simulate`` can execute.

Every number in a policy is finite and within these bounds, so no compile step, array
allocation or scheduler trigger can overflow or run out of memory on a file that validates.
"""

from __future__ import annotations

#: Replicas of one workload (also pod counts and Pods rate policies). Kubernetes documents
#: clusters of up to 150,000 pods; 100,000 for one workload is beyond any real one and keeps
#: every replica computation exact in float64.
MAX_REPLICAS = 100_000
#: Longest duration anywhere in a policy (windows, holds, rollback memory): 30 days.
MAX_DURATION_S = 30 * 86400.0
#: Longest evaluation interval: one day (a controller that looks less often is not one).
MAX_INTERVAL_S = 86400.0
#: Largest magnitude of a metric target or threshold: finite, with room for tolerances.
MAX_VALUE = 1e15
#: Largest utilization target: 100% is the resource request, 10,000% a hundred times it.
MAX_UTILIZATION_PCT = 10_000.0
#: Largest Percent rate policy (1,000x per period).
MAX_RATE_PERCENT = 100_000
#: Healing budgets: each target keeps an event history of this many slots at most.
MAX_BUDGET = 1000
#: Most raw samples a smoothing window holds per target: window length / interval.
MAX_WINDOW_SAMPLES = 10_000
