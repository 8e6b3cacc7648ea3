"""The publisher's outbox: bounded whatever the broker does, and every loss counted."""

from __future__ import annotations

from console.mqtt.outbox import Outbox


async def test_alarms_keep_their_order_within_the_bound_and_the_oldest_are_counted_lost() -> None:
    o = Outbox(10)
    for i in range(15):
        o.put_alarm("bfr/c/s/alarms", str(i).encode())
    assert [p for _, p in o.alarms] == [str(i).encode() for i in range(5, 15)]
    assert o.lost_alarms == 5 and o.wake.is_set()


async def test_states_keep_only_their_newest_message_and_count_the_replaced() -> None:
    o = Outbox(10)
    for i in range(1000):
        o.put_latest(f"bfr/c/s/cuffs/A{i % 4}", str(i).encode())
    o.put_latest("bfr/c/s/status", b"s", retain=True)
    assert len(o.latest) == 5 and o.dropped == 996
    got = [o.next_latest() for _ in range(5)]
    assert [g[1] for g in got if g] == [b"996", b"997", b"998", b"999", b"s"]
    assert got[-1] == ("bfr/c/s/status", b"s", True)
    assert o.next_latest() is None and o.empty()
