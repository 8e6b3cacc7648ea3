"""Every way out of the station deflates every cuff first.

Signals: a real child process (``bfr-console serve``) drives emulated controllers that this test
serves on real ptys; cuffs are inflated over the station's socket, the child gets SIGTERM / SIGHUP / SIGINT,
and the emulators must report every channel vented by a DEFLATE, not by their own watchdog
(which would latch the channels and send ``E WDT``).
Exceptions, cancellation and a crashed supervisor are checked in-process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from console.common.api import Priority
from console.station import lifecycle
from console.station.station import Station
from drivers.codec import encode_command
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from tests.station_support import alarms, make_config, wait_for

REPO = Path(__file__).resolve().parent.parent


def write_config(path: Path, ports: dict[str, str]) -> None:
    lines = [
        "[station]",
        'name = "Signal test"',
        f'data_dir = "{path.parent / "var"}"',
        f'socket = "{path.parent / "var" / "bfr.sock"}"',
        "[safety]",
        "deflate_confirm_s = 1.0",
    ]
    for cid, port in ports.items():
        lines += ["[[controllers]]", f'id = "{cid}"', f'port = "{port}"', "channels = 2", "watchdog_ms = 2000"]
    for cid in ports:
        for ch in (1, 2):
            lines += ["[[cuffs]]", f'id = "{cid}{ch}"', f'controller = "{cid}"', f"channel = {ch}", 'limb = "leg"']
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
async def test_signal_deflates_every_channel_before_exit(tmp_path: Path, sig: signal.Signals) -> None:
    """``bfr-console serve`` as a real child; cuffs inflated the way a console does it, over the station's socket."""
    from console.remote.client import attach

    emus: dict[str, PtyEmulator] = {}
    events: list[str] = []
    for i, cid in enumerate(("A", "B")):
        fw = ControllerFirmware(channels=2, lops=[200.0, 190.0], seed=i + 1)
        fw.on_event = events.append
        emus[cid] = PtyEmulator(fw, link_path=str(tmp_path / f"tty{cid}"))
        await emus[cid].start()
    cfg = tmp_path / "config.toml"
    write_config(cfg, {cid: emu.path for cid, emu in emus.items()})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        "serve",
        "--config",
        str(cfg),
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    remote = None
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        while not any(line.startswith("STARTED") for line in seen):
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
            assert line, f"serve ended early: {seen}"
            seen.append(line)
        assert "STARTED A,B" in seen, seen
        remote = await attach(str(tmp_path / "var" / "bfr.sock"))
        await wait_for(lambda: all(c.online for c in remote.snapshot().cuffs), "every cuff online", 10)
        await remote.inflate("A1", mmhg=120)
        await remote.inflate("B1", mmhg=120)
        await remote.inflate("B2", mmhg=90)
        await wait_for(
            lambda: all(e.firmware.channel(1).pressure > 30 for e in emus.values()), "channels inflating", 10
        )
        proc.send_signal(sig)
        out = await asyncio.wait_for(proc.stdout.read(), 15)
        rc = await asyncio.wait_for(proc.wait(), 15)
        text = out.decode()
        assert rc == 0, text
        assert "DEFLATED confirmed=A,B pending=\n" in text, text  # the deflate went out and both confirmed
        assert f"STOPPED {sig.name}" in text, text
        for cid, emu in emus.items():
            for ch in (1, 2):
                view = emu.firmware.channel(ch)
                assert view.target == 0, (cid, ch, view)
                assert not view.latched, f"{cid}{ch} was vented by the watchdog, not by the station"
        assert not [e for e in events if e.startswith("E WDT")]
        await wait_for(
            lambda: all(e.firmware.channel(ch).state == "VENTED" for e in emus.values() for ch in (1, 2)),
            "every channel vented",
            10,
        )
    finally:
        if remote is not None:
            await remote.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for emu in emus.values():
            await emu.stop()


async def test_routine_exit_with_nothing_inflated_is_not_an_emergency(tmp_path: Path) -> None:
    from console.records.store import Records

    records = Records.open(tmp_path / "var")
    st = Station(make_config(tmp_path, controllers=1), records=records)
    task = asyncio.create_task(lifecycle.run_station_until_signal(st, signals=()))
    await wait_for(lambda: st.started and all(c.online for c in st.controllers.values()), "station up", 15)
    fw = st.emulators["A"].firmware
    st.emulators["A"].stop = _noop  # type: ignore[method-assign]
    try:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        records.flush()
        assert records.emergencies() == []
        assert fw.channel(1).target == 0 and fw.channel(2).target == 0
    finally:
        await PtyEmulator.stop(st.emulators["A"])
        records.close()


async def test_child_refuses_a_bad_config_before_opening_any_port(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[controllers]]\nid = "A"\nport = "nonsense"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.station.lifecycle",
        "--config",
        str(cfg),
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"config refused" in err and b"port" in err
    assert b"READY" not in out


async def test_cancellation_deflates_before_it_propagates(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    ready = asyncio.Event()
    task = asyncio.create_task(lifecycle.run_station_until_signal(st, on_ready=lambda s: ready.set(), signals=()))
    await asyncio.wait_for(ready.wait(), 15)
    fws = {cid: emu.firmware for cid, emu in st.emulators.items()}
    emus = dict(st.emulators)
    for emu in emus.values():  # keep the emulators up after the station stops, to look at them
        emu.stop = _noop  # type: ignore[method-assign]
    try:
        await st.inflate("A1", mmhg=80)
        await st.inflate("B2", mmhg=70)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert st.stopped
        assert fws["A"].channel(1).target == 0 and fws["B"].channel(2).target == 0
        assert not fws["A"].channel(1).latched
    finally:
        for emu in emus.values():
            await PtyEmulator.stop(emu)


async def test_a_crashed_supervisor_deflates_everything_and_stops(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    ready = asyncio.Event()
    stopped: list[str] = []
    task = asyncio.create_task(
        lifecycle.run_station_until_signal(
            st, on_ready=lambda s: ready.set(), on_stopped=lambda snap, why: stopped.append(why), signals=()
        )
    )
    await asyncio.wait_for(ready.wait(), 15)
    emu = st.emulators["A"]
    emu.stop = _noop  # type: ignore[method-assign]
    try:
        await st.inflate("A1", mmhg=80)

        def broken(now: float) -> None:
            raise RuntimeError("bug in a rule")

        st.supervisor.check = broken  # type: ignore[method-assign]
        why = await asyncio.wait_for(task, 15)
        assert why == "station fault" and stopped == ["station fault"]
        assert emu.firmware.channel(1).target == 0
        [fault] = alarms(st, "SUPERVISOR")
        assert fault.priority is Priority.HIGH
    finally:
        await PtyEmulator.stop(emu)


def backdoor_inflate(emu: PtyEmulator, ch: int, mmhg: int) -> None:
    """Inflate a channel behind the station's back, at the firmware, in the same instant the run blows up."""
    emu.firmware.receive(encode_command(60000 + ch, "SET", ch, mmhg), emu.now())


async def test_an_exception_during_the_run_deflates(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    kept: list[PtyEmulator] = []

    def on_ready(s: Station) -> None:
        emu = s.emulators["A"]
        emu.stop = _noop  # type: ignore[method-assign]
        kept.append(emu)
        # an inflated channel, then the code around the station blows up
        backdoor_inflate(emu, 2, 100)
        raise RuntimeError("console crashed")

    try:
        with pytest.raises(RuntimeError, match="console crashed"):
            await lifecycle.run_station_until_signal(st, on_ready=on_ready, signals=())
        assert st.stopped
        assert kept[0].firmware.channel(2).target == 0
    finally:
        for emu in kept:
            await PtyEmulator.stop(emu)


async def _noop() -> None:
    return None


def _python_handler(signum: int, frame: object) -> None:
    return None


@pytest.mark.parametrize(
    "before", [signal.SIG_DFL, signal.SIG_IGN, _python_handler], ids=["default", "ignored", "handler"]
)
def test_signal_handlers_are_removed_afterwards_and_what_was_there_is_back(before: Any) -> None:
    """Under ``nohup`` SIGHUP is ignored; asyncio's removal alone would reset it to SIG_DFL (found by .ci/stress)."""
    outer = signal.signal(signal.SIGHUP, before)
    try:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            got: list[signal.Signals] = []
            remove = lifecycle.install_signal_handlers(loop, got.append, (signal.SIGHUP,))
            assert signal.getsignal(signal.SIGHUP) != before
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(lambda: got, "SIGHUP delivered to the handler", 5)
            remove()
            assert got == [signal.SIGHUP]

        asyncio.run(main())
        assert signal.getsignal(signal.SIGHUP) == before
    finally:
        signal.signal(signal.SIGHUP, outer)
