"""The station's plug for the sessions/LOP engine, and the commands it serves.

The station knows only the :class:`SessionHook` protocol; the engine
(:class:`~console.therapy.manager.TherapyManager`) is attached later, and until
then its commands are refused with a sentence. Every refusal is told to
observers, every accepted command goes in the audit trail.
:class:`SessionCommands` is a mixin of :class:`~console.station.station.Station`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from console.common.api import CommandRefused, LopProgress, SessionSnapshot
from console.common.figures import number_arg
from console.station.cuff import CuffState
from console.station.events import _actor
from console.station.supervisor import ControllerState

log = logging.getLogger("console.station.station")


class SessionHook(Protocol):
    """What the sessions/LOP engine plugs into the station (see :meth:`Station.attach_sessions`)."""

    async def measure_lop(self, cuff_id: str, *, position: str) -> None: ...

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None: ...

    async def session_command(self, cuff_id: str, command: str) -> None: ...

    def cuff_extras(self, cuff_id: str) -> tuple[SessionSnapshot | None, LopProgress | None]: ...

    def on_emergency(self) -> None: ...

    def manual_refusal(self, cuff_id: str) -> str | None:
        """Why the operator may not inflate this cuff by hand now (it is being measured), or None."""
        ...


class SessionCommands:
    """LOP measurement and session commands, passed to the attached engine (a mixin of Station)."""

    _sessions: SessionHook | None
    _dirty: bool
    _lookup: Callable[[str], tuple[CuffState, ControllerState]]
    _refuse: Callable[[str, str], CommandRefused]
    _set_target: Callable[..., Any]
    record_command: Callable[[str, str], None]

    def attach_sessions(self, hook: SessionHook) -> None:
        """Plug in the sessions/LOP engine; until then those commands are refused."""
        self._sessions = hook

    async def apply_target(self, cuff_id: str, mmhg: float, *, purpose: str, what: str) -> None:
        """The therapy engine's inflate: ``purpose`` ``lop`` or ``full_occlusion`` lifts only the % LOP
        limits (see :meth:`Supervisor.check_target`); the ceiling, the controller maximum, latches,
        links and an unconfirmed emergency still refuse. Not put in the audit trail (the engine
        records what it does); a refusal is told to observers."""
        try:
            cuff, ctrl = self._lookup(cuff_id)
            await self._set_target(cuff, ctrl, round(number_arg(mmhg, f"{cuff_id}: the pressure"), 1), purpose=purpose)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None

    def mark_changed(self) -> None:
        """Something shown in the snapshot changed outside the station (session timer, LOP progress)."""
        self._dirty = True

    def _manual_refusal(self, cuff_id: str) -> str | None:
        hook = self._sessions
        fn = getattr(hook, "manual_refusal", None) if hook is not None else None
        if fn is None:
            return None
        try:
            return fn(cuff_id)
        except Exception:
            log.exception("station: sessions.manual_refusal(%s) failed", cuff_id)
            return None

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        what = f"measure LOP {cuff_id} ({position})"
        if self._sessions is None:
            raise self._refuse(what, "Automatic LOP measurement is not available yet.")
        try:
            await self._sessions.measure_lop(cuff_id, position=position)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        names = "+".join(cuff_ids) if isinstance(cuff_ids, (list, tuple)) else repr(cuff_ids)
        what = f"start session {plan_id} on {names} for patient {patient_id}"
        if self._sessions is None:
            raise self._refuse(what, "Sessions are not available yet.")
        try:
            await self._sessions.start_session(cuff_ids, plan_id, patient_id)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)

    async def session_command(self, cuff_id: str, command: str) -> None:
        what = f"session {command} {cuff_id}"
        if self._sessions is None:
            raise self._refuse(what, "Sessions are not available yet.")
        try:
            await self._sessions.session_command(cuff_id, command)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self.record_command(_actor.get(), what)
