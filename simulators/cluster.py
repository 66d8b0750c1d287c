"""The simulated cluster, vectorized across services: :class:`SimCluster` (see :mod:`simulators.simcluster`)."""

from simulators.simcluster import SimCluster

__all__ = ["SimCluster"]
