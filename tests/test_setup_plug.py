"""Plug and play: a controller on a port no config names is asked HELLO once and shown as a notice
(not an alarm) on the running console, whose ``S`` key opens the setup screen on it."""

from __future__ import annotations

from pathlib import Path

from console.setup.scan import PortReport, find_ports
from console.setup.watch import PortWatch
from console.ui.app import BfrApp
from console.ui.screens.setup import SetupScreen
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from tests.link_support import heard
from tests.ui_support import FakeStation, notices, press, screen_text, wait_for


async def test_a_new_controller_is_asked_once_and_a_configured_port_never(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    known_fw = ControllerFirmware(channels=1, serial="IN-CONFIG", seed=0)
    new_fw = ControllerFirmware(channels=2, serial="NEW-1", seed=0)
    known = PtyEmulator(known_fw, link_path=str(by_id / "usb-known"))
    new = PtyEmulator(new_fw, link_path=str(by_id / "usb-new"))
    await known.start()
    await new.start()
    try:
        to_known, to_new = heard(known_fw), heard(new_fw)
        found: list[PortReport] = []
        watch = PortWatch([known.path], found.append, list_ports=lambda: find_ports(by_id=str(by_id), patterns=()))
        await watch.check()
        await watch.check()
        assert [(r.port, r.info.serial if r.info else None) for r in found] == [(new.path, "NEW-1")]
        assert to_known == []  # the station's port is never opened by the watch
        assert to_new and set(to_new) == {"HELLO"}
        asked = len(to_new)
        await new.unplug()
        await watch.check()
        await new.replug()
        await watch.check()
        assert len(found) == 2 and len(to_new) > asked  # a replug is asked, and announced, again
    finally:
        await known.stop()
        await new.stop()


async def test_the_notice_and_its_key_open_setup_and_f12_still_deflates_everything(tmp_path: Path) -> None:
    fw = ControllerFirmware(channels=2, serial="NEW-2", seed=0)
    station = FakeStation()
    app = BfrApp(station)
    config = tmp_path / "config.toml"
    config.write_text('[[controllers]]\nid = "A"\nport = "emulator"\n')
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-new")) as emu:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            found: list[PortReport] = []
            watch = PortWatch([], found.append, list_ports=lambda: [emu.path])
            await watch.check()
            app.new_controllers.config_path = config
            app.new_controllers.announce(app, found[0])
            await pilot.pause(0.05)
            assert any("NEW-2" in n and "Press S" in n for n in notices(app)), notices(app)
            assert station.snapshot().alarms == ()  # a notice, not an alarm
            await press(pilot, "S")
            assert isinstance(app.screen, SetupScreen)
            await wait_for(pilot, lambda: "1 controller(s) answered" in screen_text(app), 10, "the setup's scan")
            assert "NEW-2" in screen_text(app) and "adding to config.toml" in screen_text(app)
            await press(pilot, "f12")
            assert not isinstance(app.screen, SetupScreen)
            assert [c.name for c in station.calls].count("emergency_deflate") == 1


async def test_f12_in_the_setup_app_stops_a_test_inflate_and_deflates(tmp_path: Path) -> None:
    from console.ui.setup_app import SetupApp

    fw = ControllerFirmware(channels=2, serial="T-9", seed=0)
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-t")) as emu:
        got = heard(fw)
        app = SetupApp([emu.path], timeout=1.0, write_to=str(tmp_path / "s.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "1 controller(s) answered" in screen_text(app), 10, "the scan")
            await press(pilot, "t")
            await wait_for(pilot, lambda: fw.channel(1).target > 0, 10, "the test inflate's SET")
            await press(pilot, "f12")
            await wait_for(pilot, lambda: fw.channel(1).target == 0, 10, "channel 1 deflated")
            await wait_for(pilot, lambda: not app.setup_screen.trial_running, 10, "the test to end")
            assert "Test stopped: deflate sent" in screen_text(app)
            assert "then deflated" not in screen_text(app)  # cut short, not the 3 s run to its end
    assert "DEFLATE 1" in got
