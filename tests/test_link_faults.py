"""The real CuffLink against the real emulator over a real pty: faults and their failure paths.

The last section is the safety review of the link: failure paths a patient would feel.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import tty

import pytest

from drivers.codec import LineReader, Ok, Sample, format_pressure, frame, ok_body, parse_command
from drivers.link import CuffLink
from drivers.link_connection import Connection
from drivers.link_errors import (
    CommandError,
    LinkDown,
    LinkError,
    LinkState,
    LinkTimeout,
    Superseded,
)
from drivers.link_hello import Identity
from drivers.link_setup import set_up
from tests.link_support import Recorder, lost_reasons, until


async def test_quiet_host_trips_watchdog_and_set_is_latched_until_clear(emu, make_link):
    rig = await make_link(watchdog_ms=300)
    await rig.link.wait_ready(5.0)
    await rig.link.set_target(1, 40)
    rig.link.keepalive_enabled = False  # the host goes quiet
    await until(lambda: rig.rec.events("WDT"), "E WDT")
    assert rig.rec.events("WDT")[0].channel is None
    assert emu.fw.channel(1).latched and emu.fw.channel(1).target == 0
    rig.link.keepalive_enabled = True
    with pytest.raises(CommandError) as refused:
        await rig.link.set_target(1, 40)
    assert refused.value.code == "LATCHED"
    assert (await rig.link.deflate(1)).fields == {"ch": "1"}  # DEFLATE is always accepted
    await rig.link.clear()
    assert not emu.fw.channel(1).latched
    await rig.link.set_target(1, 40)
    assert emu.fw.channel(1).target == 40
    await rig.link.deflate()
    assert rig.link.state is LinkState.READY and not lost_reasons(rig.rec)


async def test_keepalive_alone_keeps_the_watchdog_fed(emu, make_link):
    rig = await make_link(watchdog_ms=300)
    await rig.link.wait_ready(5.0)
    await rig.link.set_target(1, 40)
    pings = rig.spy.verbs().count("PING")
    await until(lambda: rig.spy.verbs().count("PING") >= pings + 6, "pings over > 3 watchdog periods")
    assert not rig.rec.events("WDT") and not emu.fw.channel(1).latched
    await rig.link.deflate()


async def test_garbage_is_dropped_and_counted_while_the_session_goes_on(emu, make_link):
    rig = await make_link()
    await rig.link.wait_ready(5.0)
    emu.fw.faults.garbage_rate = 0.3
    samples = rig.link.stats.samples
    await until(lambda: rig.link.stats.dropped.total >= 10, "dropped garbage")
    for _ in range(5):
        await rig.link.command("PING")
    await rig.link.set_target(2, 40)
    emu.fw.faults.garbage_rate = 0.0
    d = rig.link.stats.dropped
    assert d.bad_crc + d.bad_bytes + d.too_long == d.total > 0
    assert rig.link.stats.samples > samples + 10
    assert emu.fw.channel(2).target == 40
    assert rig.link.state is LinkState.READY and not lost_reasons(rig.rec)
    await rig.link.deflate()


async def test_corrupted_answers_are_resent_under_a_new_seq(emu, make_link):
    rig = await make_link(retries=6, answer_timeout=0.2)
    await rig.link.wait_ready(5.0)
    emu.fw.faults.corrupt_rate = 0.25
    for _ in range(12):
        await rig.link.command("PING")
    emu.fw.faults.corrupt_rate = 0.0
    stats = rig.link.stats
    assert stats.dropped.bad_crc > 0
    assert stats.resends == stats.timeouts  # every lost answer was retried, none gave up
    seqs = rig.spy.seqs()
    assert len(seqs) == len(set(seqs))  # a resend never reuses a SEQ
    assert rig.link.state is LinkState.READY


async def test_silent_controller_gives_timeout_then_lost_then_recovers(emu, make_link):
    rig = await make_link(backoff=(0.05, 0.2))
    await rig.link.wait_ready(5.0)
    emu.fw.faults.silent = True
    with pytest.raises(LinkTimeout):
        await rig.link.command("PING")
    await until(lambda: rig.link.state is not LinkState.READY, "link leaves READY")
    assert any("silent" in r for r in lost_reasons(rig.rec))
    assert rig.link.stats.timeouts >= 3 and rig.link.stats.resends >= 2
    with pytest.raises(LinkDown):
        await rig.link.command("PING")
    emu.fw.faults.silent = False
    await rig.link.wait_ready(5.0)
    assert rig.link.stats.reconnects == 1
    await rig.link.command("PING")


async def test_stopped_samples_mean_lost_then_stream_is_set_up_again(emu, make_link):
    rig = await make_link(backoff=(0.05, 0.2))
    await rig.link.wait_ready(5.0)
    await rig.link.command("STREAM", 0)  # the controller stops sampling behind the link's back
    await until(lambda: LinkState.LOST in rig.rec.states(), "LOST on missing samples")
    assert any("no sample" in r for r in lost_reasons(rig.rec))
    await rig.link.wait_ready(5.0)
    samples = rig.link.stats.samples
    await until(lambda: rig.link.stats.samples > samples + 10, "samples after reconnect")
    assert emu.fw.stream_hz == 100


async def test_answers_later_than_every_attempt_time_out_and_are_counted(emu, make_link):
    """Attempts at 0, 0.2 and 0.4 s, the last given up at 0.6 s; every answer comes 0.7 s after its
    line, after the command failed: LinkTimeout, and the answers counted as late (the port is kept:
    it answers, late, within the silence allowed)."""
    rig = await make_link(answer_timeout=0.2, retries=2, silent_after_s=5.0)
    await rig.link.wait_ready(5.0)
    rig.link.keepalive_enabled = False
    emu.fw.faults.slow_answer_s = 0.7
    with pytest.raises(LinkTimeout):
        await rig.link.command("PING")
    await until(lambda: rig.link.stats.late_answers >= 3, "late answers")
    emu.fw.faults.slow_answer_s = 0.0
    rig.link.keepalive_enabled = True
    await rig.link.command("PING")
    assert rig.link.state is LinkState.READY and not lost_reasons(rig.rec)
    assert rig.link.stats.errors == 0


async def test_unplug_reports_lost_fails_pending_and_replug_reconnects(emu, make_link, caplog):
    rig = await make_link(answer_timeout=2.0, backoff=(0.05, 0.2))
    await rig.link.wait_ready(5.0)
    emu.fw.faults.slow_answer_s = 1.0
    pending = asyncio.create_task(rig.link.command("PING"))
    await until(lambda: rig.spy.verbs()[-1] == "PING", "PING on the wire")
    await emu.port.unplug()
    with pytest.raises(LinkDown):
        await pending
    assert rig.rec.states()[-1] is LinkState.LOST  # listeners knew by the time the caller heard
    assert lost_reasons(rig.rec)
    with pytest.raises(LinkDown):
        await rig.link.command("PING")
    emu.fw.faults.slow_answer_s = 0.0
    await emu.port.replug()
    await rig.link.wait_ready(5.0)
    assert rig.link.stats.reconnects == 1
    samples = rig.link.stats.samples
    await until(lambda: rig.link.stats.samples > samples + 10, "samples after replug")
    await rig.link.command("PING")
    gc.collect()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors  # e.g. no crashed close task in the serial transport after the unplug


async def test_reboot_is_noticed_and_streaming_set_up_again(emu, make_link):
    rig = await make_link(watchdog_ms=500)
    await rig.link.wait_ready(5.0)
    await rig.link.set_target(1, 40)
    sent = len(rig.spy.sent)
    emu.fw.reboot(emu.port.now())
    await until(lambda: rig.rec.events("BOOT"), "E BOOT")
    await until(lambda: emu.fw.stream_hz == 100 and emu.fw.watchdog_ms == 500, "stream and watchdog set again")
    after = rig.spy.verbs()[sent:]
    assert "WATCHDOG 500" in after and "STREAM 100" in after, after
    assert after.index("WATCHDOG 500") < after.index("STREAM 100"), "the watchdog is armed before samples flow"
    boot_at = rig.rec.msgs.index(rig.rec.events("BOOT")[0])
    await until(lambda: len([m for m in rig.rec.msgs[boot_at:] if isinstance(m, Sample)]) > 10, "samples after boot")
    assert emu.fw.channel(1).target == 0  # the reboot vented it; the link does not re-inflate
    assert rig.link.state is LinkState.READY and not lost_reasons(rig.rec)


async def test_deflate_all_now_goes_out_while_still_connecting(emu, make_link):
    emu.fw.faults.slow_answer_s = 1.0  # HELLO's answer is a second away: a wide CONNECTING window
    rig = await make_link(answer_timeout=2.5)
    await until(lambda: rig.spy.verbs() == ["HELLO"], "HELLO sent")
    assert rig.link.state is LinkState.CONNECTING
    fut = rig.link.deflate_all_now()
    assert rig.spy.verbs() == ["HELLO", "DEFLATE ALL"]
    assert (await fut).fields == {"ch": "ALL"}
    emu.fw.faults.slow_answer_s = 0.0
    await rig.link.wait_ready(5.0)


async def test_wrong_protocol_version_is_lost_with_a_clear_reason():
    """A controller that is not CUFF-LINK/1: the emulator cannot be one, so a tiny peer plays it."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    loop = asyncio.get_running_loop()
    lines = LineReader()

    def answer() -> None:
        try:
            data = os.read(master, 4096)
        except OSError:
            return
        for body in lines.feed(data):
            cmd = parse_command(body)
            fields = {"proto": 2, "model": "X", "fw": "9", "serial": "S", "channels": 1, "max": 300, "rates": "10"}
            os.write(master, frame(ok_body(cmd.seq, fields if cmd.verb == "HELLO" else {})))

    loop.add_reader(master, answer)
    rec = Recorder()
    link = CuffLink(os.ttyname(slave), name="alien", backoff=(0.5, 1.0))
    link.add_listener(rec)
    try:
        await link.start()
        await until(lambda: lost_reasons(rec), "LOST")
        assert "CUFF-LINK/2" in lost_reasons(rec)[0]
        with pytest.raises(LinkTimeout):
            await link.wait_ready(0.2)
    finally:
        await link.stop(deflate=False)
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


# --------------------------------------------------------------------------- safety review: what a patient would feel


async def test_set_in_flight_at_a_reboot_is_not_resent_to_the_rebooted_controller(emu, make_link):
    """A reboot vents every channel; the SET the old firmware never answered must not re-inflate the new one."""
    rig = await make_link(answer_timeout=0.25, retries=2)
    await rig.link.wait_ready(5.0)
    emu.fw.faults.slow_answer_s = 5.0  # the SET acts at once, its OK is still queued when the power goes
    fut = asyncio.ensure_future(rig.link.set_target(1, 40))
    await until(lambda: emu.fw.channel(1).target == 40, "SET acted on")
    emu.fw.reboot(emu.port.now())  # the queued OK is lost with the power
    emu.fw.faults.slow_answer_s = 0.0
    with pytest.raises(LinkError):
        await asyncio.wait_for(fut, 5.0)
    boot_at = len(rig.rec.msgs)
    await until(lambda: emu.fw.stream_hz == 100, "stream set up again")
    await until(lambda: rig.link.stats.samples > 0 and len(rig.rec.msgs) > boot_at + 50, "samples after the boot")
    assert emu.fw.channel(1).target == 0, "the link re-inflated a cuff the reboot had vented"
    assert "SET 1 40" not in rig.spy.verbs()[rig.spy.verbs().index("SET 1 40") + 1 :]
    assert rig.link.state is LinkState.READY


async def test_set_queued_at_a_reboot_does_not_go_out_after_it(emu, make_link):
    rig = await make_link(answer_timeout=2.0)
    await rig.link.wait_ready(5.0)
    emu.fw.faults.slow_answer_s = 1.0  # fill the window so the next SET waits in the queue
    pings = [asyncio.ensure_future(rig.link.command("PING")) for _ in range(4)]
    queued = asyncio.ensure_future(rig.link.set_target(2, 50))
    await asyncio.sleep(0)
    assert "SET 2 50" not in rig.spy.verbs()
    emu.fw.reboot(emu.port.now())
    emu.fw.faults.slow_answer_s = 0.0
    with pytest.raises(Superseded):
        await asyncio.wait_for(queued, 5.0)
    await asyncio.gather(*pings, return_exceptions=True)
    await until(lambda: emu.fw.stream_hz == 100, "stream set up again")
    assert "SET 2 50" not in rig.spy.verbs()
    assert emu.fw.channel(2).target == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_format_pressure_refuses_non_finite_with_value_error(bad):
    with pytest.raises(ValueError):
        format_pressure(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_set_target_refuses_non_finite_before_the_wire(emu, make_link, bad):
    rig = await make_link()
    await rig.link.wait_ready(5.0)
    sent = len(rig.spy.sent)
    with pytest.raises(ValueError):
        await rig.link.set_target(1, bad)
    assert len(rig.spy.sent) == sent
    assert emu.fw.channel(1).target == 0


@pytest.mark.parametrize(
    "field,value", [("max", "nan"), ("max", "inf"), ("max", "0"), ("channels", "0"), ("channels", "9")]
)
async def test_a_hello_with_an_impossible_maximum_or_channel_count_is_refused(field, value):
    """A controller maximum of NaN would make every 'above the controller's maximum' check pass."""
    fields = {"proto": "1", "model": "X", "fw": "1", "serial": "S", "channels": "4", "max": "300", "rates": "10,100"}
    fields[field] = value
    link = CuffLink("/dev/null", name="t")
    asked: list[str] = []

    class Book:  # the HELLO answer, as parsed from the wire
        def submit(self, verb, args, *, urgent, require_ready):
            asked.append(verb)
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(Ok(1, fields))
            return fut

    conn = Connection(None, LineReader(), asyncio.get_running_loop().create_future())  # type: ignore[arg-type]
    with pytest.raises(LinkError):
        await set_up(link, conn, Book(), Identity(None))  # type: ignore[arg-type]
    assert asked == ["HELLO"] and not conn.verified and link.info is None
