"""The console's start-up heap set aside from the cycle collector (console.common.heap)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from console.common import heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test process collects as before


class Node:
    """An object that can sit in a reference cycle."""

    other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settle_sets_what_is_alive_aside_and_still_collects_what_dies_later(unfrozen: None) -> None:
    kept = Node()
    kept.other = kept  # alive at settle: set aside, never walked again
    dead_before = cycle()  # garbage at settle: collected by it, not frozen with the rest
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count() > 1000, "the modules and classes of the process are set aside"
    assert dead_before() is None, "settle collects before it freezes: garbage is not kept for ever"
    walked = gc.get_objects()  # every generation the collector walks
    assert gc.is_tracked(kept) and not any(o is kept for o in walked), "a settled object is walked no more"
    dead_after = cycle()
    gc.collect()
    assert dead_after() is None, "cycles made after settle are collected as before"


async def test_settle_later_runs_on_the_loop_and_can_be_called_off(unfrozen: None) -> None:
    loop = asyncio.get_running_loop()
    off = heap.settle_later(loop, 0.01)
    off.cancel()
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0, "a cancelled settle never runs (the console ended first)"
    heap.settle_later(loop, 0.01)
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 1000


def test_what_dies_after_settle_in_a_cycle_it_was_part_of_is_kept_the_leak_the_module_accepts(
    unfrozen: None,
) -> None:
    """The assumption broken on purpose: a cycle alive at settle that dies later is never collected (while
    the process lives); only objects alive at settle can leak so, so the leak is bounded by the start-up heap."""
    node = Node()
    node.other = node  # a cycle, alive at settle
    ref = weakref.ref(node)
    heap.settle()
    del node  # dies after it
    gc.collect()
    assert ref() is not None, "set aside: the collector does not see it die"
    gc.unfreeze()
    gc.collect()
    assert ref() is None, "back in a generation, it is collected"
