"""What therapy needs from the station engine, declared on therapy's side.

The engine (:class:`console.station.station.Station`) satisfies these protocols as
it is: therapy never imports it, nor ``drivers/``, and reaches the cuffs only
through the methods below (a step is ``apply_target``, a vent ``deflate``, a
sensor zero ``zero_sensor``). Members are read-only properties so that plain
attributes, properties and frozen dataclass fields all fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from console.common.api import AlarmSnapshot
from console.common.clock import Clock
from console.records.rows import SessionCuffRecord
from console.station.limits import ControllerView
from console.therapy.plans import Plan


class CuffSpecView(Protocol):
    """What the config says about a cuff (:class:`console.station.cuff.CuffSpec`)."""

    @property
    def controller(self) -> str: ...

    @property
    def limb(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def width_cm(self) -> float | None: ...

    @property
    def tolerance(self) -> float:
        """The off-target alarm band in mmHg (``[safety] tolerance_mmhg``): the session's record keeps it."""
        ...


class CuffView(Protocol):
    """The station's live view of one cuff (:class:`console.station.cuff.CuffState`)."""

    @property
    def id(self) -> str: ...

    @property
    def spec(self) -> CuffSpecView: ...

    @property
    def pressure(self) -> float | None: ...

    @property
    def target(self) -> float: ...

    @property
    def ctrl_state(self) -> str | None: ...

    @property
    def lop(self) -> float | None: ...

    @property
    def lop_position(self) -> str: ...

    @property
    def lop_width_cm(self) -> float | None: ...

    @property
    def lop_record_id(self) -> int | None: ...

    @property
    def patient_id(self) -> str | None: ...

    @property
    def latched(self) -> bool: ...

    @property
    def latch_cause(self) -> str: ...


class LimitsView(Protocol):
    @property
    def ceiling_mmhg(self) -> float: ...

    @property
    def occlusion_threshold_mmhg(self) -> float: ...


class MeasuringView(Protocol):
    """The supervisor's set of cuffs under a LOP measurement (its off-target rule leaves them alone)."""

    @property
    def measuring(self) -> set[str]: ...


class EmergencyView(Protocol):
    @property
    def retrying(self) -> tuple[str, ...]:
        """Controllers that have not confirmed the last emergency deflate yet."""
        ...


class PlanBook(Protocol):
    """The station's config as far as sessions read it (:class:`console.config.schema.StationConfig`)."""

    @property
    def plans(self) -> Mapping[str, Plan]: ...

    def plan_refusal(self, plan: Plan, cuff_id: str) -> str | None: ...


class StationEventView(Protocol):
    """What therapy reads of a station event (:class:`console.station.events.StationEvent`)."""

    @property
    def kind(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def alarm(self) -> AlarmSnapshot | None: ...


@runtime_checkable
class RecordsPort(Protocol):
    """The writes therapy makes to the station's records (:class:`console.records.store.Records`).

    Runtime-checkable: the station holds its records as its own, narrower sink, so therapy
    checks that they also take these writes before making them.
    """

    def add_patient(self, patient_id: str, *, at: float, note: str = "") -> bool: ...

    def record_lop(
        self,
        patient_id: str,
        *,
        cuff_id: str,
        limb: str,
        label: str,
        position: str,
        lop_mmhg: float,
        source: str,
        at: float,
        cuff_width_cm: float | None = None,
        confidence: float | None = None,
    ) -> int: ...

    def start_session(
        self,
        patient_id: str,
        *,
        cuffs: Sequence[str],
        plan_id: str,
        plan_name: str,
        started_at: float,
        target_mmhg: float | None = None,
        target_pct_lop: float | None = None,
        lop_mmhg: float | None = None,
        position: str | None = None,
        per_cuff: Sequence[SessionCuffRecord] = (),
        sets_planned: int | None = None,
    ) -> int: ...

    def session_sample(
        self,
        session_id: int,
        cuff: str,
        t: float,
        pmin: float,
        pmean: float,
        pmax: float,
        target: float,
        in_band: float | None = None,
        *,
        t_end: float | None = None,
        held_s: float | None = None,
    ) -> bool: ...

    def end_session(
        self,
        session_id: int,
        reason: str,
        *,
        ended_at: float,
        sets_done: int,
        reps_per_set: Sequence[int],
        occlusion_s: float,
        fidelity: float | None,
        sets_stopped: int | None = None,
        per_cuff: Mapping[str, tuple[float, float | None]] | None = None,
    ) -> None: ...


class TherapyStation(Protocol):
    """The station as therapy drives it: live state to read, commands that keep every safety rule."""

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> PlanBook: ...

    @property
    def cuffs(self) -> Mapping[str, CuffView]: ...

    @property
    def limits(self) -> LimitsView: ...

    @property
    def supervisor(self) -> MeasuringView: ...

    @property
    def emergency(self) -> EmergencyView: ...

    @property
    def records(self) -> object | None:
        """The station's records, written to by therapy when they are a :class:`RecordsPort`."""
        ...

    def lookup(self, cuff_id: str) -> tuple[CuffView, ControllerView]:
        """The cuff and its controller, or :class:`~console.common.api.CommandRefused` naming an unknown cuff."""
        ...

    def acting_as(self, who: str) -> AbstractContextManager[None]: ...

    def mark_changed(self) -> None: ...

    def record_command(self, who: str, what: str) -> None: ...

    def add_sample_listener(self, fn: Callable[[str, float, float, float], None]) -> Callable[[], None]: ...

    def add_observer(self, fn: Callable[[StationEventView], None]) -> Callable[[], None]: ...

    async def apply_target(self, cuff_id: str, mmhg: float, *, purpose: str, what: str) -> None:
        """Inflate for therapy: ``purpose`` ``lop`` or ``full_occlusion`` lifts only the % LOP limits."""
        ...

    async def deflate(self, cuff_id: str) -> None: ...

    async def set_lop(
        self,
        cuff_id: str,
        lop: float,
        *,
        position: str,
        cuff_width_cm: float | None,
        source: str = "doppler",
        confidence: float | None = None,
    ) -> None: ...

    async def set_patient(self, cuff_id: str, patient_id: str) -> None: ...

    async def zero_sensor(self, cuff_id: str) -> str:
        """ZERO the cuff's pressure sensor: ``""`` when done, else why not (``BUSY``, a link error)."""
        ...
