"""The real CuffLink against the real emulator over a real pty: faults and their failure paths."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tty

import pytest

from drivers.codec import LineReader, Sample, frame, ok_body, parse_command
from drivers.link import CuffLink
from drivers.link_errors import (
    CommandError,
    LinkDown,
    LinkState,
    LinkStateChange,
    LinkTimeout,
)
from tests.link_support import Recorder, until


def lost_reasons(rec: Recorder) -> list[str]:
    return [m.reason for m in rec.of(LinkStateChange) if m.state is LinkState.LOST]


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


async def test_slow_answers_time_out_and_late_answers_are_counted(emu, make_link):
    rig = await make_link(answer_timeout=0.2, retries=2)
    await rig.link.wait_ready(5.0)
    rig.link.keepalive_enabled = False
    emu.fw.faults.slow_answer_s = 0.35
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
    assert rig.spy.verbs()[sent:][:2] == ["WATCHDOG 500", "STREAM 100"] or (
        "WATCHDOG 500" in rig.spy.verbs()[sent:] and "STREAM 100" in rig.spy.verbs()[sent:]
    )
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
