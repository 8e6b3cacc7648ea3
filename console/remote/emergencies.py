"""Emergency deflates from consoles: every request carried out, a flood merged into the one in progress.

Without this, one observer could send thousands of ``emergency_deflate`` lines a read, and each
would write DEFLATE ALL to every controller, end every session again and commit rows to the
records: a flood of serial writes and fsyncs that crowds out the station's real work.

The rule, in order (the first request of any burst always goes out at once; nothing here can
delay or refuse an emergency deflate):

1. A request with no emergency of this server running or just finished starts one: the station's
   ``emergency_deflate()`` is scheduled in the same step the line is read, ahead of every line
   read after it, and writes DEFLATE ALL to every controller as soon as it runs.
2. A request that arrives while that emergency has not run yet (the same read's lines) joins it:
   it will do everything after this request arrived.
3. A request that arrives after it ran but while it is still in progress (DEFLATE ALL written,
   confirmations awaited), or up to ``hold_s`` after it began when every controller confirmed,
   joins it only if the station is still as that emergency left it: no cuff with a target above
   0, no session running, no LOP being measured. A second DEFLATE ALL would then write exactly
   what was written; joining saves only the durable bookkeeping (a command row, an emergency
   row, ending every session again) and the serial line.
4. Otherwise (anything raised since, a controller left unconfirmed, the hold over) the request
   starts a new emergency at once, as in 1.

A joined request gets the answer of the one it joined, and is on record: one row per console
(with its role) for each emergency it joined, saying how many requests it sent.

A flood must not cost the station much either. Requests read one after the other are decided
once (the first decides; the others came before it could run, rule 2); a joined request is a
count, its answer one JSON encoding shared by every request of that emergency
(:meth:`EmergencyDesk.reply`) and one write per console. The server reads a console whose requests
would all be joined (rules 2-3) at a pace (``clients.MERGED_PER_S`` past a burst), or not at all
while 1024 of its requests wait for an emergency still running; in both cases it reads on the
moment its next request would start an emergency of its own (looked at every 20 ms). Joining only
ever saves work that would change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from console.common.api import EmergencySnapshot, StationSnapshot
from console.remote.clients import Console
from console.remote.commands import failure_sentence
from console.remote.wire import to_wire

log = logging.getLogger(__name__)

HOLD_S = 1.0
"""How long after it began a confirmed emergency still absorbs repeats (while nothing was raised since)."""

Launch = Callable[[str, str, Coroutine[Any, Any, Any]], "asyncio.Future[Any]"]
"""``launch(who, role, coro)``: run ``coro`` as a task attributed to ``who`` in ``role`` (the station's acting_as)."""
Note = Callable[[str, str, str], None]
"""``note(who, role, what)``: a row of the audit trail."""


@dataclass(eq=False)
class _Run:
    by: str
    began: float
    wall: float
    task: asyncio.Future[Any] | None = None
    fired: bool = False
    """Its station call has run its first step (DEFLATE ALL written, targets zeroed)."""
    joined: Counter[tuple[str, str]] = field(default_factory=Counter)
    closed: bool = False


def at_rest(snap: StationSnapshot) -> bool:
    """Nothing is raised: every target 0, no session running, no LOP being measured."""
    for cuff in snap.cuffs:
        if cuff.target > 0:
            return False
        if cuff.session is not None and cuff.session.phase not in ("done", "stopped"):
            return False
        if cuff.lop_measure is not None and cuff.lop_measure.state == "running":
            return False
    return True


class EmergencyDesk:
    """Carries out the consoles' emergency deflates by the rule above.

    Args:
        station: has ``emergency_deflate()`` and ``snapshot()``.
        launch: schedules the station call as a task attributed to its sender.
        note: writes a row of the audit trail.
        hold_s: see rule 3.
    """

    def __init__(self, station: Any, launch: Launch, note: Note, *, hold_s: float = HOLD_S) -> None:
        self.station = station
        self._launch = launch
        self._note = note
        self.hold_s = hold_s
        self._run: _Run | None = None
        self.started = 0
        """Emergencies this server started at the station."""
        self.merged = 0
        """Requests that joined one in progress instead."""
        self._reply: tuple[asyncio.Future[Any], bytes] | None = None
        self._rest: tuple[StationSnapshot, bool] | None = None

    def request(self, who: str, role: str, count: int = 1) -> tuple[asyncio.Future[Any], bool]:
        """The answer to ``count`` requests read in one step (the emergency they started or joined; never
        refused), and whether they started one. The first decides; the others came before it could run,
        so they join it (rule 2)."""
        run = self._run
        if run is not None and self._joinable(run):
            run.joined[(who, role)] += count
            self.merged += count
            assert run.task is not None
            return run.task, False
        if run is not None:
            self._close(run)
        run = _Run(by=who, began=time.monotonic(), wall=time.time())
        run.task = self._launch(who, role, self._carry_out(run))
        run.task.add_done_callback(lambda _: self._ended(run))
        self._run = run
        self.started += 1
        if count > 1:
            run.joined[(who, role)] += count - 1
            self.merged += count - 1
        return run.task, True

    async def _carry_out(self, run: _Run) -> EmergencySnapshot:
        run.fired = True  # the station's first step follows at once, in this same step of the loop
        result: EmergencySnapshot = await self.station.emergency_deflate()
        return result

    def merging(self) -> bool:
        """A request now would join the emergency of this server in progress or just done (rules 2-3)."""
        run = self._run
        return run is not None and self._joinable(run)

    def absorbing(self, fut: asyncio.Future[Any]) -> bool:
        """``fut`` is the emergency in progress, not finished, and a request now would join it."""
        run = self._run
        return run is not None and run.task is fut and not fut.done() and self._joinable(run)

    def _joinable(self, run: _Run) -> bool:
        if run.closed:
            return False
        if not run.fired:
            return True  # rule 2
        task = run.task
        assert task is not None
        if task.done():
            if task.cancelled() or task.exception() is not None or getattr(task.result(), "pending", True):
                return False
            if time.monotonic() - run.began >= self.hold_s:
                return False
        try:
            snap = self.station.snapshot()
            if self._rest is None or self._rest[0] is not snap:  # the same snapshot object: the same answer
                self._rest = (snap, at_rest(snap))
            return self._rest[1]
        except Exception:  # noqa: BLE001 - when in doubt, deflate again
            log.exception("emergency: could not read the station's state; starting another deflate")
            return False

    def _ended(self, run: _Run) -> None:
        """Its station call returned: tell who joined so far, and close it once the hold is over."""
        self._tell(run)
        delay = max(0.0, run.began + self.hold_s - time.monotonic())
        try:
            asyncio.get_running_loop().call_later(delay, self._close, run)
        except RuntimeError:  # no loop any more (shutting down)
            self._close(run)

    def _close(self, run: _Run) -> None:
        if run.closed:
            return
        run.closed = True
        self._tell(run)
        if self._run is run:
            self._run = None

    def _tell(self, run: _Run) -> None:
        joined, run.joined = run.joined, Counter()
        when = time.strftime("%H:%M:%S", time.localtime(run.wall))
        for (who, role), n in joined.items():
            times = "once" if n == 1 else f"{n} times"
            self._note(
                who,
                role,
                f"EMERGENCY DEFLATE ALL ({times}; joined the one {run.by} began at {when}, "
                "still in progress with nothing raised since)",
            )

    def answer_when_done(self, client: Console, cmd_ids: list[int], work: asyncio.Future[Any]) -> None:
        """Answer a console's requests when their emergency is done: one callback and one write per console
        and emergency, however many requests joined it (no task, no syscall per request)."""
        client.unanswered += len(cmd_ids)
        client.waiting_on = work
        ids = client.answers.get(work)
        if ids is not None:
            ids.extend(cmd_ids)
            return
        client.answers[work] = list(cmd_ids)

        def done(fut: asyncio.Future[Any]) -> None:
            ids = client.answers.pop(fut, [])
            client.unanswered -= len(ids)
            client.send_line(b"".join(self.reply(fut, i) for i in ids))

        work.add_done_callback(done)

    def reply(self, done: asyncio.Future[Any], cmd_id: int) -> bytes:
        """The RESULT line for request ``cmd_id`` of the finished emergency ``done`` (encoded once per emergency)."""
        if self._reply is None or self._reply[0] is not done:
            self._reply = (done, self._body(done))
        return b'{"op":"result","id":%d,%s}\n' % (cmd_id, self._reply[1])

    @staticmethod
    def _body(done: asyncio.Future[Any]) -> bytes:
        if done.cancelled():
            error = "the station stopped before the emergency deflate was confirmed; check the screen"
        elif done.exception() is not None:
            exc = done.exception()
            assert exc is not None
            log.error("emergency deflate failed", exc_info=exc)
            error = failure_sentence("emergency_deflate", exc)
        else:
            value = json.dumps(to_wire(done.result()), separators=(",", ":"), ensure_ascii=True)
            return b'"ok":true,"value":' + value.encode("ascii")
        return b'"ok":false,"error":' + json.dumps(error, ensure_ascii=True).encode("ascii")

    def close(self) -> None:
        """Write what is still untold (the server is stopping)."""
        if self._run is not None:
            self._close(self._run)
