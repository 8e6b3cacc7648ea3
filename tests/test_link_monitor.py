"""The monitor of one open port (drivers/link_monitor.py), on its own: the samples are looked at before a
keepalive goes out, so a link never sends a last PING in the turn it finds the controller blind.

That PING only feeds the controller's watchdog, the safety that must vent a cuff nobody sees (issue 11, item 1;
drivers/link_quiet.py). The full rule runs against real ptys in tests/test_link_blind.py; here the one turn in
which both are due is built on purpose, which the timing of a real link makes rare.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from drivers.link_errors import LinkStats
from drivers.link_monitor import watch
from drivers.link_quiet import QuietRule

W_MS = 600


@dataclass
class FakeLink:
    name: str = "T"
    stats: LinkStats = field(default_factory=LinkStats)
    watchdog_ms: int = W_MS
    keepalive_enabled: bool = True
    stream_rate: int = 100
    last_sample_at: float | None = None


@dataclass
class FakeConn:
    lost: bool = False
    sample_ref: float = 0.0


class FakeRequests:
    """Records what the monitor submits; nothing is written anywhere."""

    def __init__(self, last_sent: float) -> None:
        self.last_sent = last_sent
        self.submitted: list[str] = []

    def submit(self, verb: str, args: tuple[Any, ...], **_kw: Any) -> asyncio.Future[Any]:
        self.submitted.append(verb)
        return asyncio.get_running_loop().create_future()


async def test_samples_stopped_and_a_ping_due_in_the_same_turn_go_blind_without_the_ping() -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    quiet = QuietRule(W_MS)
    # The last sample 2 s ago (blind after 0.6 s), the last write a whole watchdog ago (a PING due).
    link, conn, requests = FakeLink(last_sample_at=now - 2.0), FakeConn(), FakeRequests(now - W_MS / 1000)
    blinded: list[str] = []

    def blind(c: Any, reason: str) -> None:
        blinded.append(reason)
        quiet.go_blind()
        c.lost = True  # ends the monitor's loop: what follows in the turn is what is asserted

    await asyncio.wait_for(watch(link, conn, requests, quiet, lambda c, r: None, blind), 2.0)  # type: ignore[arg-type]
    assert blinded and "blind" in blinded[0]
    assert requests.submitted == [], "a PING went out in the turn that found the samples stopped"


async def test_with_samples_flowing_the_ping_still_goes_out() -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    quiet = QuietRule(W_MS)
    # A sample "from the future": however late the monitor's first turn comes, it is not blind then.
    link, conn, requests = FakeLink(last_sample_at=now + 10.0), FakeConn(), FakeRequests(now - W_MS / 1000)
    blinded: list[str] = []
    task = asyncio.create_task(
        watch(link, conn, requests, quiet, lambda c, r: None, lambda c, r: blinded.append(r))  # type: ignore[arg-type]
    )
    try:
        for _ in range(100):
            await asyncio.sleep(0)
            if requests.submitted:
                break
        assert requests.submitted == ["PING"] and blinded == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
