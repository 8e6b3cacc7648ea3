"""Helpers and fixtures for the link tests: the real emulator on a real pty, a spying port opener.

No tests in here; ``conftest.py`` registers its fixtures (``emu``, ``make_link``) for every test file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from drivers.codec import Event, LineReader
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from drivers.link import CuffLink
from drivers.link_errors import LinkState, LinkStateChange
from drivers.serial_port import open_port

LOPS = [180.0, 200.0, 220.0, 240.0]

# --------------------------------------------------------------------------- helpers


class Recorder:
    """A listener that keeps everything it is given."""

    def __init__(self) -> None:
        self.msgs: list[object] = []

    def __call__(self, msg: object) -> None:
        self.msgs.append(msg)

    def of(self, cls: type) -> list:
        return [m for m in self.msgs if isinstance(m, cls)]

    def states(self) -> list[LinkState]:
        return [m.state for m in self.of(LinkStateChange)]

    def events(self, code: str) -> list[Event]:
        return [m for m in self.of(Event) if m.code == code]


class WireSpy:
    """An ``open_port`` that opens the real port and records every body the link writes, and when."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.sent_at: list[float] = []
        """The event loop's time of each write (the link's own moment, before the controller reads it)."""
        self.readers: list[asyncio.StreamReader] = []
        self.opens = 0

    async def __call__(self, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await open_port(url)
        self.opens += 1
        self.readers.append(reader)
        real_write = writer.write

        def write(data: bytes) -> None:
            self.sent.append(data.decode("ascii").rsplit("*", 1)[0])
            self.sent_at.append(asyncio.get_running_loop().time())
            real_write(data)

        writer.write = write  # type: ignore[method-assign]
        return reader, writer

    def verbs(self) -> list[str]:
        """``VERB ARG...`` of every line sent, without the SEQ."""
        return [body.split(" ", 1)[1] for body in self.sent]

    def seqs(self) -> list[int]:
        return [int(body.split(" ", 1)[0][1:]) for body in self.sent]


def heard(fw: ControllerFirmware, at: list[float] | None = None) -> list[str]:
    """From now on, record ``VERB ARG...`` of every line the firmware receives (what reached it),
    and in ``at`` the event loop's time of each."""
    lines = LineReader()
    got: list[str] = []
    real = fw.receive

    def receive(data: bytes, now: float) -> None:
        bodies = [body.split(" ", 1)[1] for body in lines.feed(data)]
        got.extend(bodies)
        if at is not None:
            at.extend([asyncio.get_running_loop().time()] * len(bodies))
        real(data, now)

    fw.receive = receive  # type: ignore[method-assign]
    return got


def lost_reasons(rec: Recorder) -> list[str]:
    """The reasons of every LOST the link reported."""
    return [m.reason for m in rec.of(LinkStateChange) if m.state is LinkState.LOST]


async def until(cond: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Wait for a condition with a generous deadline (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Emu:
    fw: ControllerFirmware
    port: PtyEmulator
    path: str


@dataclass
class Rig:
    link: CuffLink
    spy: WireSpy
    rec: Recorder


@pytest.fixture
async def emu(tmp_path):
    fw = ControllerFirmware(channels=4, lops=LOPS, seed=0)
    port = PtyEmulator(fw, link_path=str(tmp_path / "cuff-ttyACM0"))
    path = await port.start()
    try:
        yield Emu(fw, port, path)
    finally:
        await port.stop()


@pytest.fixture
async def make_link(emu):
    links: list[CuffLink] = []

    async def make(url: str | None = None, **kwargs) -> Rig:
        spy, rec = WireSpy(), Recorder()
        link = CuffLink(url or emu.path, name="test", open_port=spy, **kwargs)
        link.add_listener(rec)
        links.append(link)
        await link.start()
        return Rig(link, spy, rec)

    yield make
    for link in links:
        await link.stop(deflate=False)
