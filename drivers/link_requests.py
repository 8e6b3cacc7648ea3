"""Commands in flight on a link: SEQ numbering, the window, the queue, timeouts and resends.

A :class:`RequestBook` is owned by one :class:`drivers.link.CuffLink`. It keeps
the commands sent and waiting, and matches answers to them by SEQ. It knows
nothing of connecting or of the session: it reads the link's public settings
(:class:`Owner`), is handed three callbacks, "the open port, if any", "lose
this port" and "may this line go out now" (the blind-controller rule of
:mod:`drivers.link_quiet`), and is told about every answer and every reboot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from drivers.codec import (
    MAX_SEQ,
    Err,
    Ok,
    command_body,
    format_pressure,
    frame,
)
from drivers.link_errors import (
    CommandError,
    LinkDown,
    LinkError,
    LinkState,
    LinkStats,
    LinkTimeout,
    QueueFull,
    Rebooted,
    Superseded,
)

log = logging.getLogger(__name__)

WINDOW = 4
"""Most commands in flight (sent, unanswered) at once; DEFLATE ignores it."""

QUEUE_LIMIT = 64
"""Most commands waiting behind the window; more is a runaway caller, refused with LinkError."""

_SILENT_SLACK_S = 0.02
"""Timers may fire this much early on the loop's clock; a silence that long short still counts."""

_ABANDONED_KEEP = 256
"""How many abandoned SEQs are remembered to recognise late answers."""


class Owner(Protocol):
    """What the book reads of the link that owns it, live (a changed ``answer_timeout`` applies at once)."""

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> LinkStats: ...

    @property
    def state(self) -> LinkState: ...

    @property
    def answer_timeout(self) -> float: ...

    @property
    def retries(self) -> int: ...

    @property
    def silent_after_s(self) -> float: ...


class Port(Protocol):
    """An open port as the book sees it: somewhere to write, and whether the link gave it up."""

    @property
    def writer(self) -> asyncio.StreamWriter: ...

    @property
    def lost(self) -> bool: ...

    def send(self, data: bytes) -> None: ...


PortT = TypeVar("PortT", bound=Port)


@dataclass(eq=False)
class _Request:
    """One command across its attempts; each attempt has its own SEQ."""

    tail: str
    """``VERB ARG...``: the body after ``#SEQ``."""
    future: asyncio.Future[Ok]
    urgent: bool
    attempts: int = 0
    seq: int = 0
    first_sent_at: float = 0.0
    sent_order: int = 0
    """Place of its latest attempt among all lines written on this link (1, 2, ...)."""
    timer: asyncio.TimerHandle | None = None

    @property
    def verb(self) -> str:
        return self.tail.split(" ", 1)[0]

    @property
    def channel(self) -> str:
        """The channel argument of a SET or DEFLATE (``ALL`` for DEFLATE ALL); "" for other verbs."""
        parts = self.tail.split(" ")
        return parts[1] if self.verb in ("SET", "DEFLATE") and len(parts) > 1 else ""


def _arg(value: object) -> str:
    text = format_pressure(value) if isinstance(value, float) else str(value)
    if not text or " " in text:
        raise ValueError(f"bad command argument: {value!r}")
    return text


def swallow_outcome(fut: asyncio.Future[Ok]) -> None:
    """Retrieve the outcome of a command nobody awaits, so asyncio does not log it as unhandled."""
    if not fut.cancelled():
        fut.exception()


class RequestBook(Generic[PortT]):
    """Matches answers to commands by SEQ; resends, queues and fails them."""

    def __init__(
        self,
        owner: Owner,
        *,
        first_seq: int,
        port: Callable[[], PortT | None],
        lose: Callable[[PortT, str], None],
        permit: Callable[[str], str | None] = lambda tail: None,
    ) -> None:
        """``port`` gives the open port (None when there is none), ``lose`` gives a port up for good,
        ``permit`` says why ``VERB ARG...`` may not be written now (None: it may)."""
        self._owner = owner
        self._permit = permit
        self.last_sent = 0.0
        """Loop time of the last line written (the link pings when it is old)."""
        self._port = port
        self._lose = lose
        self._seq = first_seq
        self._pending: dict[int, _Request] = {}
        self._queue: deque[_Request] = deque()
        self._abandoned: OrderedDict[int, _Request | None] = OrderedDict()
        """SEQs given up on, and the command an attempt belonged to when that command was resent."""
        self._last_answer_at = 0.0
        self._unanswered_since: float | None = None
        """Loop time of the first line written since the last answer (None: nothing unanswered)."""
        self._order = 0
        self._deflate_order: dict[str, int] = {}
        """Channel (or ``ALL``) -> place of the latest DEFLATE of it written on this link."""

    def submit(self, verb: str, args: tuple[object, ...], *, urgent: bool, require_ready: bool) -> asyncio.Future[Ok]:
        """Send now (``urgent``) or queue a command; the future resolves on its answer.

        Raises:
            LinkDown: no port is open, ``require_ready`` and the link is not READY, or the line
                may not go out now (``permit``); nothing is queued for later.
            LinkError: the queue is full.
            ValueError: an argument cannot go on the wire.
        """
        conn = self._port()
        owner = self._owner
        if conn is None or conn.lost or conn.writer.is_closing():
            raise LinkDown(f"{owner.name}: no port open ({owner.state.value})")
        if require_ready and owner.state is not LinkState.READY:
            raise LinkDown(f"{owner.name}: link {owner.state.value}")
        tail = " ".join([verb, *(_arg(a) for a in args)])
        frame(command_body(MAX_SEQ, tail))  # raises ValueError now rather than at send time
        refusal = self._permit(tail)
        if refusal is not None:
            raise LinkDown(f"{owner.name}: {refusal}")
        req = _Request(tail, asyncio.get_running_loop().create_future(), urgent)
        if urgent:
            if verb == "DEFLATE":
                self._drop_queued_sets(str(args[0]) if args else "ALL")
            self._send(conn, req)
        else:
            if len(self._queue) >= QUEUE_LIMIT:
                raise QueueFull(f"{owner.name}: {len(self._queue)} commands already waiting; {tail} refused")
            self._queue.append(req)
            self._pump()
        return req.future

    @property
    def awaiting(self) -> bool:
        """A command is written and not yet answered (or given up on)."""
        return bool(self._pending)

    def on_answer(self, msg: Ok | Err) -> None:
        """An OK or ERR arrived: resolve its command, or count it as late or unknown."""
        self._last_answer_at = asyncio.get_running_loop().time()
        self._unanswered_since = None
        req = self._pending.pop(msg.seq, None)
        if req is None:
            if msg.seq not in self._abandoned:
                self._owner.stats.errors += 1
                log.warning("%s: answer to unknown #%d ignored", self._owner.name, msg.seq)
                return
            self._owner.stats.late_answers += 1
            earlier = self._abandoned[msg.seq]
            if earlier is None or earlier.future.done() or self._pending.get(earlier.seq) is not earlier:
                return
            # A late answer to an earlier attempt of a command still being resent: the controller did
            # it (every command is idempotent), so this answer is the command's.
            req = earlier
            del self._pending[req.seq]
            self._abandon(req.seq)
        if req.timer is not None:
            req.timer.cancel()
        if not req.future.done():
            if isinstance(msg, Ok):
                req.future.set_result(msg)
            else:
                req.future.set_exception(CommandError(msg.code, msg.text, req.tail.split(" ", 1)[0]))
        if self._queue:
            self._pump()

    def fail_all(self, exc: LinkError, *, stopping: bool = False) -> None:
        """Fail every command sent or waiting with ``exc`` (the link went down).

        ``stopping``: the link is being stopped for good, so each failure counts as seen. A caller that
        left its future to a done-callback, or stopped awaiting it, is usually ending too, and its loop
        may close before the callback runs; the exception would then be reported at exit as never
        retrieved, for a command that failed only because the link was stopped on purpose."""
        reqs = list(self._pending.values()) + list(self._queue)
        self._unanswered_since = None
        for seq in self._pending:
            self._abandon(seq)
        self._pending.clear()
        self._queue.clear()
        for req in reqs:
            if req.timer is not None:
                req.timer.cancel()
            if not req.future.done():
                req.future.set_exception(exc)
                if stopping:
                    req.future.exception()  # marks it retrieved; an awaiter still gets the exception

    def fail_all_but_deflates(self, exc: LinkError) -> None:
        """Fail every command sent or waiting with ``exc``, except the DEFLATEs (they go on to their answer)."""
        for seq, req in list(self._pending.items()):
            if req.tail.startswith("DEFLATE "):
                continue
            del self._pending[seq]
            self._abandon(seq)
            self._fail(req, exc)
        keep = deque(req for req in self._queue if req.tail.startswith("DEFLATE "))
        for req in self._queue:
            if not req.tail.startswith("DEFLATE "):
                self._fail(req, exc)
        self._queue = keep

    def drop_sets_on_boot(self, conn: PortT) -> None:
        """Fail every queued or unanswered SET; DEFLATE the channels of the unanswered ones.

        An unanswered SET may have been sent before the BOOT line was read and so reached the
        new firmware; the DEFLATE that follows it on the wire undoes it (vented anyway by the boot).
        """
        exc_text = f"{self._owner.name}: controller rebooted before confirming"
        in_flight: list[str] = []
        for seq, req in list(self._pending.items()):
            parts = req.tail.split(" ")
            if parts[0] != "SET":
                continue
            del self._pending[seq]
            self._abandon(seq)
            if req.timer is not None:
                req.timer.cancel()
            in_flight.append(parts[1] if len(parts) > 1 else "ALL")
            if not req.future.done():
                req.future.set_exception(Rebooted(f"{exc_text} {req.tail}; not resent"))
                req.future.exception()
        keep: deque[_Request] = deque()
        for req in self._queue:
            if req.tail.startswith("SET "):
                if not req.future.done():
                    req.future.set_exception(Rebooted(f"{exc_text}; queued {req.tail} dropped"))
                    req.future.exception()
            else:
                keep.append(req)
        self._queue = keep
        for ch in dict.fromkeys(in_flight):
            if conn.lost:
                break
            log.warning("%s: SET on channel %s was in flight at a reboot; deflating it", self._owner.name, ch)
            deflate = _Request(f"DEFLATE {ch}", asyncio.get_running_loop().create_future(), True)
            deflate.future.add_done_callback(swallow_outcome)
            self._send(conn, deflate)
        self._pump()

    # ------------------------------------------------------------------ internals

    def _drop_queued_sets(self, channel: str) -> None:
        """A deflate wins over any SET of the same channel not yet on the wire: it never goes out after it."""
        keep: deque[_Request] = deque()
        for req in self._queue:
            parts = req.tail.split(" ")
            if parts[0] == "SET" and (channel == "ALL" or parts[1] == channel):
                if not req.future.done():
                    req.future.set_exception(
                        Superseded(f"{self._owner.name}: {req.tail} dropped: DEFLATE {channel} went first")
                    )
                    req.future.exception()  # retrieved: nobody may be awaiting it any more
            else:
                keep.append(req)
        self._queue = keep

    def _fail(self, req: _Request, exc: LinkError) -> None:
        if req.timer is not None:
            req.timer.cancel()
        if not req.future.done():
            req.future.set_exception(exc)

    def _pump(self) -> None:
        """Send queued commands while the window has room (those that may not go out now fail)."""
        conn = self._port()
        if conn is None or conn.lost:
            return
        while self._queue and len(self._pending) < WINDOW:
            req = self._queue[0]
            if not req.future.done() and self._deflate_unanswered(req):
                return  # the queue keeps its order: the rest waits behind this SET
            self._queue.popleft()
            if req.future.done():
                continue
            refusal = self._permit(req.tail)
            if refusal is not None:
                self._fail(req, LinkDown(f"{self._owner.name}: {refusal}"))
            else:
                self._send(conn, req)

    def _deflate_unanswered(self, req: _Request) -> bool:
        """A SET waits while a DEFLATE of its channel (or ALL) is unanswered: a resend of that
        DEFLATE would otherwise reach the controller after the SET and undo it."""
        if req.verb != "SET":
            return False
        return any(p.verb == "DEFLATE" and p.channel in ("ALL", req.channel) for p in self._pending.values())

    def _deflated_since(self, req: _Request) -> bool:
        """A DEFLATE of this SET's channel went out after the SET's latest attempt: resending the
        SET now would inflate a cuff that was deflated after it."""
        if req.verb != "SET":
            return False
        latest = max(self._deflate_order.get("ALL", 0), self._deflate_order.get(req.channel, 0))
        return latest > req.sent_order

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = 1 if seq >= MAX_SEQ else seq + 1
        return seq

    def _send(self, conn: PortT, req: _Request) -> None:
        """Register the waiter for a fresh SEQ, then write the line."""
        loop = asyncio.get_running_loop()
        seq = self._next_seq()
        self._abandoned.pop(seq, None)
        req.seq = seq
        req.attempts += 1
        self._order += 1
        req.sent_order = self._order
        if req.verb == "DEFLATE":
            self._deflate_order[req.channel] = self._order
        now = loop.time()
        if req.attempts == 1:
            req.first_sent_at = now
        if self._unanswered_since is None:
            self._unanswered_since = now
        self._pending[seq] = req
        req.timer = loop.call_later(self._owner.answer_timeout, self._on_timeout, req, seq)
        self.last_sent = now
        try:
            conn.send(frame(f"#{seq} {req.tail}"))
        except Exception as exc:  # a transport that raises instead of reporting via connection_lost
            log.exception("%s: write failed", self._owner.name)
            self._lose(conn, f"write failed: {exc}")

    def _on_timeout(self, req: _Request, seq: int) -> None:
        if self._pending.get(seq) is not req:
            return
        del self._pending[seq]
        self._abandon(seq, req)
        self._owner.stats.timeouts += 1
        conn = self._port()
        refusal = None if req.tail.startswith("DEFLATE ") else self._permit(req.tail)
        if req.future.done():
            pass  # the caller gave up; nothing to resend
        elif self._deflated_since(req):
            req.future.set_exception(
                Superseded(f"{self._owner.name}: {req.tail} unanswered and a DEFLATE went out after it; not resent")
            )
        elif refusal is not None:
            req.future.set_exception(LinkDown(f"{self._owner.name}: {refusal}; {req.tail} not resent"))
        elif req.attempts <= self._owner.retries and conn is not None and not conn.lost:
            self._owner.stats.resends += 1
            log.debug("%s: #%d %s unanswered, resending", self._owner.name, seq, req.tail)
            self._send(conn, req)
        else:
            req.future.set_exception(
                LinkTimeout(f"{self._owner.name}: no answer to {req.tail} after {req.attempts} attempts")
            )
            since = self._unanswered_since
            now = asyncio.get_running_loop().time()
            if conn is not None and since is not None and now - since >= self._owner.silent_after_s - _SILENT_SLACK_S:
                self._lose(
                    conn,
                    f"controller silent: no answer to anything for {now - since:.1f} s "
                    f"({req.tail} unanswered in {req.attempts} attempts)",
                )
                return
        self._pump()

    def _abandon(self, seq: int, resent: _Request | None = None) -> None:
        """Give up on ``seq``; ``resent``: its command, which a late answer to it may still resolve."""
        self._abandoned[seq] = resent
        if len(self._abandoned) > _ABANDONED_KEEP:
            self._abandoned.popitem(last=False)
