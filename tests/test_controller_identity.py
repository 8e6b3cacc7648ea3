"""Which controller is behind a port (issue 11, item 2): a swapped controller is refused, never driven.

Real CuffLinks against real emulators over real ptys. The swap is what USB renumbering does after a
replug or a reboot: another controller answers behind the same ``/dev/serial/by-id``-like symlink, and
without a check the leg cuff's patient, plan and % LOP would drive an arm.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.config.schema import ControllerConfig, EmulatorConfig
from console.station.connections import Connections, emulator_serial
from console.station.supervisor import ControllerState
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from drivers.link import CuffLink
from drivers.link_errors import LinkDown, LinkState, LinkStateChange, LinkTimeout
from tests.link_support import LOPS, Recorder, Rig, WireSpy, heard, until

FAST_BACKOFF = (0.05, 0.2)


def refusals(rec: Recorder) -> list[str]:
    return [m.reason for m in rec.of(LinkStateChange) if m.state is LinkState.REFUSED]


def targets(fw: ControllerFirmware) -> list[float]:
    return [fw.channel(ch).target for ch in range(1, fw.channels + 1)]


@dataclass
class Pair:
    """Two controllers, each behind its own symlink, as a station with two USB controllers has them."""

    a: PtyEmulator
    b: PtyEmulator

    async def swap(self) -> None:
        """Both unplugged, both back, each behind the other's symlink."""
        fw_a, fw_b = self.a.firmware, self.b.firmware
        await self.a.unplug()
        await self.b.unplug()
        await self.a.replug(firmware=fw_b)
        await self.b.replug(firmware=fw_a)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    a = PtyEmulator(
        ControllerFirmware(channels=4, lops=LOPS, seed=0, serial="EMU-A"), link_path=str(tmp_path / "usb-cuff-A")
    )
    b = PtyEmulator(
        ControllerFirmware(channels=4, lops=LOPS, seed=1, serial="EMU-B"), link_path=str(tmp_path / "usb-cuff-B")
    )
    await a.start()
    await b.start()
    try:
        yield Pair(a, b)
    finally:
        await a.stop()
        await b.stop()


MakeLink = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def link_on() -> AsyncIterator[MakeLink]:
    links: list[CuffLink] = []

    async def make(url: str, **kwargs: object) -> Rig:
        spy, rec = WireSpy(), Recorder()
        kwargs.setdefault("backoff", FAST_BACKOFF)
        link = CuffLink(url, name="leg", open_port=spy, **kwargs)  # type: ignore[arg-type]
        link.add_listener(rec)
        links.append(link)
        await link.start()
        return Rig(link, spy, rec)

    yield make
    for link in links:
        await link.stop(deflate=False)


# --------------------------------------------------------------------------- learned at first contact


async def test_learned_serial_refuses_a_swapped_controller_after_replug(pair: Pair, link_on: MakeLink) -> None:
    rig = await link_on(pair.a.path)
    await rig.link.wait_ready(5.0)
    assert rig.link.expected_serial == "EMU-A"  # learned from the first HELLO
    await rig.link.set_target(1, 40)
    fw_b = pair.b.firmware
    wrong_heard = heard(fw_b)

    await pair.swap()
    await until(lambda: rig.link.state is LinkState.REFUSED, "the swapped port refused")
    assert refusals(rig.rec) == [f"port {pair.a.path} answers as serial EMU-B, expected EMU-A"]
    # the caller still believes it drives the leg: nothing may reach the arm's controller
    with pytest.raises(LinkDown):
        await rig.link.set_target(1, 160)
    with pytest.raises(LinkDown):
        await rig.link.command("SET", 2, 160)
    with pytest.raises(LinkDown):
        rig.link.deflate_all_now()  # not even talking to it: the port is closed, its own watchdog keeps it safe
    with pytest.raises(LinkTimeout):
        await rig.link.wait_ready(0.3)
    # it keeps retrying (the right controller may come back), and keeps saying HELLO only, after a quiet
    # long enough for that controller's own watchdog to trip (tests/test_link_blind.py times it)
    await until(lambda: wrong_heard.count("HELLO") >= 2, "a HELLO retry on the refused port", timeout=8.0)
    assert set(wrong_heard) == {"HELLO"}
    assert targets(fw_b) == [0, 0, 0, 0]
    assert rig.link.state is LinkState.REFUSED
    assert len(refusals(rig.rec)) == 1, "one REFUSED report per episode, not one per retry"
    assert rig.link.info is not None and rig.link.info.serial == "EMU-A"  # the wrong HELLO is not taken as info


async def test_the_right_controller_coming_back_is_accepted_again(pair: Pair, link_on: MakeLink) -> None:
    rig = await link_on(pair.a.path)
    await rig.link.wait_ready(5.0)
    await pair.swap()
    await until(lambda: rig.link.state is LinkState.REFUSED, "the swapped port refused")

    await pair.swap()  # plugged back the right way round
    info = await rig.link.wait_ready(5.0)
    assert info.serial == "EMU-A" and rig.link.expected_serial == "EMU-A"
    assert rig.rec.states()[-1] is LinkState.READY
    await rig.link.set_target(1, 40)
    assert pair.a.firmware.serial == "EMU-A" and pair.a.firmware.channel(1).target == 40
    assert targets(pair.b.firmware) == [0, 0, 0, 0]
    await rig.link.deflate("ALL")


async def test_a_reboot_that_answers_with_another_serial_is_refused(pair: Pair, link_on: MakeLink) -> None:
    """The emulator's fault: after a power cycle the HELLO names another serial, on the same open port."""
    rig = await link_on(pair.a.path)
    await rig.link.wait_ready(5.0)
    fw = pair.a.firmware
    wire = heard(fw)
    fw.serial = "EMU-Z"
    fw.reboot(pair.a.now())
    await until(lambda: rig.link.state is LinkState.REFUSED, "the rebooted controller refused")
    assert refusals(rig.rec) == [f"port {pair.a.path} answers as serial EMU-Z, expected EMU-A"]
    with pytest.raises(LinkDown):
        await rig.link.set_target(1, 40)
    assert "SET" not in " ".join(wire) and "WATCHDOG" not in " ".join(wire) and "STREAM" not in " ".join(wire)
    assert targets(fw) == [0, 0, 0, 0]
    fw.serial = "EMU-A"
    await rig.link.wait_ready(5.0)


async def test_no_set_goes_out_after_a_reboot_until_the_controller_said_who_it_is(
    pair: Pair, link_on: MakeLink
) -> None:
    rig = await link_on(pair.a.path, answer_timeout=3.0)
    await rig.link.wait_ready(5.0)
    fw = pair.a.firmware
    fw.faults.slow_answer_s = 0.8  # the HELLO after the reboot waits for its answer
    fw.reboot(pair.a.now())
    await until(lambda: rig.rec.events("BOOT"), "E BOOT read")
    await until(lambda: "HELLO" in rig.spy.verbs()[3:], "HELLO asked again after the reboot")
    assert rig.link.state is LinkState.READY  # the station still sees its controller
    wire = heard(fw)
    with pytest.raises(LinkDown, match="not identified"):
        await rig.link.set_target(1, 40)
    assert "SET 1 40" not in wire
    fw.faults.slow_answer_s = 0.0
    await until(lambda: fw.stream_hz == 100, "set up again after the reboot")
    await rig.link.set_target(1, 40)  # identified again: inflating works
    assert fw.channel(1).target == 40
    await rig.link.deflate("ALL")


# --------------------------------------------------------------------------- pinned


async def test_a_pinned_serial_refuses_a_wrong_controller_at_first_connect(pair: Pair, link_on: MakeLink) -> None:
    wrong_heard = heard(pair.b.firmware)
    rig = await link_on(pair.b.path, serial="EMU-A")
    assert rig.link.expected_serial == "EMU-A"
    await until(lambda: rig.link.state is LinkState.REFUSED, "refused at first connect")
    assert refusals(rig.rec) == [f"port {pair.b.path} answers as serial EMU-B, expected EMU-A"]
    with pytest.raises(LinkTimeout):
        await rig.link.wait_ready(0.3)
    with pytest.raises(LinkDown):
        await rig.link.set_target(1, 40)
    assert set(wrong_heard) == {"HELLO"} and rig.link.info is None
    assert rig.link.expected_serial == "EMU-A"  # pinned: never replaced by what answered

    await pair.swap()  # now the pinned controller is behind that path
    info = await rig.link.wait_ready(5.0)
    assert info.serial == "EMU-A"


async def test_blank_pinned_serial_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CuffLink("/dev/null", serial=" ")


# --------------------------------------------------------------------------- exclusive ports


async def test_a_port_held_by_one_link_is_refused_to_another_as_in_use(pair: Pair, link_on: MakeLink) -> None:
    first = await link_on(pair.a.path)
    await first.link.wait_ready(5.0)
    # the same device under its other name: the pty the by-id-like symlink points at
    second = await link_on(os.path.realpath(pair.a.path))
    await until(lambda: second.rec.of(LinkStateChange), "the second link's first report")
    change = second.rec.of(LinkStateChange)[0]
    assert change.state is LinkState.LOST
    assert f"port {os.path.realpath(pair.a.path)} is in use by another program" in change.reason
    assert first.link.state is LinkState.READY
    await first.link.stop(deflate=False)  # the lock goes with the port
    await second.link.wait_ready(5.0)


# --------------------------------------------------------------------------- the station's connections


async def test_connections_pin_the_config_serial_and_the_emulator_serial(pair: Pair) -> None:
    configs = (
        ControllerConfig(id="arm", port="emulator", emulator=EmulatorConfig()),
        ControllerConfig(id="leg", port=pair.b.path, serial="LEG-0042"),  # pair.b answers as EMU-B
    )
    controllers = {c.id: ControllerState(c.id, c.port, ()) for c in configs}
    rec = Recorder()
    conns = Connections(configs, controllers, lambda ctrl: rec, ready_timeout_s=2.0)
    await conns.open()
    try:
        arm, leg = conns.links["arm"], conns.links["leg"]
        assert arm.state is LinkState.READY and arm.expected_serial == emulator_serial("arm") == "EMU-arm"
        await until(lambda: leg.state is LinkState.REFUSED, "the leg port refused")
        assert leg.expected_serial == "LEG-0042"
        assert f"port {pair.b.path} answers as serial EMU-B, expected LEG-0042" in refusals(rec)
        assert targets(pair.b.firmware) == [0, 0, 0, 0]
    finally:
        await conns.close()


async def test_link_stop_while_refused_sends_nothing(pair: Pair, link_on: MakeLink) -> None:
    wrong_heard = heard(pair.b.firmware)
    rig = await link_on(pair.b.path, serial="EMU-A")
    await until(lambda: rig.link.state is LinkState.REFUSED, "refused")
    await rig.link.stop(deflate=True)
    await asyncio.sleep(0.05)
    assert set(wrong_heard) == {"HELLO"}
