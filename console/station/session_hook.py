"""The plug through which the sessions/LOP engine (therapy) attaches to the station.

The engine knows the station; the station knows only this protocol, so the engine
package is never imported by it.
"""

from __future__ import annotations

from typing import Protocol

from console.common.api import LopProgress, SessionSnapshot


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
