"""A controller the station cannot see is left to its own watchdog (issue 11, item 1).

Real CuffLinks against real emulators over real ptys. The controller answers every
command but its samples stop, or arrive unusable: the link must fall quiet (nothing but
a DEFLATE), so that the controller's watchdog vents it, instead of reconnecting about
once a second and feeding that watchdog with every HELLO, WATCHDOG, STREAM and PING.
The rule is drivers/link_quiet.py.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from drivers.codec import frame
from drivers.emulator.firmware import ControllerFirmware
from drivers.link_errors import CommandError, LinkDown, LinkState, LinkStateChange, LinkTimeout
from drivers.link_quiet import QuietRule
from tests.link_support import LOPS, Emu, heard, lost_reasons, until

W_MS = 500
W = W_MS / 1000
SLACK = 0.4
"""Scheduling margin on a busy two-core machine, seconds."""
FAST_BACKOFF = (0.05, 0.2)
BLIND_FAULTS = [("no_samples", True), ("sample_channels", 3)]


def wdt_trips(fw: ControllerFirmware) -> list[float]:
    """From now on, the firmware's time of every E WDT it sends."""
    trips: list[float] = []
    fw.on_event = lambda body: trips.append(fw.now) if body.startswith("E WDT") else None
    return trips


def bursts(times: list[float], within: float = 0.3) -> list[float]:
    """The start of every run of writes closer than ``within`` to the one before."""
    starts: list[float] = []
    for i, t in enumerate(times):
        if i == 0 or t - times[i - 1] > within:
            starts.append(t)
    return starts


async def inflate(emu: Emu, link, ch: int, mmhg: float) -> None:
    await link.set_target(ch, mmhg)
    await until(lambda: emu.fw.channel(ch).pressure > mmhg / 2, f"cuff {ch} up")


# --------------------------------------------------------------------------- the controller's watchdog trips


@pytest.mark.parametrize("fault,value", BLIND_FAULTS)
async def test_a_controller_without_usable_samples_is_vented_by_its_own_watchdog(emu, make_link, fault, value):
    rig = await make_link(watchdog_ms=W_MS, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    await inflate(emu, rig.link, 1, 60)
    trips = wdt_trips(emu.fw)
    at: list[float] = []
    wire = heard(emu.fw, at)
    loop = asyncio.get_running_loop()
    blind_at: list[float] = []  # when the link said so: from then on it must be quiet
    rig.link.add_listener(
        lambda m: (
            blind_at.append(loop.time())
            if isinstance(m, LinkStateChange) and m.state is LinkState.LOST and "blind" in m.reason
            else None
        )
    )
    t0, fw_t0 = loop.time(), emu.port.now()
    setattr(emu.fw.faults, fault, value)  # it still answers every command

    await until(lambda: trips, "the controller's own watchdog trips", timeout=2 * W + 2.0)
    assert trips[0] - fw_t0 <= 2 * W + SLACK
    one = emu.fw.channel(1)
    assert one.latched and one.target == 0 and one.valve_open
    assert rig.link.starving and rig.link.state is LinkState.LOST
    assert any("blind" in r for r in lost_reasons(rig.rec))
    # commands fail fast and are not kept to go out later
    with pytest.raises(LinkDown):
        await rig.link.set_target(2, 40)
    with pytest.raises(LinkDown):
        await rig.link.command("PING")

    # and it stays that way: probes come, each after a quiet longer than the controller's watchdog
    await asyncio.sleep(4 * W)
    assert "SET 2 40" not in wire and emu.fw.channel(2).target == 0
    # Blind about W after the last usable sample it read (a paced port reads up to 25 ms late, and a
    # keepalive due just before may still go out: the quiet is counted from the link's own moment).
    assert blind_at and blind_at[0] - t0 <= W + SLACK, (blind_at, t0)
    # The quiet is the link's: timed by its own writes. The controller hears a line after the link wrote it,
    # so a keepalive PING written just before the blind moment is heard after it (a CI run saw such a PING,
    # 0.17 s after the one before; the monitor now looks at the samples before it pings: test_link_monitor.py).
    writes = list(zip(rig.spy.sent_at, rig.spy.verbs()))
    after = [i for i, (t, _) in enumerate(writes) if t > blind_at[0]]
    assert after, "the link keeps probing"
    assert {writes[i][1].split(" ", 1)[0] for i in after} <= {"HELLO", "WATCHDOG", "STREAM"}, "only probes"
    # A probe starts with a HELLO (a resent HELLO is the same probe), after 1.5 W in which the link wrote nothing.
    starts = [i for i in after if writes[i][1] == "HELLO" and writes[i - 1][1] != "HELLO"]
    assert starts, "the link keeps probing"
    gaps = [writes[i][0] - writes[i - 1][0] for i in starts]
    assert all(g >= 1.5 * W - 0.05 for g in gaps), gaps
    # ... and they reached the controller (a line is heard after it is written, on this same loop; the last
    # probe may be written in the turn this test wakes in, before the controller reads it).
    heard_starts = bursts([t for t in at if t >= writes[starts[0]][0]])
    assert len(heard_starts) >= len(starts) - 1, (heard_starts, starts)
    assert rig.link.starving and rig.link.state is LinkState.LOST
    assert len(lost_reasons(rig.rec)) == 1, "one LOST report per blind episode, not one per probe"


async def test_a_caller_may_ask_for_blind_sooner_than_the_watchdog(emu, make_link):
    """The station's own link timeout (0.5 s) under a 1 s watchdog: vented by 1.5 s, not 2 s."""
    rig = await make_link(watchdog_ms=1000, blind_after_s=0.5, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    await inflate(emu, rig.link, 1, 60)
    trips = wdt_trips(emu.fw)
    fw_t0 = emu.port.now()
    emu.fw.faults.no_samples = True
    await until(lambda: trips, "the controller's own watchdog trips", timeout=4.0)
    assert trips[0] - fw_t0 <= 0.5 + 1.0 + SLACK
    assert rig.link.starving


async def test_a_controller_that_never_streams_never_gets_ready(emu, make_link):
    """READY needs a usable sample: a probe that sees none leaves the link blind and quiet."""
    emu.fw.faults.no_samples = True
    at: list[float] = []
    wire = heard(emu.fw, at)
    rig = await make_link(watchdog_ms=W_MS, backoff=FAST_BACKOFF)
    with pytest.raises(LinkTimeout):
        await rig.link.wait_ready(3 * W + 0.5)
    assert rig.link.state is LinkState.LOST and rig.link.starving
    assert LinkState.READY not in rig.rec.states()
    assert wire.count("HELLO") >= 2
    # Each probe's first HELLO (one resent after its answer timeout belongs to the same probe).
    hellos = [t for i, (t, verb) in enumerate(zip(at, wire)) if verb == "HELLO" and (i == 0 or wire[i - 1] != "HELLO")]
    assert all(b - a >= 1.5 * W - 0.05 for a, b in zip(hellos, hellos[1:])), hellos


# --------------------------------------------------------------------------- DEFLATE still goes out


async def test_deflate_all_now_goes_out_while_starving_and_the_controller_vents(emu, make_link):
    rig = await make_link(watchdog_ms=1000, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    await inflate(emu, rig.link, 1, 60)
    await inflate(emu, rig.link, 2, 40)
    emu.fw.faults.no_samples = True
    await until(lambda: rig.link.starving, "the link starving")
    fut = rig.link.deflate_all_now()
    assert rig.spy.verbs()[-1] == "DEFLATE ALL"  # on the transport when the call returns
    assert (await fut).fields == {"ch": "ALL"}
    for ch in (1, 2):  # vented by the DEFLATE, not latched by a watchdog trip
        assert emu.fw.channel(ch).target == 0 and emu.fw.channel(ch).valve_open and not emu.fw.channel(ch).latched
    await until(lambda: emu.fw.channel(1).pressure < 10, "cuff 1 vented")
    # a second DEFLATE right after it would feed the watchdog: it waits for the quiet
    sent = len(rig.spy.sent)
    with pytest.raises(LinkDown, match="quiet"):
        rig.link.deflate_all_now()
    with pytest.raises(LinkDown, match="quiet"):
        await rig.link.deflate(1)
    assert len(rig.spy.sent) == sent


async def test_a_channel_deflate_goes_out_while_starving(emu, make_link):
    rig = await make_link(watchdog_ms=1000, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    await inflate(emu, rig.link, 2, 50)
    emu.fw.faults.sample_channels = 5
    await until(lambda: rig.link.starving, "the link starving")
    assert (await rig.link.deflate(2)).fields == {"ch": "2"}
    assert emu.fw.channel(2).target == 0 and not emu.fw.channel(2).latched


async def test_a_refused_deflate_retried_while_blind_does_not_keep_the_watchdog_fed(emu, make_link):
    """An emergency retries its DEFLATE ALL every 0.2 s until confirmed; the controller never confirms."""
    rig = await make_link(watchdog_ms=W_MS, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    await inflate(emu, rig.link, 1, 60)
    emu.fw.faults.deflate_refused = {1}
    trips = wdt_trips(emu.fw)
    fw_t0 = emu.port.now()
    emu.fw.faults.no_samples = True
    await until(lambda: rig.link.starving, "the link starving")
    with pytest.raises(CommandError) as busy:
        await rig.link.deflate_all_now()
    assert busy.value.code == "BUSY" and emu.fw.channel(1).target == 60

    async def emergency_retries() -> None:
        while not trips:
            try:
                await rig.link.deflate_all_now()
            except Exception:
                pass
            await asyncio.sleep(0.2)

    await asyncio.wait_for(emergency_retries(), 2 * W + 2.0)
    assert trips[0] - fw_t0 <= 2 * W + SLACK
    one = emu.fw.channel(1)
    assert one.latched and one.target == 0 and one.valve_open
    await until(lambda: one.pressure < 10, "the refused channel vented by the watchdog")


# --------------------------------------------------------------------------- seeing again


@pytest.mark.parametrize("fault,value", BLIND_FAULTS)
async def test_samples_coming_back_make_the_link_ready_again(emu, make_link, fault, value):
    rig = await make_link(watchdog_ms=W_MS, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    setattr(emu.fw.faults, fault, value)
    await until(lambda: rig.link.starving, "the link starving")
    with pytest.raises(LinkDown):
        await rig.link.command("PING")
    setattr(emu.fw.faults, fault, None if fault == "sample_channels" else False)
    await rig.link.wait_ready(3 * W + 1.0)
    assert not rig.link.starving and rig.link.state is LinkState.READY
    assert rig.link.stats.reconnects == 1
    samples = rig.link.stats.samples
    await until(lambda: rig.link.stats.samples > samples + 10, "samples flowing")
    await rig.link.set_target(3, 30)
    assert emu.fw.channel(3).target == 30
    pings = rig.spy.verbs().count("PING")
    await until(lambda: rig.spy.verbs().count("PING") > pings + 2, "keepalive pings again")
    await rig.link.deflate()


# --------------------------------------------------------------------------- a refused port


async def test_a_refused_port_does_not_keep_the_wrong_controllers_watchdog_fed(emu, make_link):
    rig = await make_link(watchdog_ms=W_MS, backoff=FAST_BACKOFF)
    await rig.link.wait_ready(5.0)
    assert rig.link.expected_serial == "E0001"
    other = ControllerFirmware(channels=4, lops=LOPS, seed=1, serial="EMU-B")
    other.receive(frame("#1 SET 1 60"), other.now)  # someone else's cuff up (its watchdog: 2000 ms from boot)
    trips = wdt_trips(other)
    at: list[float] = []
    wrong_heard = heard(other, at)
    own_at: list[float] = []
    own_heard = heard(emu.fw, own_at)
    fw_a = emu.fw

    await emu.port.unplug()
    await emu.port.replug(firmware=other)  # USB renumbering: the other controller behind our path
    await until(lambda: rig.link.state is LinkState.REFUSED, "the port refused")
    assert not rig.link.starving  # refused has its own state
    await until(lambda: trips, "the wrong controller's own watchdog trips", timeout=5.0)
    hello_fw_t = at[0] + (other.now - asyncio.get_running_loop().time())  # the first HELLO, in its time
    assert trips[0] - hello_fw_t <= 2.0 + SLACK  # its power-up watchdog, counted from that HELLO
    assert set(wrong_heard) == {"HELLO"} and len(wrong_heard) == 1, wrong_heard
    assert other.channel(1).latched and other.channel(1).target == 0 and other.channel(1).valve_open

    await emu.port.unplug()
    await emu.port.replug(firmware=fw_a)  # the right controller back: taken at the next HELLO
    await rig.link.wait_ready(8.0)
    gap = own_at[own_heard.index("HELLO")] - at[-1]
    assert gap >= QuietRule(W_MS).refused_quiet_s() - 0.05, gap


# --------------------------------------------------------------------------- the rule itself


def test_the_quiet_rule_in_numbers():
    rule = QuietRule(1000)
    assert rule.silence_s == 1.0 and rule.quiet_s == 1.5 and QuietRule(300).silence_s == 0.3
    assert QuietRule(1000, 0.5).silence_s == 0.5 and QuietRule(500, 2.0).silence_s == 0.5  # never over W
    with pytest.raises(ValueError):
        QuietRule(1000, 0.0)
    # a write a usable sample followed needs no quiet; one no sample followed needs 1.5 W
    assert rule.probe_at(10.0, 10.2) == -math.inf
    assert rule.probe_at(10.0, 9.9) == 11.5
    assert rule.probe_at(None, None) == -math.inf
    # a refused port: 1.5 x max(W, 2000 ms), doubled per refused HELLO, never over 15 s
    gaps = []
    for n in range(1, 6):
        rule.refused = n
        gaps.append(rule.probe_at(10.0, 10.2) - 10.0)
    assert gaps == [3.0, 6.0, 12.0, 15.0, 15.0]
    slow = QuietRule(4000)
    slow.refused = 1
    assert slow.refused_quiet_s() == 6.0  # our own watchdog, when it is the longer one
    # blind: nothing but DEFLATE; the first at once, the next after the quiet
    rule = QuietRule(1000)
    assert rule.permit("PING", 20.0, 19.9) is None
    rule.go_blind()
    assert rule.permit("PING", 20.0, 19.9) is not None
    assert rule.permit("SET 1 40", 20.0, 19.9) is not None
    assert rule.permit("DEFLATE ALL", 20.0, 19.9) is None
    assert rule.permit("DEFLATE ALL", 20.1, 20.0) is not None
    assert rule.permit("DEFLATE 1", 21.4, 20.0) is not None
    assert rule.permit("DEFLATE 1", 21.5, 20.0) is None
    rule.start_probe()  # the probe's own lines go out
    assert rule.permit("HELLO", 23.0, 22.9) is None
    assert rule.sampled() and rule.permit("PING", 23.1, 23.0) is None
