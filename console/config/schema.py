"""What a validated station configuration is: frozen dataclasses of plain values.

Only the shape, the defaults and the questions a config answers (a cuff's
limits, whether a plan may run on it). Reading and checking a file lives in
:mod:`console.config.loader` and :mod:`console.config.validate`.

The engine imports this module for its types, so it imports nothing of therapy at run time
(a plan's type is named only for the type checker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from console.common.api import Role

if TYPE_CHECKING:
    from console.therapy.plans import Plan

MAX_CHANNELS: Final = 8
"""CUFF-LINK/1: a controller has 1 to 8 channels."""
DEFAULT_REAL_CHANNELS: Final = 4
"""Channel count assumed for a real port that does not state ``channels``."""
EMULATOR_PORT: Final = "emulator"
THEMES: Final = ("auto", "textual-dark", "ansi")


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class StationSettings:
    name: str = "BFR station"
    ceiling_mmhg: float = 300.0
    """Hard cap for any commanded pressure, at most 300."""
    data_dir: Path = Path("var")
    socket: Path = Path("var/socket/bfr.sock")
    occlusion_threshold_mmhg: float = 20.0
    """Pressure above which time counts as occlusion."""


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    tolerance_mmhg: float = 15.0
    """Off-target alarm band (Delfi PTS ii: 15 mmHg for over 1 s)."""
    grace_s: float = 1.0
    link_timeout_s: float = 0.5
    """No sample for this long: the link is lost."""
    leak_pump_s: float = 7.0
    """Pump running this long without pause while holding: a leak."""
    occlusion_warn_s: float = 900.0
    occlusion_limit_s: float = 1200.0
    """Alarm and auto-deflate after this much continuous occlusion; at most 20 min."""
    deflate_confirm_s: float = 0.25
    max_pct_lop_arm: float = 60.0
    max_pct_lop_leg: float = 90.0
    max_mmhg_without_lop_arm: float = 80.0
    """An arm cuff with unknown LOP may be inflated to at most this many mmHg (about 60 % of a typical
    arm LOP of 140)."""
    max_mmhg_without_lop_leg: float = 120.0
    """A leg cuff with unknown LOP: at most this (about 55 % of a typical thigh LOP of 220)."""

    def max_mmhg_without_lop(self, limb: str) -> float:
        return self.max_mmhg_without_lop_arm if limb == "arm" else self.max_mmhg_without_lop_leg

    def max_pct_lop(self, limb: str) -> float:
        return self.max_pct_lop_arm if limb == "arm" else self.max_pct_lop_leg


@dataclass(frozen=True, slots=True)
class AlarmsConfig:
    silence_max_s: float = 120.0
    bell: bool = True


@dataclass(frozen=True, slots=True)
class TherapyConfig:
    lop_max_age_days: float = 14.0
    """The clinic's re-measure interval: an older LOP is flagged, and not restored into a cuff at start."""


@dataclass(frozen=True, slots=True)
class UiConfig:
    theme: str = "auto"
    """``auto`` | ``textual-dark`` | ``ansi``."""
    fps: int = 20
    cue_bell: bool = False
    """Ring the terminal bell for the patient's cue (each lift, each set and rest that begins).
    Off by default: the bell is also the alarms' sound, and a clinic must first decide it can tell them apart."""


def default_emulator_lop(channels: int) -> tuple[float, ...]:
    """A spread of limb occlusion pressures, 160, 185, 210 ... (all within 100..300)."""
    return tuple(160.0 + 25.0 * (i % 6) for i in range(channels))


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Settings of the built-in, in-process emulator (``port = "emulator"``)."""

    channels: int = 4
    lop: tuple[float, ...] = field(default_factory=lambda: default_emulator_lop(4))
    heart_rate: float = 70.0
    pulse_mmhg: float = 2.0
    seed: int = 0
    exercise: bool = False


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    id: str
    port: str
    """``emulator``, a device path, or ``socket://host:port``."""
    watchdog_ms: int = 1000
    stream_hz: int = 100
    channels: int = DEFAULT_REAL_CHANNELS
    """Resolved channel count: as configured, the emulator's, or 4."""
    emulator: EmulatorConfig | None = None
    """Set exactly when ``port == "emulator"``."""
    serial: str | None = None
    """The controller serial the port must answer HELLO with (pinned); None: learned at first connect."""

    @property
    def is_emulator(self) -> bool:
        return self.port == EMULATOR_PORT


@dataclass(frozen=True, slots=True)
class CuffConfig:
    id: str
    controller: str
    channel: int
    limb: str
    label: str = ""
    width_cm: float | None = None
    lop: float | None = None
    """A known LOP in mmHg, if any (a measured one in the records takes over)."""
    max_pct_lop: float | None = None
    """Override of the limb's ``safety.max_pct_lop_*``."""
    occlusion_warn_s: float | None = None
    occlusion_limit_s: float | None = None
    pair: str | None = None
    """The partner cuff for both-limb sessions; pairing is always mutual."""


@dataclass(frozen=True, slots=True)
class RoleRule:
    """Maps a Unix user or group (exactly one) to a remote-supervision role.

    Only data here: the decision (rule order, the station's own uid) belongs to
    :mod:`console.remote.roles`, which reads these same rules.
    """

    role: Role
    user: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if (self.user is None) == (self.group is None):
            raise ValueError("a role rule names exactly one of user or group")

    def describe(self) -> str:
        return f"user {self.user}" if self.user is not None else f"group {self.group}"


@dataclass(frozen=True, slots=True)
class CuffLimits:
    """The effective limits of one cuff: per-cuff overrides over the safety section."""

    max_pct_lop: float
    occlusion_warn_s: float
    occlusion_limit_s: float
    max_mmhg_without_lop: float
    ceiling_mmhg: float
    tolerance_mmhg: float


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """``[mqtt]``: publishing to the clinic's broker (off when the section is absent)."""

    host: str
    port: int
    tls: bool
    """``mqtts://``: TLS, checked against ``ca_file`` or the system's CAs."""
    site: str
    user: str | None = None
    password_file: Path | None = None
    """The password is read from this file at start, never written in the config."""
    ca_file: Path | None = None
    cuff_hz: float = 1.0
    """How often each cuff's state goes out (1 to 2 Hz)."""
    queue: int = 1000
    """At most this many alarm messages wait for the broker; older ones are dropped (and counted)."""
    attach: str = ""
    """The command that attaches to this station over SSH, shown on the board (default: from the hostname)."""


@dataclass(frozen=True)
class StationConfig:
    station: StationSettings
    safety: SafetyConfig
    alarms: AlarmsConfig
    ui: UiConfig
    controllers: tuple[ControllerConfig, ...]
    cuffs: tuple[CuffConfig, ...]
    roles: tuple[RoleRule, ...]
    plans: dict[str, Plan]
    """The built-in library merged with the config's ``[[plans]]`` (which win by id)."""
    path: Path
    therapy: TherapyConfig = TherapyConfig()
    mqtt: MqttConfig | None = None
    """None: publishing is off (the default)."""

    def cuff(self, cuff_id: str) -> CuffConfig:
        for c in self.cuffs:
            if c.id == cuff_id:
                return c
        raise KeyError(f"no cuff {cuff_id!r}")

    def controller(self, controller_id: str) -> ControllerConfig:
        for c in self.controllers:
            if c.id == controller_id:
                return c
        raise KeyError(f"no controller {controller_id!r}")

    def cuffs_on(self, controller_id: str) -> tuple[CuffConfig, ...]:
        return tuple(c for c in self.cuffs if c.controller == controller_id)

    def partner(self, cuff_id: str) -> CuffConfig | None:
        """The cuff paired with this one (declared on either side), or None."""
        me = self.cuff(cuff_id)
        if me.pair:
            return self.cuff(me.pair)
        for c in self.cuffs:
            if c.pair == cuff_id:
                return c
        return None

    def limits(self, cuff_id: str) -> CuffLimits:
        c = self.cuff(cuff_id)
        s = self.safety
        return CuffLimits(
            max_pct_lop=c.max_pct_lop if c.max_pct_lop is not None else s.max_pct_lop(c.limb),
            occlusion_warn_s=c.occlusion_warn_s if c.occlusion_warn_s is not None else s.occlusion_warn_s,
            occlusion_limit_s=c.occlusion_limit_s if c.occlusion_limit_s is not None else s.occlusion_limit_s,
            max_mmhg_without_lop=s.max_mmhg_without_lop(c.limb),
            ceiling_mmhg=self.station.ceiling_mmhg,
            tolerance_mmhg=s.tolerance_mmhg,
        )

    def plan_refusal(self, plan: Plan | str, cuff_id: str) -> str | None:
        """Why this plan may not run on this cuff (a sentence for the screen), or None.

        A plan above the cuff's ``max_pct_lop`` runs only when it is a
        ``full_occlusion`` cycles plan; the station must then still require a
        known LOP and cap at the ceiling.
        """
        if isinstance(plan, str):
            if plan not in self.plans:
                return f"No plan {plan!r}."
            plan = self.plans[plan]
        cuff = self.cuff(cuff_id)
        lim = self.limits(cuff_id)
        if plan.limb is not None and plan.limb != cuff.limb:
            return f"Plan {plan.id!r} is for {with_article(plan.limb)}; cuff {cuff.id} is on {with_article(cuff.limb)}."
        if plan.pct_lop > lim.max_pct_lop and not plan.full_occlusion:
            return (
                f"Plan {plan.id!r} asks {plan.pct_lop:g} % LOP; cuff {cuff.id} allows at most "
                f"{lim.max_pct_lop:g} % LOP."
            )
        if plan.longest_occlusion_s > lim.occlusion_limit_s:
            return (
                f"Plan {plan.id!r} occludes for {plan.longest_occlusion_s:g} s at a stretch; cuff {cuff.id}'s "
                f"occlusion limit is {lim.occlusion_limit_s:g} s."
            )
        return None


def with_article(limb: str) -> str:
    """``an arm``, ``a leg``: a limb in a sentence."""
    return f"an {limb}" if limb[:1] in "aeiou" else f"a {limb}"
