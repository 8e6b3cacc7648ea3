"""The emulator over a real pseudo-terminal, opened with pyserial-asyncio-fast, and as a program."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import serial
import serial_asyncio_fast

from drivers import codec
from drivers.codec import Event, LineReader, Ok, Report, Sample
from drivers.emulator.__main__ import apply_fault
from drivers.emulator.channel import Faults
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator, serve_emulator

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 10.0


class Host:
    """A bare host on a serial port: send framed commands, read parsed reports."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.lines = LineReader()
        self.seq = 0
        self.seen: list[Report] = []

    @classmethod
    async def open(cls, path: str) -> Host:
        r, w = await serial_asyncio_fast.open_serial_connection(url=path, baudrate=115200)
        return cls(r, w)

    def send(self, command: str) -> int:
        self.seq += 1
        self.writer.write(codec.frame(f"#{self.seq} {command}"))
        return self.seq

    async def next_report(self) -> Report:
        while True:
            if self.seen:
                return self.seen.pop(0)
            data = await self.reader.read(4096)
            if not data:
                raise EOFError("port closed")
            self.seen += [codec.parse_report(b) for b in self.lines.feed(data)]

    async def wait_for(self, pred: object, timeout: float = DEADLINE) -> Report:
        async def loop() -> Report:
            while True:
                r = await self.next_report()
                if pred(r):  # type: ignore[operator]
                    return r

        return await asyncio.wait_for(loop(), timeout)

    async def ask(self, command: str) -> Report:
        seq = self.send(command)
        return await self.wait_for(lambda r: isinstance(r, (Ok, codec.Err)) and r.seq == seq)

    def close(self) -> None:
        self.writer.close()


async def test_hello_and_stream_over_a_real_pty() -> None:
    emu = await serve_emulator(3, seed=2)
    try:
        assert os.path.realpath(emu.path).startswith("/dev/pts/")
        host = await Host.open(emu.path)
        hello = await host.ask("HELLO")
        assert isinstance(hello, Ok) and hello.fields["channels"] == "3" and hello.fields["proto"] == "1"
        assert await host.ask("STREAM 100") == Ok(2, {"hz": "100"})
        assert await host.ask("SET 2 60") == Ok(3, {"ch": "2", "target": "60"})
        samples: list[Sample] = []
        while len(samples) < 60:
            r = await host.wait_for(lambda r: isinstance(r, Sample))
            assert isinstance(r, Sample) and len(r.pressures) == 3
            samples.append(r)
        stamps = [s.uptime_ms for s in samples]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert max(s.pressures[1] for s in samples) > samples[0].pressures[1] + 5  # channel 2 is filling
        assert host.lines.drops.total == 0
        assert await host.ask("DEFLATE ALL") == Ok(host.seq, {"ch": "ALL"})
        assert emu.firmware.channel(2).valve_open
        host.close()
    finally:
        await emu.stop()


async def test_unplug_raises_on_the_host_then_replug_at_the_same_path(tmp_path: Path) -> None:
    link = str(tmp_path / "usb-EMU-4-if00")
    firmware = ControllerFirmware(channels=2, seed=3)
    emu = PtyEmulator(firmware, link_path=link)
    assert await emu.start() == link and emu.path == link
    first_target = os.readlink(link)
    try:
        host = await Host.open(link)
        assert isinstance(await host.ask("HELLO"), Ok)
        assert isinstance(await host.ask("WATCHDOG 300"), Ok)
        assert isinstance(await host.ask("SET 1 100"), Ok)
        await emu.unplug()
        assert not os.path.lexists(link)
        with pytest.raises((serial.SerialException, EOFError)):
            await asyncio.wait_for(host.wait_for(lambda r: False), DEADLINE)
        host.close()
        # the controller, left alone, keeps itself safe: its watchdog vents and latches
        for _ in range(int(DEADLINE / 0.05)):
            if firmware.channel(1).latched:
                break
            await asyncio.sleep(0.05)
        assert firmware.channel(1).latched and firmware.channel(1).valve_open
        await emu.replug()
        assert os.readlink(link) != "" and os.path.realpath(link).startswith("/dev/pts/")
        host = await Host.open(link)
        assert isinstance(await host.ask("HELLO"), Ok)
        status = await host.ask("SET 1 100")
        assert isinstance(status, codec.Err) and status.code == "LATCHED"
        host.close()
        await emu.replug(reboot=True)
        host = await Host.open(link)
        assert isinstance(await host.ask("SET 1 100"), Ok)  # the power cycle cleared the latch
        assert isinstance(await host.ask("DEFLATE ALL"), Ok)
        host.close()
    finally:
        await emu.stop()
    assert not os.path.lexists(link)
    assert first_target.startswith("/dev/pts/")


async def test_replug_can_bring_another_controller_behind_the_same_symlink(tmp_path: Path) -> None:
    """USB renumbering: after a replug the path a host knows answers as another controller."""
    link = str(tmp_path / "usb-cuff")
    first = ControllerFirmware(channels=2, seed=3, serial="CTL-1")
    other = ControllerFirmware(channels=4, seed=4, serial="CTL-2")
    emu = PtyEmulator(first, link_path=link)
    await emu.start()
    try:
        host = await Host.open(link)
        hello = await host.ask("HELLO")
        assert isinstance(hello, Ok) and hello.fields["serial"] == "CTL-1"
        host.close()
        await emu.unplug()
        assert await emu.replug(firmware=other) == link
        assert emu.firmware is other
        host = await Host.open(link)
        hello = await host.ask("HELLO")
        assert isinstance(hello, Ok) and hello.fields["serial"] == "CTL-2" and hello.fields["channels"] == "4"
        assert isinstance(await host.ask("SET 3 50"), Ok)
        assert other.channel(3).target == 50
        assert isinstance(await host.ask("DEFLATE ALL"), Ok)
        host.close()
    finally:
        await emu.stop()


async def test_port_nobody_reads_keeps_only_fresh_output(tmp_path: Path) -> None:
    emu = await serve_emulator(4, seed=1)
    try:
        host = await Host.open(emu.path)
        assert isinstance(await host.ask("STREAM 100"), Ok)
        host.close()
        for _ in range(int(DEADLINE / 0.05)):  # ~3 kB/s of samples with nobody reading
            if emu.discarded_bytes > 0:
                break
            await asyncio.sleep(0.05)
        assert emu.discarded_bytes > 0
        host = await Host.open(emu.path)
        hello = await host.ask("HELLO")  # answered, not stuck behind seconds of stale lines
        assert isinstance(hello, Ok)
        assert isinstance(await host.ask("STREAM 0"), Ok)
        host.close()
    finally:
        await emu.stop()


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
    return raw.decode().rstrip("\n")


async def test_program_prints_port_answers_and_says_bye_on_sigterm(tmp_path: Path) -> None:
    link = str(tmp_path / "emu0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.emulator",
        "--channels",
        "2",
        "--lop",
        "180,200",
        "--seed",
        "4",
        "--link",
        link,
        "--exercise",
        "2:2.0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = await _line(proc)
        assert first == f"PORT {link}"
        host = await Host.open(link)
        hello = await host.ask("HELLO")
        assert isinstance(hello, Ok) and hello.fields["channels"] == "2"
        assert isinstance(await host.ask("SET 1 50"), Ok)
        state = await _line(proc)
        assert state.startswith("STATE 1 INFLATING target=50 pressure=")
        float(state.rsplit("=", 1)[1])
        assert (await _line(proc)).startswith("STATE 1 HOLDING target=50 pressure=")
        host.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "BYE"


async def test_program_state_and_event_lines(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.emulator",
        "--channels",
        "1",
        "--fault",
        "broken:1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        port = await _line(proc)
        assert port.startswith("PORT /dev/pts/")
        host = await Host.open(port.split(" ", 1)[1])
        assert isinstance(await host.ask("PING"), Ok)
        lines = [await _line(proc), await _line(proc)]
        assert lines[0].startswith("STATE 1 FAULT target=0 pressure=-")
        assert lines[1] == "EVENT E SENSOR 1 reading=-100"
        event = await host.wait_for(lambda r: isinstance(r, Event) and r.code == "SENSOR")
        assert event == Event("SENSOR", 1, "reading=-100")
        host.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "BYE"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--channels", "9"], "channels must be 1..8"),
        (["--channels", "2", "--lop", "180"], "one LOP per channel"),
        (["--lop", "abc"], "comma-separated numbers"),
        (["--fault", "leak:7"], "leak needs a channel 1..4"),
        (["--fault", "teleport"], "unknown fault"),
        (["--fault", "samplechannels:0"], "samplechannels needs a count 1..12"),
        (["--fault", "deflaterefused:5"], "deflaterefused needs a channel 1..4"),
        (["--exercise", "x:y"], "CH:CADENCE"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
async def test_program_refuses_bad_options_with_exit_2(args: list[str], message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.emulator",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 2
    assert out == b""
    assert message in err.decode()


def test_blind_link_faults_have_program_spellings() -> None:
    faults = Faults()
    for spec in ("nosamples", "samplechannels:3", "deflaterefused:2", "deflatesilent:4"):
        apply_fault(faults, spec, 4)
    assert faults.no_samples and faults.sample_channels == 3
    assert faults.deflate_refused == {2} and faults.deflate_silent == {4}
