"""The records of the therapy jobs in flight: one LOP measurement or one session.

Plain state shared by :mod:`~console.therapy.manager` (the driver),
:mod:`~console.therapy.lop_job` and :mod:`~console.therapy.session_job`,
so that neither engine module has to import the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from console.common.api import LopProgress
from console.records.rows import SecondAggregator
from console.therapy.lop import LopMeasurement
from console.therapy.session import SessionRunner


@dataclass(eq=False)
class _Job:
    """What both kinds of job share: the cuffs and the chain of actions in flight."""

    cuffs: tuple[str, ...]
    chain: asyncio.Task[None] | None = None

    def idle(self) -> bool:
        return self.chain is None or self.chain.done()


@dataclass(eq=False)
class _LopJob(_Job):
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


@dataclass(eq=False)
class _SessionJob(_Job):
    runner: SessionRunner | None = None
    plan: Any = None
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


class JobHost:
    """What the job mixins (:mod:`~console.therapy.lop_job`, :mod:`~console.therapy.session_job`)
    use of :class:`~console.therapy.manager.TherapyManager`, declared once."""

    station: Any
    clock: Any
    _lops: dict[str, _LopJob]
    _sessions: dict[str, _SessionJob]
    _feeds: dict[str, _Job]
    _chain: Callable[[_Job, Callable[[], Awaitable[None]]], None]
    _deflate: Callable[[str, str], Awaitable[None]]
    _rec: Callable[..., Any]
    _kick: Callable[[], None]
    _ensure_driver: Callable[[], None]
    _check_free: Callable[[str], None]
    _first_reading: Callable[[str], Awaitable[None]]
