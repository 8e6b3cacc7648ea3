"""The station writes alarms, emergencies and commands to the records; broken records never stop it."""

from __future__ import annotations

from pathlib import Path

from console.records.store import Records
from console.station.station import Station
from tests.station_support import alarms, make_config, wait_for


async def test_alarms_emergencies_and_commands_reach_sqlite(tmp_path: Path) -> None:
    records = Records.open(tmp_path / "var")
    st = Station(make_config(tmp_path, controllers=2), records=records)
    await st.start()
    try:
        with st.acting_as("ssh:alice"):
            await st.inflate("A1", mmhg=70)
        await st.emulators["B"].unplug()
        await wait_for(lambda: alarms(st, "LINK_LOST"), "LINK_LOST")
        with st.acting_as("ssh:bob", "observer"):
            snap = await st.emergency_deflate()
        assert snap.pending == ("B",) and snap.by == "ssh:bob"
        await st.emulators["B"].replug()
        await wait_for(lambda: st.snapshot().emergency.pending == (), "B confirms", 15)
        await wait_for(lambda: not alarms(st, "LINK_LOST")[0].active, "B back", 10)
        await st.acknowledge()
        records.flush()
        causes = {(a.cause, a.controller_id) for a in records.alarms()}
        assert ("LINK_LOST", "B") in causes and ("DEFLATE_UNCONFIRMED", "B") in causes
        lost = [a for a in records.alarms() if a.cause == "LINK_LOST"][0]
        assert lost.cleared_at is not None and lost.acknowledged_at is not None
        [em] = records.emergencies()
        assert em.confirmed == ("A", "B") and em.pending == () and em.latency_s is not None
        whats = [(c.who, c.role, c.what) for c in records.commands()]
        assert ("ssh:alice", "operator", "inflate A1 70 mmHg") in whats
        assert ("ssh:bob", "observer", "EMERGENCY DEFLATE ALL") in whats
        assert em.by == "ssh:bob"
    finally:
        await st.stop()
        records.close()


class BrokenRecords:
    """Every write fails, as with a full or vanished disk."""

    def __getattr__(self, name: str):
        def fail(*args: object, **kw: object) -> None:
            raise OSError("disk full")

        return fail


async def test_failing_records_never_stop_the_station(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1), records=BrokenRecords())
    await st.start()
    try:
        await st.inflate("A1", mmhg=60)
        assert st.emulators["A"].firmware.channel(1).target == 60
        st.links["A"].keepalive_enabled = False
        await wait_for(lambda: alarms(st, "WDT"), "WDT alarm despite the records failing", 10)
        snap = await st.emergency_deflate()
        assert snap.confirmed == ("A",)
    finally:
        await st.stop()
