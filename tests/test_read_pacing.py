"""Streaming ports are read on a shared tick, answers at once (drivers.read_pacing).

The pacer alone on a real event loop with stand-in transports, then the real link
against the emulator over a real pty: the samples all arrive, in fewer reads, and
no port is ever held while the link awaits an answer.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from drivers import read_pacing
from drivers.link import CuffLink
from drivers.link_connection import Listening
from drivers.read_pacing import ReadPacer, pacer_for
from tests.link_support import until


class Port:
    """A transport as the pacer sees it, recording what it was told."""

    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.resumed_at: list[float] = []

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True
        self.resumed_at.append(asyncio.get_running_loop().time())

    def is_closing(self) -> bool:
        return self.closing


async def test_ports_held_before_a_tick_all_read_again_on_it() -> None:
    loop = asyncio.get_running_loop()
    pacer = ReadPacer(loop, 0.05)
    a, b = Port(), Port()
    pacer.hold(a)
    pacer.hold(b)  # another port, while a's tick is pending: it joins that tick
    pacer.hold(b)  # again while held: nothing more
    assert not a.reading and not b.reading and pacer.holds(a) and pacer.holds(b)
    await until(lambda: a.reading and b.reading, "the tick")
    assert len(a.resumed_at) == len(b.resumed_at) == 1  # resumed once each, by the one tick below
    assert pacer.ticks == 1 and not pacer.holds(a)


async def test_release_reads_at_once_and_a_closed_port_is_left_alone() -> None:
    pacer = ReadPacer(asyncio.get_running_loop(), 0.1)
    a, b = Port(), Port()
    pacer.hold(a)
    pacer.hold(b)
    pacer.release(a)  # a command went out on a: its answer must not wait
    assert a.reading and not pacer.holds(a) and pacer.holds(b)
    pacer.release(a)  # not held: nothing
    b.closing = True  # the port vanished while held
    await until(lambda: pacer.ticks == 1, "the tick")
    assert not b.reading, "a closing transport must not be resumed"
    c = Port()
    c.closing = True
    pacer.hold(c)
    assert c.reading and not pacer.holds(c)  # never paused, never held


async def test_a_port_that_fails_to_read_again_leaves_the_others_reading(caplog: pytest.LogCaptureFixture) -> None:
    pacer = ReadPacer(asyncio.get_running_loop(), 0.02)
    broken, a, b = Port(), Port(), Port()

    def fail() -> None:
        raise OSError("the port's descriptor is gone")

    broken.resume_reading = fail  # type: ignore[method-assign]
    for port in (broken, a, b):
        pacer.hold(port)
    await until(lambda: pacer.ticks == 1, "the tick")
    assert a.reading and b.reading, "one port's failure left the others paused"
    assert "could not read again" in caplog.text
    pacer.hold(a)  # and the pacer still works
    await until(lambda: pacer.ticks == 2 and a.reading, "the next tick")


async def test_a_tick_reads_a_held_port_directly_and_only_a_quiet_one_goes_back_to_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A port that brings bytes on the tick stays paused (no pause, no resume: no event-loop work);
    one that brings nothing, or whose direct read fails, reads through the event loop again."""
    pacer = ReadPacer(asyncio.get_running_loop(), 0.02)
    streaming, quiet, broken = Port(), Port(), Port()
    reads = {"streaming": 0, "quiet": 0}

    def read_streaming() -> None:  # as the transport's read: bytes to the link, which holds the port again
        assert not streaming.reading, "a direct read must find its port still paused"
        reads["streaming"] += 1
        pacer.hold(streaming, read_streaming)

    def read_quiet() -> None:  # nothing came: the link is not called, nothing holds the port
        reads["quiet"] += 1

    def read_broken() -> None:
        raise OSError("read failed")

    pacer.hold(streaming, read_streaming)
    pacer.hold(quiet, read_quiet)
    pacer.hold(broken, read_broken)
    await until(lambda: pacer.ticks == 3, "three ticks")
    assert reads["streaming"] == 3 and pacer.holds(streaming)
    assert streaming.resumed_at == [] and not streaming.reading, "held through every tick, never resumed"
    assert reads["quiet"] == 1 and quiet.reading and len(quiet.resumed_at) == 1, "a quiet port waits on the loop"
    assert broken.reading and "direct read failed" in caplog.text, "a failed direct read falls back to the loop"
    pacer.release(streaming)  # a command goes out: its answer is read at once
    assert streaming.reading and not pacer.holds(streaming)


async def test_a_tick_cut_short_by_a_cancellation_hands_the_other_ports_back_to_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A link's handling that raises something above Exception inside the tick (a cancellation) ends it
    early: that port and the held ports it did not reach read through the event loop again instead of
    staying paused."""
    loop = asyncio.get_running_loop()
    pacer = ReadPacer(loop, 0.02)
    cancelled, after = Port(), Port()

    def read_cancelled() -> None:
        raise asyncio.CancelledError

    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))  # type: ignore[arg-type]
    try:
        pacer.hold(cancelled, read_cancelled)
        pacer.hold(after, lambda: None)
        await until(lambda: after.reading, "the port after the cancelled one reads again", timeout=2)
    finally:
        loop.set_exception_handler(None)
    assert not pacer.holds(after) and len(after.resumed_at) == 1
    assert cancelled.reading and not pacer.holds(cancelled), "the port whose handling was cut short stayed paused"


async def test_the_direct_read_is_the_pinned_transport_s_own_read(
    emu: Any, make_link: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real pty: the paced link reads its port on the ticks without going back to the event loop,
    gets every sample, and still reads an answer at once (pyserial-asyncio-fast's private read, pinned)."""
    from drivers.serial_port import direct_reader

    rig = await make_link(read_pace_s=0.02)
    link: CuffLink = rig.link
    await link.wait_ready(5.0)
    conn = link._conn
    assert conn is not None and conn.pacer is not None
    assert conn.read_now is not None, "pyserial-asyncio-fast's transport offers no direct read"
    assert direct_reader(object()) is None, "only that transport is read directly"
    resumes = [0]
    transport = conn.writer.transport
    real_resume = transport.resume_reading

    def counting() -> None:
        resumes[0] += 1
        real_resume()

    monkeypatch.setattr(transport, "resume_reading", counting)
    ticks0, samples0 = conn.pacer.ticks, link.stats.samples
    await asyncio.sleep(1.0)
    ticks, samples = conn.pacer.ticks - ticks0, link.stats.samples - samples0
    assert ticks >= 10 and samples >= 20, (ticks, samples)  # 50 and 100 on an idle machine
    assert resumes[0] <= ticks / 4, f"{resumes[0]} resumes in {ticks} ticks: the ticks did not read directly"
    assert link.stats.dropped.total == 0
    await asyncio.wait_for(link.set_target(1, 30), 1.0)  # the answer is read at once, not on a tick


def test_the_registry_lets_a_finished_loop_go() -> None:
    async def use() -> None:
        pacer_for(0.02).hold(Port())  # a tick still due when the loop ends

    before = len(read_pacing._PACERS)
    for _ in range(3):
        asyncio.run(use())
    gc.collect()
    assert len(read_pacing._PACERS) <= before


async def test_a_pace_outside_its_range_is_refused() -> None:
    loop = asyncio.get_running_loop()
    for bad in (0.0, -0.01, 0.5):
        with pytest.raises(ValueError, match="read pace"):
            ReadPacer(loop, bad)
    with pytest.raises(ValueError, match="read_pace_s"):
        CuffLink("/dev/null", read_pace_s=0.5)
    assert pacer_for(0.02) is pacer_for(0.02) and pacer_for(0.02) is not pacer_for(0.03)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads = [0]
    real = Listening.sink_data

    def counting(self: Listening, data: bytes) -> None:
        reads[0] += 1
        real(self, data)

    monkeypatch.setattr(Listening, "sink_data", counting)
    return reads


@pytest.mark.parametrize("pace", [0.0, 0.05], ids=["every byte at once", "paced 50 ms"])
async def test_a_paced_link_gets_every_sample_in_fewer_reads(
    emu: Any, make_link: Any, monkeypatch: pytest.MonkeyPatch, pace: float
) -> None:
    reads = _count_reads(monkeypatch)
    rig = await make_link(read_pace_s=pace)
    await rig.link.wait_ready(5.0)
    loop = asyncio.get_running_loop()
    start_reads, start_samples, t0 = reads[0], rig.link.stats.samples, loop.time()
    await until(lambda: rig.link.stats.samples - start_samples >= 100, "100 samples", timeout=15)
    took = loop.time() - t0
    n_reads = reads[0] - start_reads
    n_samples = rig.link.stats.samples - start_samples
    assert rig.link.stats.dropped.total == 0
    if pace:
        # a read per tick (plus the keepalive's answers): about 2 of the 100 Hz lines in each
        assert n_reads <= took / pace + 10 * took + 4, (n_reads, took)  # ticks, and a few answers read at once
        assert n_samples >= 1.5 * n_reads
    else:
        assert n_reads >= 0.25 * n_samples  # the lines come a read each (a busy machine may batch a few)


async def test_no_port_is_held_while_an_answer_is_awaited(
    emu: Any, make_link: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule the emergency's speed rests on, checked at every hold of a real run with commands in it."""
    rig = await make_link(read_pace_s=0.1)
    link: CuffLink = rig.link
    await link.wait_ready(5.0)
    held_while_awaiting: list[str] = []
    holds = [0]
    real_hold = ReadPacer.hold

    def checking(self: ReadPacer, port: Any, read: Any = None) -> None:
        holds[0] += 1
        if link._requests.awaiting:
            held_while_awaiting.append("hold with a command unanswered")
        real_hold(self, port, read)

    monkeypatch.setattr(ReadPacer, "hold", checking)
    conn = link._conn
    assert conn is not None and conn.pacer is not None
    for mmhg in (30, 40, 0):
        fut = asyncio.ensure_future(link.set_target(1, mmhg) if mmhg else link.deflate("ALL"))
        await asyncio.sleep(0)  # written now
        assert not conn.pacer.holds(conn.writer.transport), "a port written to must read its answer at once"
        await fut
        await asyncio.sleep(0.15)
    assert holds[0] > 0, "the port was never held: the check saw nothing"
    assert held_while_awaiting == []
    assert emu.fw.channel(1).target == 0


async def test_a_port_that_keeps_less_than_a_tick_loses_samples_not_the_link(
    emu: Any, make_link: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pacing's assumption broken on purpose: the other side keeps under a tick of stream.

    The emulator reads away its own backlog beyond 64 bytes (about two sample lines), while the
    link holds its port for up to 100 ms (about ten lines). Lines are lost there; what arrives is
    still used, nothing is acted on twice, commands are still answered at once, the link stays up.
    """
    from drivers.emulator import pty_port
    from drivers.link_errors import LinkState

    rig = await make_link(read_pace_s=0.1)
    link: CuffLink = rig.link
    await link.wait_ready(5.0)
    monkeypatch.setattr(pty_port, "STALE_BYTES", 64)
    discarded0, samples0 = emu.port.discarded_bytes, link.stats.samples
    await asyncio.sleep(1.0)
    assert emu.port.discarded_bytes > discarded0, "the buffer never overflowed: the test broke nothing"
    got = link.stats.samples - samples0
    print(f"{got} samples of about 100 arrived; the emulator discarded {emu.port.discarded_bytes - discarded0} bytes")
    assert 0 < got < 90, got  # some lines lost (100 sent), but samples still arrive
    assert link.state is LinkState.READY
    ok = await link.set_target(1, 30)  # an answer is never held: it comes back despite the small buffer
    assert ok.fields["target"] == "30"
    await link.deflate("ALL")
    assert emu.fw.channel(1).target == 0 and link.state is LinkState.READY
    assert link.stats.dropped.total == 0  # whole lines were lost, none arrived broken
