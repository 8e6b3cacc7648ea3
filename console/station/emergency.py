"""Emergency deflate: DEFLATE ALL to every controller at once, then keep at it.

The writes come first, all of them, synchronously (``deflate_all_now`` puts the
line on the transport inside the call); only then does anything await. A
controller that does not confirm within ``confirm_s`` gets a high alarm and a
background task that retries until it does; the controller's own watchdog
vents it meanwhile if the link is really gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from console.common.api import EmergencySnapshot
from console.common.clock import Clock

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 0.2
"""Between retries to a controller that has not confirmed (real time: it paces I/O)."""


class DeflatingLink(Protocol):
    def deflate_all_now(self) -> asyncio.Future[Any]: ...


@dataclass(eq=False)
class EmergencyRun:
    """One emergency deflate between its writes and its confirmations."""

    t0: float
    """``perf_counter()`` at the call: latency is a real I/O measurement, not station time."""
    started_at: float
    by: str
    links: dict[str, DeflatingLink | None]
    futures: dict[str, asyncio.Future[object]]
    confirmed_at: dict[str, float] = field(default_factory=dict)
    run_id: int = 0

    def callback(self, cid: str) -> Callable[[asyncio.Future[object]], None]:
        def done(fut: asyncio.Future[object]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                self.confirmed_at[cid] = time.perf_counter()

        return done


class EmergencyDeflater:
    """Runs emergency deflates and the retries of unconfirmed controllers.

    Args:
        clock: the station clock, for the snapshot's times.
        confirm_s: how long a controller has to confirm before it is alarmed.
        on_unconfirmed: called with a controller id that missed ``confirm_s``.
        on_confirmed: called with a controller id when its confirmation arrives late.
        on_update: called with the new snapshot whenever it changes.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        confirm_s: float,
        on_unconfirmed: Callable[[str], None],
        on_confirmed: Callable[[str], None],
        on_update: Callable[[EmergencySnapshot], None],
    ) -> None:
        self._clock = clock
        self.confirm_s = confirm_s
        self._on_unconfirmed = on_unconfirmed
        self._on_confirmed = on_confirmed
        self._on_update = on_update
        self.last: EmergencySnapshot | None = None
        self._retries: dict[str, asyncio.Task[None]] = {}
        self._run_id = 0

    def fire(self, links: Mapping[str, DeflatingLink | None], *, by: str = "") -> EmergencyRun:
        """Write DEFLATE ALL to every link now, synchronously, before anything awaits."""
        t0 = time.perf_counter()
        futures: dict[str, asyncio.Future[object]] = {}
        for cid, link in links.items():
            if link is None:
                continue
            try:
                futures[cid] = link.deflate_all_now()
            except Exception as exc:  # LinkDown: no port open right now
                log.warning("emergency: %s not reachable: %s", cid, exc)
        run = EmergencyRun(t0=t0, started_at=self._clock.wall(), by=by, links=dict(links), futures=futures)
        for cid, fut in futures.items():
            fut.add_done_callback(run.callback(cid))
        # anything still retrying from an earlier emergency is superseded by this one
        self._run_id += 1
        run.run_id = self._run_id
        for task in self._retries.values():
            task.cancel()
        self._retries.clear()
        return run

    async def confirm(self, run: EmergencyRun) -> EmergencySnapshot:
        """Wait up to ``confirm_s`` for the confirmations; alarm and retry the rest."""
        if run.futures:
            await asyncio.wait(list(run.futures.values()), timeout=self.confirm_s)
            await asyncio.sleep(0)  # let the done callbacks run
        confirmed = tuple(cid for cid in run.links if cid in run.confirmed_at)
        pending = tuple(cid for cid in run.links if cid not in run.confirmed_at)
        latency: float | None = None
        if not pending:
            latency = (max(run.confirmed_at.values()) - run.t0) if run.confirmed_at else 0.0
        snap = EmergencySnapshot(
            started_at=run.started_at, confirmed=confirmed, pending=pending, latency_s=latency, by=run.by
        )
        if run.run_id == self._run_id:
            self._publish(snap)
            for cid in pending:
                # the retry first: a failure while alarming must not leave a controller unretried
                self._retries[cid] = asyncio.create_task(
                    self._retry(run.run_id, cid, run.links[cid], run.futures.get(cid), run.t0),
                    name=f"emergency-retry:{cid}",
                )
                try:
                    self._on_unconfirmed(cid)
                except Exception:
                    log.exception("emergency: alarming unconfirmed controller %s failed", cid)
        return snap

    async def deflate_all(self, links: Mapping[str, DeflatingLink | None], *, by: str = "") -> EmergencySnapshot:
        """:meth:`fire` then :meth:`confirm`."""
        return await self.confirm(self.fire(links, by=by))

    async def _retry(
        self, run_id: int, cid: str, link: DeflatingLink | None, first: asyncio.Future[object] | None, t0: float
    ) -> None:
        fut = first
        while True:
            if fut is not None:
                try:
                    await asyncio.shield(fut)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("emergency: %s not confirmed yet: %s", cid, exc)
                await asyncio.sleep(RETRY_PAUSE_S)
            if link is None:
                return
            try:
                fut = link.deflate_all_now()
            except Exception:
                fut = None
                await asyncio.sleep(RETRY_PAUSE_S)
        if run_id != self._run_id:
            return
        self._retries.pop(cid, None)
        last = self.last
        if last is not None:
            pending = tuple(p for p in last.pending if p != cid)
            confirmed = last.confirmed + (cid,)
            latency = (time.perf_counter() - t0) if not pending else None
            self._publish(
                EmergencySnapshot(
                    started_at=last.started_at, confirmed=confirmed, pending=pending, latency_s=latency, by=last.by
                )
            )
        self._on_confirmed(cid)

    def _publish(self, snap: EmergencySnapshot) -> None:
        self.last = snap
        try:
            self._on_update(snap)
        except Exception:  # an observer's failure must not stop the retries that follow
            log.exception("emergency: publishing the snapshot failed")

    @property
    def retrying(self) -> tuple[str, ...]:
        return tuple(self._retries)

    async def close(self) -> None:
        """Stop retrying (the station is stopping)."""
        tasks = list(self._retries.values())
        self._retries.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
