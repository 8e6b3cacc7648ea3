"""The station's public face: immutable snapshots out, commands in.

This is the contract between the engine (``console.station``), the Textual UI
(``console.ui``) and remote supervision (``console.remote``). The UI holds a
:class:`StationHandle` and cannot tell whether the station runs in-process or
behind a Unix socket. Snapshots are plain frozen dataclasses of plain values so
that :mod:`console.remote.wire` can turn them into JSON and back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable


class Priority(str, Enum):
    """Alarm priority, IEC 60601-1-8 in spirit."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


PRIORITY_RANK = {Priority.HIGH: 3, Priority.MEDIUM: 2, Priority.LOW: 1}
"""Higher ranks first when alarms are sorted or a banner picks one."""


class Role(str, Enum):
    """What a console may do: an observer only watches and may emergency-deflate."""

    OPERATOR = "operator"
    OBSERVER = "observer"


class CommandRefused(Exception):
    """A station command was refused; ``str(exc)`` is a sentence for the screen."""


OVERTAKEN_BY_EMERGENCY = "not sent, the emergency deflate came after it was asked for."
"""Why a command asked for before an emergency deflate is dropped rather than sent after it."""


# Cuff ``state`` values: the controller's channel states plus the station's own.
OFFLINE = "OFFLINE"
"""The cuff's controller link is down: pressure unknown, never shown as zero."""
CONNECTING = "CONNECTING"
"""The link has not said HELLO yet."""


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """The set/rep timer of a therapy session running on a cuff."""

    plan_id: str
    plan_name: str
    patient_id: str
    phase: str
    """``inflating`` | ``set`` | ``rest`` | ``paused`` | ``done`` | ``stopped`` | ``between`` (exercises)."""
    set_index: int
    """1-based number of the current set."""
    set_count: int
    rep: int
    """Reps done in the current set (metronome, corrected by hand and by detected contractions)."""
    reps_target: int
    """Reps prescribed for the current set; 0 for plans without reps (passive, walking, IPC)."""
    beat: bool
    """True for the half of each metronome period in which the patient should contract."""
    cadence_s: float
    phase_remaining_s: float | None
    """Countdown of a timed phase (rest, on/off cycle); None for a rep-counted set."""
    cuffs: tuple[str, ...]
    """All cuffs the session drives (a pair for both legs)."""
    detected_reps: int = 0
    """Contractions detected in the cuff pressure during this set."""
    message: str = ""


@dataclass(frozen=True, slots=True)
class LopProgress:
    """A LOP measurement under way or just finished on a cuff."""

    state: str
    """``running`` | ``done`` | ``failed``."""
    pressure_step: float
    elapsed_s: float
    lop: float | None = None
    confidence: float | None = None
    message: str = ""
    bracket_low: float | None = None
    """Highest pressure held where the pulse was seen (a measured LOP lies above it), mmHg."""
    bracket_high: float | None = None
    """Lowest pressure held above it where the pulse's absence was confirmed, mmHg."""
    resolution: float | None = None
    """Width of that bracket, mmHg: the LOP is its middle, within half of it."""


@dataclass(frozen=True, slots=True)
class CuffSnapshot:
    id: str
    label: str
    """Where the cuff sits, e.g. ``left thigh``."""
    limb: str
    """``arm`` | ``leg``."""
    controller: str
    channel: int
    state: str
    """``VENTED`` | ``INFLATING`` | ``HOLDING`` | ``VENTING`` | ``FAULT`` | ``OFFLINE`` | ``CONNECTING``."""
    online: bool
    pressure: float | None
    """Newest reading in mmHg; None when offline or no sample yet."""
    target: float
    """Commanded target in mmHg; 0 when vented."""
    lop: float | None
    target_pct_lop: float | None
    pressure_pct_lop: float | None
    max_pct_lop: float
    """The highest % LOP this cuff may be set to."""
    tolerance: float
    """Alarm band around the target, mmHg."""
    latched: bool
    occlusion_s: float
    """Time under occlusion in the current episode (pressure above the occlusion threshold)."""
    occlusion_warn_s: float
    occlusion_limit_s: float
    trace: tuple[float, ...]
    """The last 10 s of pressure at 10 points a second, oldest first."""
    samples: int
    """Samples received for this cuff since start: changes whenever a new one arrives."""
    sample_age_s: float | None
    """Seconds since the newest sample arrived (station clock)."""
    alarm: Priority | None = None
    """Highest priority among this cuff's alarms that still need attention."""
    session: SessionSnapshot | None = None
    lop_measure: LopProgress | None = None
    patient_id: str | None = None
    pair: str | None = None
    """The other cuff of a two-limb session (config ``pair``), if any."""
    lop_age_s: float | None = None
    """How long ago the LOP was measured (a restored one too); None for a LOP from the config."""
    lop_position: str = ""
    width_cm: float | None = None
    """The cuff's width from the config (a LOP depends on it), if given."""


@dataclass(frozen=True, slots=True)
class ControllerSnapshot:
    id: str
    port: str
    state: str
    """``connecting`` | ``ready`` | ``lost`` | ``stopped``."""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    channels: int = 0
    dropped: int = 0
    timeouts: int = 0
    reconnects: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class AlarmSnapshot:
    id: int
    priority: Priority
    cause: str
    """Short code, e.g. ``OFF_TARGET``, ``LEAK``, ``LINK_LOST``, ``WDT``, ``OCCLUSION_LIMIT``."""
    message: str
    """A sentence naming the cuff, the cause and the figures."""
    cuff: str | None
    controller: str | None
    raised_at: float
    """Wall-clock time (epoch seconds) it was raised."""
    active: bool
    """The condition is still present."""
    acknowledged: bool
    silenced_until: float | None = None
    """Wall-clock time the audible part comes back; None when not silenced."""


@dataclass(frozen=True, slots=True)
class EmergencySnapshot:
    """The last emergency deflate: who confirmed, who did not (yet)."""

    started_at: float
    """Wall-clock time of the call."""
    confirmed: tuple[str, ...]
    """Controller ids that answered ``DEFLATE ALL`` with OK."""
    pending: tuple[str, ...]
    """Controller ids not confirmed yet; the station keeps retrying them."""
    latency_s: float | None = None
    """Call to last confirmation, once all confirmed."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class PlanSummary:
    id: str
    name: str
    description: str
    limb: str | None
    """``arm`` | ``leg`` | None for either."""
    pct_lop: float


@dataclass(frozen=True, slots=True)
class StationSnapshot:
    name: str
    time: float
    """Wall-clock time of the snapshot (epoch seconds)."""
    cuffs: tuple[CuffSnapshot, ...]
    controllers: tuple[ControllerSnapshot, ...]
    alarms: tuple[AlarmSnapshot, ...]
    """Alarms still needing attention (active or not yet acknowledged), highest priority first."""
    emergency: EmergencySnapshot | None = None
    seq: int = 0
    """Increases with every change the station makes visible."""
    role: Role = Role.OPERATOR
    """The role of the console reading this snapshot."""
    plans: tuple[PlanSummary, ...] = field(default_factory=tuple)
    notices: tuple[str, ...] = field(default_factory=tuple)
    """Lines about the station's helpers, shown while they say something (e.g. the clinic board
    is not being updated, and how many messages were lost)."""


@runtime_checkable
class StationHandle(Protocol):
    """What a console may ask of a station, local or remote.

    Every command raises :class:`CommandRefused` with a sentence for the screen
    when the station will not do it (unsafe, not allowed for the role, unknown
    cuff). ``emergency_deflate`` is never refused.
    """

    def snapshot(self) -> StationSnapshot:
        """The newest state; cheap, call it every frame."""
        ...

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        """Every alarm raised since start, newest first (for the alarm list screen)."""
        ...

    async def emergency_deflate(self) -> EmergencySnapshot:
        """DEFLATE ALL on every controller at once, ahead of anything queued."""
        ...

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        """Inflate to (or change the target to) mmHg or % LOP."""
        ...

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None: ...

    async def deflate(self, cuff_id: str) -> None: ...

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        """Acknowledge one alarm, or all of them with None."""
        ...

    async def silence(self, seconds: float = 120.0) -> None:
        """Silence the audible alarm for at most 120 s."""
        ...

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None: ...

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        """Start an automatic LOP measurement; progress shows in the cuff's snapshot."""
        ...

    async def set_patient(self, cuff_id: str, patient_id: str) -> None: ...

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None: ...

    async def session_command(self, cuff_id: str, command: str) -> None:
        """``pause`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-``."""
        ...
