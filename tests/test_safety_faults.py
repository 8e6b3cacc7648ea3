"""Safety when the controller misbehaves in ways the first emulator never did (issue 11).

Real Station, real links, in-process emulators on real ptys; time-based rules on a ManualClock
(the test steps the clock, waits for samples stamped after the step, then runs the rules).
Each test breaks one assumption the station used to make about the controller.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.common.api import CommandRefused, Priority
from console.common.clock import ManualClock
from console.records.store import Records
from console.records.writer import Write
from console.station.alarms import AlarmManager
from console.station.cuff import CuffSpec, CuffState
from console.station.limits import Limits
from console.station.station import Station
from console.station.supervisor import ControllerState, Supervisor
from console.therapy.manager import TherapyManager
from drivers.codec import Status
from drivers.emulator.firmware import ControllerFirmware
from tests.station_support import (
    SHORT_TIMEOUTS,
    alarms,
    cuff,
    inflate_and_hold,
    make_config,
    manual_station,
    step,
    wait_for,
)


async def test_a_leak_larger_than_the_pump_is_alarmed_although_the_cuff_never_holds(tmp_path: Path) -> None:
    """Assumption broken: a cuff that cannot reach its target reaches HOLDING some day."""
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        fw = st.emulators["A"].firmware
        fw.faults.leak[1] = 60.0  # the pump gives 60 mmHg/s only under about 55 mmHg (20-80 with its spread)
        await st.inflate("A1", mmhg=110)
        await wait_for(lambda: (cuff(st, "A1").pressure or 0) > 15, "the cuff filling as far as it can", 10)
        await step(st, clock, 5)
        assert alarms(st, "NOT_REACHED") == [], "the pump may still be on its way"
        await step(st, clock, 6)  # past the settle time (10 s)
        assert cuff(st, "A1").state == "INFLATING", "the controller never reports HOLDING"
        [short] = alarms(st, "NOT_REACHED")
        assert short.priority is Priority.MEDIUM and short.cuff == "A1" and "under its target 110" in short.message
        await st.deflate("A1")
        assert not alarms(st, "NOT_REACHED")[0].active
    finally:
        await st.stop()


def test_a_pump_flat_out_while_refilling_is_a_leak_whatever_state_the_controller_reports() -> None:
    """Assumption broken: a leaking cuff is HOLDING while its pump runs. Another maker's controller
    reports INFLATING while it refills against a leak; ours says HOLDING, so this one runs the rules
    on the status lines such a controller sends."""
    clock = ManualClock()
    alarm_mgr = AlarmManager(clock)
    cfg = make_config(Path("/nonexistent"), controllers=1)
    a1 = CuffState(CuffSpec("A1", "A", 1, "leg", "A1", 90.0, 15.0, 600.0, 900.0))
    ctrl = ControllerState("A", "emulator", (a1,))
    ctrl.link_state = "ready"
    sup = Supervisor(Limits(cfg.safety, cfg.station), alarm_mgr, {"A": ctrl}, lambda c, why: None)
    a1.new_target(110.0, 0.0)
    a1.add_sample(108.0, 0.0, 20.0)
    ctrl.last_sample_at = 0.0
    sup.on_sample(ctrl, 0.0)
    assert a1.reached
    for t in range(1, 10):  # refilling flat out, a C line a second, the pressure sagging
        a1.add_sample(108.0 - 2 * t, float(t), 20.0)
        ctrl.last_sample_at = float(t)
        a1.ctrl_state, a1.duty = "INFLATING", 100  # as the link reports set them before the rules run
        sup.on_status(ctrl, a1, Status(1, "INFLATING", 110.0, 100), float(t))
        sup.check(float(t))
    [leak] = [a for a in alarm_mgr.current() if a.cause == "LEAK"]
    assert leak.cuff == "A1" and "100 %" in leak.message


def test_the_first_fill_at_full_duty_is_not_a_leak() -> None:
    """The pump runs flat out on purpose while it fills (up to 8 s to 300 mmHg)."""
    clock = ManualClock()
    alarm_mgr = AlarmManager(clock)
    cfg = make_config(Path("/nonexistent"), controllers=1)
    a1 = CuffState(CuffSpec("A1", "A", 1, "leg", "A1", 90.0, 15.0, 600.0, 900.0))
    ctrl = ControllerState("A", "emulator", (a1,))
    ctrl.link_state = "ready"
    sup = Supervisor(Limits(cfg.safety, cfg.station), alarm_mgr, {"A": ctrl}, lambda c, why: None)
    a1.new_target(280.0, 0.0)
    for t in range(0, 9):
        a1.add_sample(30.0 * t, float(t), 20.0)
        ctrl.last_sample_at = float(t)
        a1.ctrl_state, a1.duty = "INFLATING", 100
        sup.on_status(ctrl, a1, Status(1, "INFLATING", 280.0, 100), float(t))
        sup.check(float(t))
    assert [a.cause for a in alarm_mgr.current()] == []


async def test_a_cuff_that_reaches_its_target_raises_no_not_reached(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await st.inflate("A1", mmhg=100)
        await wait_for(lambda: cuff(st, "A1").state == "HOLDING", "A1 holding", 15)
        await wait_for(lambda: st.cuffs["A1"].leak_since is None, "a status line after the fill", 5)
        await step(st, clock, 12)
        assert alarms(st) == []
    finally:
        await st.stop()


async def test_a_controller_swapped_behind_a_port_raises_a_high_alarm_and_drives_nothing(tmp_path: Path) -> None:
    """Assumption broken: the controller behind a port is the one that was there before (issue 11, item 2)."""
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        emu_a, fw_a, fw_b = st.emulators["A"], st.emulators["A"].firmware, st.emulators["B"].firmware
        impostor = ControllerFirmware(channels=2, lops=[190.0, 180.0], seed=9, serial=fw_b.serial)
        await emu_a.replug(firmware=impostor)  # USB renumbering: B's twin answers behind A's port
        await wait_for(lambda: alarms(st, "WRONG_CONTROLLER"), "WRONG_CONTROLLER alarm", 10)
        [wrong] = alarms(st, "WRONG_CONTROLLER")
        assert wrong.priority is Priority.HIGH and wrong.controller == "A"
        assert "EMU-B" in wrong.message and "EMU-A" in wrong.message, wrong.message
        assert not cuff(st, "A1").online
        with pytest.raises(CommandRefused):
            await st.inflate("A1", mmhg=80)
        assert [impostor.channel(ch).target for ch in (1, 2)] == [0.0, 0.0], "nothing reached the wrong controller"
        await emu_a.replug(firmware=fw_a)  # the right one is back
        await wait_for(lambda: cuff(st, "A1").online, "A back online", 10)
        assert not alarms(st, "WRONG_CONTROLLER")[0].active
        await st.inflate("A1", mmhg=80)
    finally:
        await st.stop()


async def test_without_a_lop_an_arm_goes_less_high_than_a_leg_and_a_lop_is_checked_for_its_limb(tmp_path: Path) -> None:
    """Assumption broken: one no-LOP limit suits every limb (120 mmHg is ~87 % of a typical arm LOP)."""
    st = Station(make_config(tmp_path, controllers=2))  # A1, A2 on legs; B1, B2 on arms
    await st.start()
    try:
        with pytest.raises(CommandRefused, match="arm cuff may go to at most 80 mmHg"):
            await st.inflate("B1", mmhg=100)
        await st.inflate("A1", mmhg=100)  # a leg: 120 without a LOP
        with pytest.raises(CommandRefused, match="not plausible for an arm"):
            await st.set_lop("B1", 280.0, position="seated", cuff_width_cm=None)
        await st.set_lop("A2", 280.0, position="seated", cuff_width_cm=None)  # plausible for a thigh
        with pytest.raises(CommandRefused, match="not plausible for a leg"):
            await st.set_lop("A2", 70.0, position="seated", cuff_width_cm=None)
        await st.set_lop("B1", 140.0, position="seated", cuff_width_cm=None)
        await st.inflate("B1", pct_lop=55.0)  # with its LOP known, the % LOP cap applies instead
    finally:
        await st.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_records_that_stop_writing_raise_an_alarm_and_refuse_new_sessions(tmp_path: Path) -> None:
    """Assumption broken: the records always write (a full disk, an SD card I/O error, a dead writer)."""
    records = Records.open(tmp_path / "var")
    clock = ManualClock()
    st = Station(make_config(tmp_path, controllers=1), clock=clock, records=records, check_interval_s=None)
    st.attach_sessions(TherapyManager(st, interval_s=None))
    await st.start()
    try:
        await step(st, clock, 1.1)
        assert alarms(st, "RECORDS") == []
        # A row the database refuses (as it would on SQLITE_FULL): counted, alarmed, then cleared by a good commit.
        records._put(Write("INSERT INTO no_such_table VALUES (?)", (1,)))
        await wait_for(lambda: records.health().failed_writes == 1, "the refused row counted")
        await step(st, clock, 1.1)
        [rec_alarm] = alarms(st, "RECORDS")
        assert rec_alarm.priority is Priority.MEDIUM and "1 row lost" in rec_alarm.message
        assert "no such table" in rec_alarm.message and "new sessions are refused" in rec_alarm.message
        with pytest.raises(CommandRefused, match="Records are not being written"):
            await st.start_session(["A1"], "tiny", "P-001")
        st.record_command("test", "a good row")  # the next commit works: records are back
        await wait_for(lambda: records.health().commits > 0 and records.health().queued == 0, "a commit")
        await step(st, clock, 1.1)
        assert not alarms(st, "RECORDS")[0].active
        # The writer dies: alarmed at once, and what was queued is said to be lost.
        records._put(Write(None, ()))  # type: ignore[arg-type]  # not an SQL error: kills the writer thread
        await wait_for(lambda: not records.health().writer_alive, "the writer dead")
        st.record_command("test", "a row the dead writer refuses")
        await step(st, clock, 1.1)
        [rec_alarm] = alarms(st, "RECORDS")
        assert rec_alarm.active and "writer has stopped" in rec_alarm.message and "2 rows lost" in rec_alarm.message
        await st.inflate("A1", mmhg=100)  # cuffs and alarms go on
    finally:
        await st.stop()
        records.close()


async def test_a_controller_that_answers_but_sends_no_samples_is_vented_and_the_alarm_says_how(tmp_path: Path) -> None:
    """Assumption broken: a controller that answers commands is one the station can see (issue 11, item 1)."""
    st, clock = await manual_station(tmp_path, controllers=1, safety=SHORT_TIMEOUTS)
    try:
        fw = st.emulators["A"].firmware
        await inflate_and_hold(st, "A1", 100)
        fw.faults.no_samples = True
        seen = st.controllers["A"].last_sample_at
        await asyncio.sleep(0.3)  # samples on their way before the fault have arrived; none after
        assert st.controllers["A"].last_sample_at == seen or fw.faults.no_samples
        clock.advance(0.6)  # past link_timeout_s (0.5) since the last sample
        st.check_now()
        assert cuff(st, "A1").target == 0, "the station deflated it at once"
        [lost] = alarms(st, "LINK_LOST")
        assert lost.priority is Priority.HIGH and "no samples" in lost.message
        assert "DEFLATE ALL was sent" in lost.message and "watchdog vents every channel within 3 s" in lost.message
        await wait_for(lambda: fw.channel(1).target == 0 and fw.channel(1).valve_open, "A1 vented on the controller")
        assert any("DEFLATE ALL A" in what for _, _, what in st.command_log()), "on record"
    finally:
        await st.stop()


async def test_a_deflate_the_controller_refuses_is_retried_alarmed_and_the_residual_pressure_seen(
    tmp_path: Path,
) -> None:
    """Assumption broken: a controller that answers always obeys DEFLATE (issue 11, item 3)."""
    st, clock = await manual_station(tmp_path, controllers=1, safety={"deflate_confirm_s": 0.5})
    try:
        fw = st.emulators["A"].firmware
        await inflate_and_hold(st, "A1", 100)
        fw.faults.deflate_refused.add(1)
        with pytest.raises(CommandRefused, match="did not confirm the deflate"):
            await st.deflate("A1")
        await step(st, clock, 1.0)  # past deflate_confirm_s on the station clock; the retries go on
        await wait_for(lambda: alarms(st, "DEFLATE_UNCONFIRMED"), "DEFLATE_UNCONFIRMED for A1")
        [unconfirmed] = alarms(st, "DEFLATE_UNCONFIRMED")
        assert unconfirmed.priority is Priority.HIGH and unconfirmed.cuff == "A1" and "BUSY" in unconfirmed.message
        assert fw.channel(1).target == 100, "the controller still holds it"
        await step(st, clock, 3.0)
        assert alarms(st, "RESIDUAL_PRESSURE") == [], "within the vent time"
        await step(st, clock, 3.0)  # past the vent time (5 s) with the cuff still up
        [residual] = alarms(st, "RESIDUAL_PRESSURE")
        assert (
            residual.priority is Priority.HIGH and residual.cuff == "A1" and "after it was deflated" in residual.message
        )
        fw.faults.deflate_refused.clear()  # the valve frees itself: the next retry lands
        await wait_for(lambda: fw.channel(1).target == 0, "a retried DEFLATE obeyed", 10)
        await wait_for(lambda: not alarms(st, "DEFLATE_UNCONFIRMED")[0].active, "confirmed at last", 10)
        await wait_for(lambda: (cuff(st, "A1").pressure or 99) < 15, "A1 vented", 10)
        await step(st, clock, 0.5)
        assert not alarms(st, "RESIDUAL_PRESSURE")[0].active
    finally:
        await st.stop()
