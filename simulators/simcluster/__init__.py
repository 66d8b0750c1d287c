"""The vectorized simulated cluster, :class:`SimCluster`, one concern per module.

``SimCluster`` is one object (all state in numpy arrays shared by its methods); its methods are
grouped by concern into mixins, one per module:

- :mod:`.cluster`: the class, its constructor and the layout of its state.
- :mod:`.slots`: the ``(S, K)`` pod slot arrays, their flat views and the phase constants.
- :mod:`.engine`: per-service constants, aggregates of the pod slots, the tick (``step``) and
  its signals (``signals`` adds what metric faults hide).
- :mod:`.lifecycle`: pod phases over time (scheduling, startup, crash loops, memory thresholds).
- :mod:`.replicas`: creating and removing pods (``scale``, ``set_replicas``, ``delete_pod``).
- :mod:`.rollouts`: revisions, rolling updates, rollback and pause.
- :mod:`.statefulsets`: rows served as StatefulSets (``make_statefulset``): ordinal pods, ordered
  scaling, the StatefulSet controller's RollingUpdate with its partition.
- :mod:`.fault_injection`: applying :mod:`simulators.faults` at their start and end.
- :mod:`.readiness_probe`: load-sensitive readiness probes (a service that fails them while
  saturated goes dark: the overload spiral), through the readiness outages' hold.
- :mod:`.naming`: pod names.
- :mod:`.port`: reads and the controller's ``Cluster`` port (``view``, ``statuses``,
  ``resolve``, ``pod_arrays``, ``pod_signals``, ``apply``).

``simulators.cluster`` re-exports :class:`SimCluster`.
"""

from simulators.simcluster.cluster import SimCluster

__all__ = ["SimCluster"]
