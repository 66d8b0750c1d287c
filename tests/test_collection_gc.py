"""The garbage collector around collection (tests/conftest.py pytest_collection): off while
pytest collects, then on again with collection's survivors frozen, so that the collections the
tests trigger walk only what the tests make."""

from __future__ import annotations

import gc
import weakref


class Node:
    """An object that can sit in a reference cycle and be referred to weakly."""

    other: Node | None = None


def test_the_collector_is_on_during_the_tests_with_collection_frozen():
    assert gc.isenabled()
    assert gc.get_freeze_count() > 1_000  # the modules, test items and fixtures collection made


def test_forking_workers_keeps_the_frozen_heap_frozen():
    """A sweep or a parallel simulation freezes the heap while it forks its workers; it must not
    unfreeze what the suite froze (gc.unfreeze releases everything)."""
    from simulators.parallel import heap_frozen_for_forks

    before = gc.get_freeze_count()
    assert before > 0
    with heap_frozen_for_forks():
        assert gc.get_freeze_count() >= before
    assert gc.get_freeze_count() >= before


def test_a_cycle_a_test_makes_is_still_collected():
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
