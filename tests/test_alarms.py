"""Alarm manager rules: latch until cleared and acknowledged, no spam, bounded silence."""

from __future__ import annotations

import asyncio

import pytest

from console.common.api import Priority
from console.common.clock import ManualClock
from console.station.alarms import AlarmManager
from console.station.emergency import EmergencyDeflater


def make() -> tuple[AlarmManager, ManualClock, list[tuple[str, int]]]:
    clock = ManualClock()
    events: list[tuple[str, int]] = []
    mgr = AlarmManager(clock, silence_max_s=120, listener=lambda action, a: events.append((action, a.id)))
    return mgr, clock, events


def test_alarm_stays_until_cleared_and_acknowledged_in_either_order() -> None:
    mgr, _, _ = make()
    a = mgr.raise_alarm("LEAK", Priority.MEDIUM, "A1 leaks", cuff="A1")
    b = mgr.raise_alarm("LEAK", Priority.MEDIUM, "A2 leaks", cuff="A2")
    assert [s.id for s in mgr.current()] == [b.id, a.id]

    mgr.acknowledge(a.id)
    assert a.id in [s.id for s in mgr.current()], "acknowledged but still active: stays"
    mgr.clear_condition("LEAK", cuff="A1")
    assert a.id not in [s.id for s in mgr.current()]

    mgr.clear_condition("LEAK", cuff="A2")
    snap = [s for s in mgr.current() if s.id == b.id][0]
    assert not snap.active and not snap.acknowledged, "cleared but not acknowledged: stays"
    mgr.acknowledge(b.id)
    assert mgr.current() == ()
    assert [s.id for s in mgr.log()] == [b.id, a.id]


def test_same_condition_does_not_spam_and_reoccurs_on_the_same_alarm() -> None:
    mgr, _, events = make()
    first = mgr.raise_alarm("OFF_TARGET", Priority.MEDIUM, "A1 20 mmHg under", cuff="A1")
    for i in range(50):
        again = mgr.raise_alarm("OFF_TARGET", Priority.MEDIUM, f"A1 {20 + i} mmHg under", cuff="A1")
        assert again is first
    assert len(mgr.current()) == 1
    assert mgr.current()[0].message == "A1 69 mmHg under"
    assert events == [("raised", first.id)]

    mgr.clear_condition("OFF_TARGET", cuff="A1")
    mgr.raise_alarm("OFF_TARGET", Priority.MEDIUM, "back", cuff="A1")
    assert len(mgr.log()) == 1, "re-raised before acknowledgement: the same alarm again"
    assert mgr.current()[0].active

    mgr.clear_condition("OFF_TARGET", cuff="A1")
    mgr.acknowledge()
    third = mgr.raise_alarm("OFF_TARGET", Priority.MEDIUM, "new episode", cuff="A1")
    assert third.id != first.id, "after retirement a new episode is a new alarm"
    assert len(mgr.log()) == 2


def test_escalation_raises_priority_and_asks_for_a_new_acknowledgement() -> None:
    mgr, _, _ = make()
    a = mgr.raise_alarm("OFF_TARGET", Priority.MEDIUM, "under", cuff="A1")
    mgr.acknowledge(a.id)
    mgr.raise_alarm("OFF_TARGET", Priority.HIGH, "over", cuff="A1")
    snap = mgr.current()[0]
    assert snap.priority is Priority.HIGH and not snap.acknowledged
    # a lower report never lowers it
    mgr.raise_alarm("OFF_TARGET", Priority.LOW, "meh", cuff="A1")
    assert mgr.current()[0].priority is Priority.HIGH


def test_current_orders_by_priority_then_newest() -> None:
    mgr, clock, _ = make()
    low = mgr.raise_alarm("OCCLUSION_WARN", Priority.LOW, "x", cuff="A1")
    clock.advance(1)
    high = mgr.raise_alarm("WDT", Priority.HIGH, "x", controller="c")
    clock.advance(1)
    med = mgr.raise_alarm("LEAK", Priority.MEDIUM, "x", cuff="A2")
    clock.advance(1)
    high2 = mgr.raise_alarm("LINK_LOST", Priority.HIGH, "x", controller="d")
    assert [s.id for s in mgr.current()] == [high2.id, high.id, med.id, low.id]


def test_silence_is_capped_and_expires_with_the_clock() -> None:
    mgr, clock, _ = make()
    mgr.raise_alarm("WDT", Priority.HIGH, "x", controller="c")
    assert mgr.audible() is Priority.HIGH
    granted = mgr.silence(600)
    assert granted == 120
    snap = mgr.current()[0]
    assert snap.silenced_until == pytest.approx(clock.wall() + 120)
    assert mgr.audible() is None

    clock.advance(60)
    later = mgr.raise_alarm("LEAK", Priority.MEDIUM, "x", cuff="A1")
    assert mgr.audible() is Priority.MEDIUM, "a new alarm is not covered by an earlier silence"
    clock.advance(61)
    assert mgr.audible() is Priority.HIGH
    assert all(s.silenced_until is None for s in mgr.current())
    assert later.silenced_until_mono is None

    with pytest.raises(ValueError):
        mgr.silence(0)


def test_acknowledged_alarm_stops_the_bell_but_stays_listed() -> None:
    mgr, _, _ = make()
    a = mgr.raise_alarm("WDT", Priority.HIGH, "x", controller="c")
    mgr.acknowledge(a.id, who="nurse")
    assert mgr.audible() is None
    assert mgr.current()[0].acknowledged and mgr.current()[0].active


def test_unknown_or_retired_id_is_refused() -> None:
    mgr, _, _ = make()
    with pytest.raises(KeyError):
        mgr.acknowledge(42)
    a = mgr.raise_alarm("BOOT", Priority.HIGH, "x", controller="c")
    mgr.clear_condition("BOOT", controller="c")
    mgr.acknowledge(a.id)
    with pytest.raises(KeyError):
        mgr.acknowledge(a.id)


def test_current_is_cached_until_something_changes() -> None:
    mgr, _, _ = make()
    mgr.raise_alarm("LEAK", Priority.MEDIUM, "x", cuff="A1")
    first = mgr.current()
    assert mgr.current() is first
    mgr.raise_alarm("LEAK", Priority.MEDIUM, "y", cuff="A1")
    assert mgr.current() is not first
    assert mgr.current()[0].message == "y"


# ------------------------------------------------------------ Safety review of alarms and the emergency deflater: no silent misses, no half-done bookkeeping.


def test_a_silence_never_lasts_over_120_s_whatever_the_manager_was_given() -> None:
    clock = ManualClock()
    alarms = AlarmManager(clock, silence_max_s=600.0)
    alarms.raise_alarm("LEAK", Priority.MEDIUM, "leak", cuff="A1")
    assert alarms.silence(600.0) <= 120.0
    clock.advance(121.0)
    assert alarms.audible() is Priority.MEDIUM


def test_a_raising_listener_does_not_leave_alarms_half_acknowledged_or_unraised() -> None:
    clock = ManualClock()

    def bad(action, snap) -> None:
        raise RuntimeError("observer bug")

    alarms = AlarmManager(clock, listener=bad)
    alarms.raise_alarm("LEAK", Priority.MEDIUM, "leak", cuff="A1")  # must not raise into the supervisor
    alarms.raise_alarm("WDT", Priority.HIGH, "wdt", controller="A")
    alarms.clear_condition("LEAK", cuff="A1")
    acked = alarms.acknowledge(None, who="nurse")
    assert len(acked) == 2
    assert not alarms.is_open("LEAK", cuff="A1")  # cleared and acknowledged: retired
    assert alarms.is_open("WDT", controller="A")  # still present: stays until it clears
    assert alarms.audible() is None


def _broken_update(snap: object) -> None:
    raise RuntimeError("observer bug")


class _NeverConfirms:
    def __init__(self) -> None:
        self.calls = 0

    def deflate_all_now(self) -> asyncio.Future[object]:
        self.calls += 1
        return asyncio.get_running_loop().create_future()


async def test_every_unconfirmed_controller_is_retried_even_if_alarming_one_fails() -> None:
    def unconfirmed(cid: str) -> None:
        raise RuntimeError("alarm path broke")

    em = EmergencyDeflater(
        ManualClock(),
        confirm_s=0.05,
        on_unconfirmed=unconfirmed,
        on_confirmed=lambda cid: None,
        on_update=_broken_update,
    )
    links = {"A": _NeverConfirms(), "B": _NeverConfirms()}
    try:
        snap = await em.deflate_all(links, by="test")
        assert set(snap.pending) == {"A", "B"}
        assert set(em.retrying) == {"A", "B"}
    finally:
        await em.close()
