"""Safety review of alarms and the emergency deflater: no silent misses, no half-done bookkeeping."""

from __future__ import annotations

import asyncio

from console.common.api import Priority
from console.common.clock import ManualClock
from console.station.alarms import AlarmManager
from console.station.emergency import EmergencyDeflater


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
