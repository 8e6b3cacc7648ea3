"""What both kinds of therapy job do with a live cuff: admit it, vent it, judge an alarm.

Kept apart from the jobs so that a LOP measurement and a session refuse a busy
cuff with the same sentences and vent it the same way.
"""

from __future__ import annotations

import asyncio
import logging

from console.common.api import AlarmSnapshot, CommandRefused
from console.common.figures import figure
from console.station.limits import latched_refusal
from console.therapy.jobs import JobBoard
from console.therapy.session import TERMINAL
from console.therapy.station_port import TherapyStation

log = logging.getLogger(__name__)

FIRST_READING_WAIT_S = 2.0
"""A command on a cuff whose link is up but whose first sample has not come waits this long for it."""


async def wait_first_reading(station: TherapyStation, cuff_id: str) -> None:
    """Just after the link came up the first sample may not be in yet: wait for it briefly."""
    cuff, ctrl = station.lookup(cuff_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FIRST_READING_WAIT_S
    while ctrl.online and cuff.pressure is None and loop.time() < deadline:
        await asyncio.sleep(0.02)


def check_free(station: TherapyStation, board: JobBoard, cuff_id: str) -> None:
    """Refuse (with a sentence) a cuff that cannot start a measurement or a session now."""
    cuff, ctrl = station.lookup(cuff_id)
    if not ctrl.online:
        raise CommandRefused(f"{cuff_id}: controller {ctrl.id} is offline ({ctrl.link_state}).")
    if ctrl.id in station.emergency.retrying:
        raise CommandRefused(f"{cuff_id}: controller {ctrl.id} has not confirmed the emergency deflate yet.")
    if cuff.latched:
        raise CommandRefused(latched_refusal(cuff_id, cuff.latch_cause))
    lj = board.lops.get(cuff_id)
    if lj is not None and lj.stage != "ended":
        raise CommandRefused(f"{cuff_id} is already measuring its LOP.")
    sj = board.sessions.get(cuff_id)
    if sj is not None and sj.runner.phase not in TERMINAL:
        raise CommandRefused(f"{cuff_id} is in a session ({sj.plan.id}, {sj.runner.phase}); stop it first.")
    threshold = station.limits.occlusion_threshold_mmhg
    if cuff.target > 0 or (cuff.pressure is not None and cuff.pressure >= threshold):
        at = f"{figure(cuff.pressure)} mmHg" if cuff.pressure is not None else f"target {figure(cuff.target)} mmHg"
        raise CommandRefused(f"{cuff_id} is inflated ({at}); deflate it first.")
    if cuff.pressure is None:
        raise CommandRefused(f"{cuff_id}: no reading from the cuff yet.")


async def deflate(station: TherapyStation, cuff_id: str, why: str) -> None:
    """Vent as the station; a refusal is only logged (the station resends a deflate when a lost link returns)."""
    try:
        with station.acting_as("station"):
            await station.deflate(cuff_id)
    except CommandRefused as exc:
        log.warning("therapy: deflate of %s (%s) not confirmed: %s", cuff_id, why, exc)


def concerns(station: TherapyStation, alarm: AlarmSnapshot, cuffs: tuple[str, ...]) -> bool:
    """Whether an alarm is about one of these cuffs (its own, its controller's, or the whole station's)."""
    if alarm.cuff is not None:
        return alarm.cuff in cuffs
    if alarm.controller is None:
        return True  # the whole station (e.g. its supervisor failed)
    return any(station.cuffs[c].spec.controller == alarm.controller for c in cuffs)
