"""The therapy jobs in flight (one LOP measurement, one session) and the board of which cuff has which.

Plain state shared by :mod:`~console.therapy.manager` (the driver),
:mod:`~console.therapy.lop_job` and :mod:`~console.therapy.session_job`,
so that neither kind of job has to import the other.

Why the actions run in a chain per job (:meth:`Job.then`): a ``SET`` waits for
the controller's answer, and a later deflate of the same job must not overtake
it, while one slow controller must not hold up the other cuffs' jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from console.common.api import LopProgress
from console.records.rows import SecondAggregator
from console.therapy.lop import LopMeasurement
from console.therapy.plans import Plan
from console.therapy.session import SessionRunner

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """What both kinds of job share: the cuffs and the chain of actions in flight."""

    cuffs: tuple[str, ...]
    chain: asyncio.Task[None] | None = None

    def idle(self) -> bool:
        return self.chain is None or self.chain.done()

    def then(self, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()`` after the job's earlier actions (whatever became of them)."""
        prev = self.chain

        async def run() -> None:
            if prev is not None and not prev.done():
                await asyncio.wait([prev])
            try:
                await make()
            except Exception:
                log.exception("therapy: an action on %s failed", self.cuffs)

        self.chain = asyncio.get_running_loop().create_task(run(), name=f"therapy:{'+'.join(self.cuffs)}")


@dataclass(eq=False)
class LopJob(Job):
    """One LOP measurement on one cuff."""

    position: str = "seated"
    started_at: float = 0.0
    stage: str = "zeroing"
    """``zeroing`` | ``running`` | ``finishing`` (venting, storing) | ``ended``."""
    meas: LopMeasurement | None = None
    note: str = ""
    cancel_reason: str | None = None
    applied: bool = False
    """A step has reached the controller (so a target of 0 now means someone deflated it)."""
    over_since: float | None = None
    final: LopProgress | None = None
    setup: asyncio.Task[None] | None = None

    @property
    def cuff_id(self) -> str:
        return self.cuffs[0]


@dataclass(eq=False, kw_only=True)
class SessionJob(Job):
    """One plan running on one cuff or a pair."""

    runner: SessionRunner
    plan: Plan
    patient_id: str = ""
    purpose: str = "manual"
    record_id: int | None = None
    wall_offset: float = 0.0
    aggs: dict[str, SecondAggregator] = field(default_factory=dict)
    inflated: set[str] = field(default_factory=set)
    """Cuffs whose inflate reached the controller since the runner last vented them."""
    recorded_end: bool = False
    active: bool = True
    """False once the runner is done or stopped and its last actions went out."""


class JobBoard:
    """Which job each cuff has: its latest measurement, its latest session, and the one fed its samples."""

    def __init__(self) -> None:
        self.lops: dict[str, LopJob] = {}
        """Cuff id -> its latest measurement (running, or ended and still shown)."""
        self.sessions: dict[str, SessionJob] = {}
        """Cuff id -> its latest session (running, or finished and still shown)."""
        self.feeds: dict[str, Job] = {}
        """Cuff id -> the job that takes its samples now (hot path: one dict lookup per sample)."""

    def session_jobs(self) -> list[SessionJob]:
        """Every session once (a pair's session is under both its cuffs)."""
        seen: dict[int, SessionJob] = {}
        for job in self.sessions.values():
            seen.setdefault(id(job), job)
        return list(seen.values())

    def pending_tasks(self) -> list[asyncio.Task[None]]:
        out: list[asyncio.Task[None]] = []
        for lj in self.lops.values():
            out += [t for t in (lj.chain, lj.setup) if t is not None]
        for sj in self.session_jobs():
            if sj.chain is not None:
                out.append(sj.chain)
        return out

    def unfeed(self, job: Job) -> None:
        """Stop feeding the job's cuffs to it (a cuff already handed to a newer job stays with that one)."""
        for c in job.cuffs:
            if self.feeds.get(c) is job:
                del self.feeds[c]
