"""The numbers the safety rules use, and the check every target passes before it is sent.

:class:`Limits` reads the config's own settings in place (one source, nothing to drift);
:func:`check_target` refuses a target that breaks a limit, with a sentence for the screen.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Protocol

from console.common.api import CommandRefused
from console.common.facts import ABSOLUTE_MAX_MMHG
from console.common.figures import figure
from console.station.cuff import CuffState


class ControllerView(Protocol):
    """What a target check reads of a controller (the supervisor's ControllerState has it)."""

    @property
    def id(self) -> str: ...

    @property
    def online(self) -> bool: ...

    @property
    def link_state(self) -> str: ...

    def max_pressure(self) -> float | None: ...

    def channel_count(self) -> int | None: ...


TARGET_PURPOSES = ("manual", "lop", "full_occlusion")
"""Why a target is asked for (see :meth:`Supervisor.check_target`)."""
FULL_OCCLUSION_MAX_PCT = 100.0
"""A full-occlusion plan (ischaemic preconditioning) goes to at most this % LOP."""


class SafetySettings(Protocol):
    """What the rules read from the config's ``[safety]`` section (:class:`console.config.schema.SafetyConfig`)."""

    @property
    def tolerance_mmhg(self) -> float: ...

    @property
    def grace_s(self) -> float: ...

    @property
    def link_timeout_s(self) -> float: ...

    @property
    def leak_pump_s(self) -> float: ...


class StationSettings(Protocol):
    """What the rules read from the config's ``[station]`` section (:class:`console.config.schema.StationSettings`)."""

    @property
    def ceiling_mmhg(self) -> float: ...

    @property
    def occlusion_threshold_mmhg(self) -> float: ...


class Limits:
    """The numbers the rules use: the config's own settings, read in place rather than copied
    field by field (one source, nothing to drift), plus the rules' fixed constants."""

    __slots__ = ("safety", "station")

    leak_duty_pct = 95
    """Pump duty that counts as 'running without pause' for the leak rule."""
    settle_s = 10.0
    """After a target change, the longest the pressure may take to get there before the
    off-target rule judges it anyway (a thigh cuff fills 0 to 200 mmHg in 3-5 s)."""
    limit_deflate_retry_s = 2.0
    """How often the occlusion limit (and the residual-pressure rule) re-send a deflate while pressure stays up."""
    vent_s = 5.0
    """A deflated cuff vents from 200 to under 10 mmHg in about 2 s (protocol section 6); one still over the
    occlusion threshold this long after its deflate holds residual pressure (the controller's VENTFAIL uses 5 s)."""

    def __init__(self, safety: SafetySettings, station: StationSettings) -> None:
        self.safety = safety
        self.station = station

    # Read through to the config, never copied (attrgetter: C speed, not on the per-sample path anyway).
    ceiling_mmhg = property(attrgetter("station.ceiling_mmhg"))
    occlusion_threshold_mmhg = property(attrgetter("station.occlusion_threshold_mmhg"))
    tolerance_mmhg = property(attrgetter("safety.tolerance_mmhg"))
    grace_s = property(attrgetter("safety.grace_s"))
    link_timeout_s = property(attrgetter("safety.link_timeout_s"))
    leak_pump_s = property(attrgetter("safety.leak_pump_s"))


LATCH_WORDS = {
    "WDT": "its controller's watchdog",
    "OVERPRESSURE": "an over-pressure",
    "SENSOR": "a pressure sensor fault",
    "VENTFAIL": "a vent failure",
}


def latched_refusal(name: str, cause: str) -> str:
    """Why a latched cuff cannot inflate, and the one way on (acknowledging its alarm sends CLEAR)."""
    after = LATCH_WORDS.get(cause, "a fault its controller reported")
    return f"{name} is latched (vented) after {after}: acknowledge its alarm (a) to clear it, then try again."


def check_target(
    limits: Limits, cuff: CuffState, ctrl: ControllerView, mmhg: float, *, purpose: str = "manual"
) -> None:
    """Refuse a target that breaks a rule; returns quietly when it is allowed.

    ``purpose`` says who asks. ``manual`` (the operator, an ordinary plan): every rule.
    ``lop`` (the LOP staircase, which must climb past the LOP): the % LOP limit and the
    no-LOP limit do not apply. ``full_occlusion`` (an IPC plan that says so): above the
    cuff's everyday % LOP maximum, up to 100 % of a known LOP. The station ceiling, the
    controller's maximum and 300 mmHg apply to every purpose.

    Raises:
        CommandRefused: with a sentence naming the cuff, the figure and the limit.
    """
    lim = limits
    name = cuff.id
    if not mmhg > 0:
        raise CommandRefused(f"{name}: a target must be above 0 mmHg; deflate to vent the cuff.")
    if not ctrl.online:
        raise CommandRefused(f"{name}: controller {ctrl.id} is offline ({ctrl.link_state}); cannot inflate.")
    if cuff.latched:
        raise CommandRefused(latched_refusal(name, cuff.latch_cause))
    if mmhg > lim.ceiling_mmhg:
        raise CommandRefused(
            f"{name}: {figure(mmhg)} mmHg is above the station ceiling of {figure(lim.ceiling_mmhg)} mmHg."
        )
    count = ctrl.channel_count()
    if count is not None and cuff.channel > count:
        raise CommandRefused(
            f"{name}: controller {ctrl.id} has {count} channels; this cuff's channel {cuff.channel} does not "
            f"exist. Fix the config."
        )
    cmax = ctrl.max_pressure()
    if cmax is not None and mmhg > cmax:
        raise CommandRefused(
            f"{name}: {figure(mmhg)} mmHg is above controller {ctrl.id}'s maximum of {figure(cmax)} mmHg."
        )
    if mmhg > ABSOLUTE_MAX_MMHG:
        raise CommandRefused(f"{name}: {figure(mmhg)} mmHg is above {figure(ABSOLUTE_MAX_MMHG)} mmHg.")
    if purpose not in TARGET_PURPOSES:
        raise CommandRefused(f"{name}: unknown reason {purpose!r} for a target.")
    if purpose == "lop":
        return
    if purpose == "full_occlusion":
        if not cuff.lop:
            raise CommandRefused(f"{name}: LOP unknown; full occlusion needs a measured or entered LOP.")
        allowed = cuff.lop * FULL_OCCLUSION_MAX_PCT / 100.0
        if mmhg > allowed + 1e-9:
            raise CommandRefused(
                f"{name}: {figure(mmhg)} mmHg is {100.0 * mmhg / cuff.lop:.0f} % LOP; full occlusion goes to at most "
                f"{figure(FULL_OCCLUSION_MAX_PCT)} % LOP ({figure(allowed)} mmHg, LOP {figure(cuff.lop)})."
            )
        return
    if cuff.lop:
        allowed = cuff.allowed_max()
        if mmhg > allowed + 1e-9:
            pct = 100.0 * mmhg / cuff.lop
            raise CommandRefused(
                f"{name}: {figure(mmhg)} mmHg is {pct:.0f} % LOP; this {cuff.spec.limb} cuff may go to at most "
                f"{figure(cuff.spec.max_pct_lop)} % LOP ({figure(allowed)} mmHg, LOP {figure(cuff.lop)})."
            )
    elif mmhg > cuff.spec.max_mmhg_without_lop:
        raise CommandRefused(
            f"{name}: LOP unknown; without it this {cuff.spec.limb} cuff may go to at most {figure(cuff.spec.max_mmhg_without_lop)} mmHg "
            f"({figure(mmhg)} asked). Measure or enter the LOP first."
        )
