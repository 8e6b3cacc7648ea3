"""The commands the station passes to its sessions/LOP engine, once one is attached.

The station knows only the :class:`~console.station.session_hook.SessionHook` protocol; the
engine (:class:`~console.therapy.manager.TherapyManager`) is attached later, and until then
its commands are refused with a sentence. Every refusal is told to observers (``refuse``),
every accepted command goes in the audit trail (``record_command``).

The arguments that reach the records and every screen (a body position, a patient id, the cuff
and plan names) are checked here, at the station's edge, for every console alike; a refusal
quotes what it was given with ``repr`` so a control character is shown, never acted on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from console.common.api import CommandRefused
from console.common.facts import PATIENT_ID, PATIENT_ID_RULE, POSITIONS
from console.station.events import actor_var
from console.station.session_hook import SessionHook

log = logging.getLogger(__name__)


class SessionCommands:
    """LOP measurement and session commands, passed to the attached engine.

    Args:
        refuse: ``refuse(what, why)`` tells observers of a refusal and returns the exception to raise.
        records_broken: why the records are not being written now, or "" (then sessions may start).
        record_command: ``record_command(who, what)`` puts an accepted command in the audit trail.
    """

    def __init__(
        self,
        refuse: Callable[[str, str], CommandRefused],
        record_command: Callable[[str, str], None],
        records_broken: Callable[[], str] = lambda: "",
    ) -> None:
        self._refuse = refuse
        self._record_command = record_command
        self._records_broken = records_broken
        self.hook: SessionHook | None = None
        """The attached engine; None until :meth:`Station.attach_sessions`."""

    def manual_refusal(self, cuff_id: str) -> str | None:
        """Why the operator may not inflate this cuff by hand now (the engine is measuring it), or None."""
        hook = self.hook
        if hook is None:
            return None
        try:
            return hook.manual_refusal(cuff_id)
        except Exception:
            log.exception("station: sessions.manual_refusal(%s) failed", cuff_id)
            return None

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        what = f"measure LOP {cuff_id!r} ({position!r})"
        if position not in POSITIONS:
            raise self._refuse(what, f"A body position is one of {', '.join(POSITIONS)}, not {position!r}.")
        what = f"measure LOP {cuff_id} ({position})"
        if self.hook is None:
            raise self._refuse(what, "Automatic LOP measurement is not available yet.")
        try:
            await self.hook.measure_lop(cuff_id, position=position)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self._record_command(actor_var.get(), what)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        names = "+".join(cuff_ids) if _all_text(cuff_ids) else repr(cuff_ids)
        what = f"start session {plan_id!r} on {names!r} for patient {patient_id!r}"
        if not isinstance(patient_id, str) or not PATIENT_ID.fullmatch(patient_id.strip()):
            raise self._refuse(what, f"A patient id is {PATIENT_ID_RULE} (got {patient_id!r}).")
        if self.hook is None:
            raise self._refuse(what, "Sessions are not available yet.")
        broken = self._records_broken()
        if broken:
            raise self._refuse(what, f"Records are not being written ({broken}): no new session until they work again.")
        try:
            await self.hook.start_session(cuff_ids, plan_id, patient_id)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        # Accepted: the plan and the cuffs are the config's own names now.
        self._record_command(actor_var.get(), f"start session {plan_id} on {names} for patient {patient_id.strip()}")

    async def session_command(self, cuff_id: str, command: str) -> None:
        what = f"session {command!r} {cuff_id!r}"
        if self.hook is None:
            raise self._refuse(what, "Sessions are not available yet.")
        try:
            await self.hook.session_command(cuff_id, command)
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        self._record_command(actor_var.get(), f"session {command} {cuff_id}")


def _all_text(items: object) -> bool:
    return isinstance(items, (list, tuple)) and all(isinstance(i, str) for i in items)
