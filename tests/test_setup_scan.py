"""The setup scan and the headless setup against emulated controllers on real ptys."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import tty
from pathlib import Path

import pytest
import serial  # type: ignore[import-untyped]
import serial_asyncio_fast

from console.config.loader import load_config
from console.setup import headless
from console.setup.scan import PortReport, find_ports, scan
from tests.link_support import heard
from tests.setup_support import bench


def by_port(reports: list[PortReport]) -> dict[str, PortReport]:
    return {r.port: r for r in reports}


async def test_scan_reports_each_port_and_why_not(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        got = heard(b.firmware["answering"])
        missing = str(tmp_path / "usb-gone")
        reports = by_port(await scan([b.answering, b.silent, b.busy, b.dup_a, b.dup_b, missing], timeout=1.0))
    ok = reports[b.answering]
    assert ok.usable and ok.info is not None
    assert (ok.info.model, ok.info.serial, ok.info.fw, ok.info.channels) == ("EMU-2", "GOOD-1", "1.0", 2)
    assert "EMU-2 serial GOOD-1 firmware 1.0, 2 channels" in ok.describe()
    assert reports[b.silent].kind == "silent" and "no answer" in reports[b.silent].problem
    assert reports[b.busy].kind == "busy" and "busy" in reports[b.busy].problem
    for dup, other in ((b.dup_a, b.dup_b), (b.dup_b, b.dup_a)):
        assert reports[dup].kind == "duplicate" and not reports[dup].usable
        assert other in reports[dup].problem and "TWIN" in reports[dup].problem
    assert reports[missing].kind == "missing"
    assert got and all(line == "HELLO" for line in got), got  # nothing that could inflate


async def test_scan_names_the_dialout_group_when_permission_is_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    """What pyserial raises opening a root-owned tty as a plain user, through the real open_port
    (the tests run as root here, so the refusal itself is stood in for at pyserial's call)."""

    async def refused(*args: object, **kwargs: object) -> None:
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB7: [Errno 13] Permission denied")

    monkeypatch.setattr(serial_asyncio_fast, "create_serial_connection", refused)
    (r,) = await scan(["/dev/ttyUSB7"])
    assert r.kind == "permission" and "add this user to the dialout group" in r.problem


async def test_scan_tells_a_foreign_device_from_a_silent_one(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    loop = asyncio.get_running_loop()

    def chatter() -> None:  # whatever it is told, it answers in its own language
        os.read(master, 4096)
        os.write(master, b"$GPGGA,123519,4807.038,N*47\r\n")

    loop.add_reader(master, chatter)
    try:
        (r,) = await scan([os.ttyname(slave)], timeout=1.0)
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    assert r.kind == "foreign" and "not a CUFF-LINK device" in r.problem


def test_find_ports_puts_by_id_first_and_one_path_per_device(tmp_path: Path) -> None:
    by_id, dev = tmp_path / "by-id", tmp_path / "dev"
    by_id.mkdir()
    dev.mkdir()
    for name in ("ttyACM0", "ttyACM1", "ttyUSB0"):
        (dev / name).touch()
    (by_id / "usb-Maker_Cuff_E0001-if00").symlink_to(dev / "ttyACM1")
    ports = find_ports(by_id=str(by_id), patterns=(str(dev / "ttyUSB*"), str(dev / "ttyACM*")))
    assert ports == [str(by_id / "usb-Maker_Cuff_E0001-if00"), str(dev / "ttyUSB0"), str(dev / "ttyACM0")]
    assert find_ports([str(dev / "ttyACM1"), str(by_id / "usb-Maker_Cuff_E0001-if00")]) == [str(dev / "ttyACM1")]


async def test_headless_writes_a_config_the_console_loads(tmp_path: Path) -> None:
    target = tmp_path / "station.toml"
    out, err = io.StringIO(), io.StringIO()
    async with bench(tmp_path) as b:
        ports = [b.answering, b.silent, b.busy, b.dup_a, b.dup_b]
        rc = await asyncio.to_thread(headless.run, ports, str(target), yes=False, timeout=1.0, out=out, err=err)
    assert rc == 0, err.getvalue()
    config = load_config(target)
    (ctl,) = config.controllers
    assert (ctl.port, ctl.serial, ctl.channels) == (b.answering, "GOOD-1", 2)
    assert [(c.id, c.channel, c.limb) for c in config.cuffs] == [("A1", 1, "leg"), ("A2", 2, "leg")]
    for left_out in (b.silent, b.busy, b.dup_a, b.dup_b):
        assert left_out in err.getvalue() and left_out not in target.read_text()
    assert "found" in out.getvalue() and b.answering in out.getvalue()


async def test_headless_replaces_a_file_only_with_yes_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "station.toml"
    old = '# my hand-written station\n[station]\nname = "Bay C"\n\n[[controllers]]\nid = "X"\nport = "emulator"\n'
    old += '[[cuffs]]\nid = "X1"\ncontroller = "X"\nchannel = 1\nlimb = "arm"\n'
    target.write_text(old)
    async with bench(tmp_path) as b:
        err = io.StringIO()
        rc = await asyncio.to_thread(headless.run, [b.answering], str(target), yes=False, out=io.StringIO(), err=err)
        assert rc == 1 and target.read_text() == old
        assert '-id = "X"' in err.getvalue() and '+serial = "GOOD-1"' in err.getvalue()  # the diff was shown
        rc = await asyncio.to_thread(headless.run, [b.answering], str(target), yes=True, out=io.StringIO(), err=err)
    assert rc == 0, err.getvalue()
    assert (tmp_path / "station.toml.bak").read_text() == old
    config = load_config(target)
    assert config.station.name == "Bay C"  # the old file's other sections are kept
    assert [c.serial for c in config.controllers] == ["GOOD-1"]


async def test_headless_writes_nothing_when_no_controller_answers(tmp_path: Path) -> None:
    target = tmp_path / "station.toml"
    async with bench(tmp_path) as b:
        err = io.StringIO()
        rc = await asyncio.to_thread(
            headless.run, [b.silent, b.busy], str(target), yes=True, timeout=0.5, out=io.StringIO(), err=err
        )
    assert rc == 1 and not target.exists()
    assert "no controller answered" in err.getvalue()
