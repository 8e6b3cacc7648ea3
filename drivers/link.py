"""The host side of CUFF-LINK/1: one asyncio session per serial port.

A :class:`CuffLink` opens its port, says HELLO, arms the controller's watchdog,
starts the sample stream and then keeps the session alive: it matches answers
to commands by SEQ, resends unanswered commands under a new SEQ, pings when
idle, notices a vanished or silent controller and a reboot, and reconnects
forever with exponential backoff. Everything the controller reports goes to
listeners, synchronously, from the reader (the hot path).

Every HELLO (first contact, reconnect, after a reboot) must name the expected
controller serial, pinned by the caller or learned at first contact: a port
that answers as another controller is closed at once and the link reports
REFUSED (see :class:`drivers.link_hello.Identity`).

A controller whose usable samples stop is left to its own watchdog: the link
reports LOST and :attr:`CuffLink.starving`, writes nothing but a DEFLATE, and
probes again (reconnect, or a refused port's HELLO) only after a quiet that its
watchdog cannot outlast; READY needs a usable sample. The rule, and what it
assumes of the controller, is :mod:`drivers.link_quiet`.

The emergency path (:meth:`CuffLink.deflate_all_now`) writes ``DEFLATE ALL``
to the transport inside the call itself, ahead of anything queued.

The wire contract is ``shared/protocol.md``. The link owns its helpers: the
SEQ/window/queue bookkeeping (:mod:`drivers.link_requests`), the listeners
(:mod:`drivers.link_listeners`), one :mod:`drivers.link_connection` per open
port (its reading in the same module) and its keepalive and blind watch
(:mod:`drivers.link_monitor`), the setup of a port (:mod:`drivers.link_setup`)
and the quiet rule (:mod:`drivers.link_quiet`); the HELLO checks and the
expected controller are in :mod:`drivers.link_hello`, the states, counters and
errors in :mod:`drivers.link_errors`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from drivers import serial_port
from drivers.codec import (
    MAX_SEQ,
    Err,
    LineReader,
    MalformedLine,
    Ok,
    Sample,
    Status,
    format_pressure,
    parse_report,
)
from drivers.link_connection import Connection, Listening
from drivers.link_errors import (
    HelloInfo,
    LinkDown,
    LinkError,
    LinkState,
    LinkStateChange,
    LinkStats,
    LinkTimeout,
    WrongController,
)
from drivers.link_hello import Identity
from drivers.link_listeners import Listener, Listeners
from drivers.link_monitor import watch
from drivers.link_quiet import QuietRule
from drivers.link_requests import RequestBook
from drivers.link_setup import first_sample, set_up, set_up_again
from drivers.read_pacing import READ_PACE_S, check_pace

log = logging.getLogger(__name__)

OpenPort = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

STOP_DEFLATE_WAIT_S = 0.5
"""How long :meth:`CuffLink.stop` waits for the OK of its DEFLATE ALL."""


class CuffLink:
    """One CUFF-LINK/1 session over one port, reconnecting forever until stopped."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "",
        watchdog_ms: int = 1000,
        stream_hz: int = 100,
        answer_timeout: float = 0.25,
        retries: int = 2,
        backoff: tuple[float, float] = (0.1, 2.0),
        open_port: OpenPort = serial_port.open_port,
        first_seq: int = 1,
        serial: str | None = None,
        blind_after_s: float | None = None,
        silent_after_s: float | None = None,
        read_pace_s: float = READ_PACE_S,
    ) -> None:
        """``serial``: the controller expected behind ``url``; None learns it from the first HELLO.
        ``blind_after_s``: no usable sample for this long means blind (:mod:`drivers.link_quiet`;
        default 1 s, never more than the watchdog time). ``silent_after_s``: no answer to anything
        this long gives the port up as silent (never less than one command's attempts).
        ``read_pace_s``: longest hold of the streaming port between reads, shared by every link of
        the loop (:mod:`drivers.read_pacing`); 0 reads every byte at once."""
        if not 200 <= watchdog_ms <= 10000:
            raise ValueError(f"watchdog_ms must be 200..10000, got {watchdog_ms}")
        if not 1 <= first_seq <= MAX_SEQ:
            raise ValueError(f"first_seq must be 1..{MAX_SEQ}, got {first_seq}")
        self.url = url
        self.name = name or url
        self.watchdog_ms = watchdog_ms
        self.stream_hz = stream_hz
        self.answer_timeout = answer_timeout
        self.retries = retries
        self._silent_after_s = silent_after_s
        self.backoff = backoff
        self.stats = LinkStats()
        self.read_pace_s = check_pace(read_pace_s)
        self.info: HelloInfo | None = None
        self.last_sample_at: float | None = None
        """Loop time of the last usable sample (the controller's channel count, from the expected controller)."""
        self.keepalive_enabled = True
        """Tests and diagnostics switch this off to let the controller's watchdog trip."""
        self.stream_rate = 0
        """The STREAM rate the controller accepted (0: not streaming)."""
        self._open_port = open_port
        self._identity = Identity(serial)
        self._state = LinkState.CONNECTING
        self._listeners = Listeners(self.name, self.stats)
        self._emit = self._listeners.emit
        self._quiet = QuietRule(watchdog_ms, blind_after_s)
        self._requests: RequestBook[Connection] = RequestBook(
            self, first_seq=first_seq, port=self._current_port, lose=self._lose, permit=self._permit
        )
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()
        self._been_ready = False
        self._clock: Callable[[], float] = time.monotonic
        """The event loop's clock once started (samples are stamped with it)."""

    # ------------------------------------------------------------------ public surface

    @property
    def silent_after_s(self) -> float:
        return max((self.retries + 1) * self.answer_timeout, self._silent_after_s or 0.0)

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def expected_serial(self) -> str | None:
        """The controller serial this port must answer with: pinned, or learned at first contact."""
        return self._identity.serial

    @property
    def starving(self) -> bool:
        """True while the link holds back because the controller's usable samples stopped.

        The port is open and only a DEFLATE goes out, or it waits closed for the quiet before its
        next probe (:mod:`drivers.link_quiet`); the state is LOST meanwhile. False once a usable
        sample arrives, and while READY, REFUSED (its own state) or STOPPED.
        """
        if self._state in (LinkState.READY, LinkState.REFUSED, LinkState.STOPPED):
            return False
        return self._quiet.blind or (self._conn is None and self._clock() < self._probe_at())

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn`` with every Sample, Status, Event and LinkStateChange; returns an unsubscribe."""
        return self._listeners.add(fn)

    async def start(self) -> None:
        """Start connecting in the background and return at once."""
        if self._task is not None:
            return
        self._clock = asyncio.get_running_loop().time
        self._task = asyncio.create_task(self._run(), name=f"cufflink:{self.name}")
        self._task.add_done_callback(self._run_ended)

    def _run_ended(self, task: asyncio.Task[None]) -> None:
        """The background task must only end by stop(); if it died, say so loudly and mark the link lost."""
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        log.critical("%s: link task died: %r; the link is down until restarted", self.name, exc, exc_info=exc)
        self.stats.errors += 1
        conn = self._conn
        if conn is not None:
            self._lose(conn, f"link task died: {exc!r}")
        self._set_state(LinkState.LOST, f"link task died: {exc!r}")
        self._task = None

    async def wait_ready(self, timeout: float) -> HelloInfo:
        """Wait until the link is READY; raises LinkTimeout, or LinkDown once stopped."""
        if self._state is LinkState.STOPPED:
            raise LinkDown(f"{self.name}: link stopped")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise LinkTimeout(f"{self.name}: not ready after {timeout} s ({self._state.value})") from None
        if self._state is not LinkState.READY or self.info is None:
            raise LinkDown(f"{self.name}: link {self._state.value}")
        return self.info

    async def stop(self, *, deflate: bool = True) -> None:
        """Best-effort DEFLATE ALL (short wait for its OK), then close the port for good."""
        if self._state is LinkState.STOPPED:
            return
        self._stopping = True
        if deflate and self._port_open():
            try:
                fut = self.deflate_all_now()
                await asyncio.wait_for(asyncio.shield(fut), STOP_DEFLATE_WAIT_S)
            except (LinkError, TimeoutError) as exc:
                log.warning("%s: DEFLATE ALL on stop not confirmed: %s", self.name, exc)
        conn = self._conn
        if conn is not None:
            self._lose(conn, "stopped", LinkState.STOPPED)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._requests.fail_all(LinkDown(f"{self.name}: link stopped"), stopping=self._stopping)
        self._set_state(LinkState.STOPPED, "stopped")
        self._ready.set()  # wake wait_ready() callers; they see STOPPED and raise LinkDown

    async def command(self, verb: str, *args: object) -> Ok:
        """Send a command and return its OK.

        Raises:
            CommandError: the controller answered ERR.
            LinkTimeout: no answer after ``retries`` resends.
            LinkDown: the link is not READY, or went down while waiting; a SET also while the
                controller's identity is being checked again after a reboot. A DEFLATE goes out
                while the link is blind (:attr:`starving`, port open) too, within the quiet rule.
            ValueError: an argument cannot go on the wire.
        """
        conn = self._conn
        verb = verb.upper()
        if verb == "SET" and conn is not None and not conn.verified:
            raise LinkDown(f"{self.name}: controller not identified yet ({self._state.value}); SET refused")
        deflate = verb == "DEFLATE"
        fut = self._requests.submit(verb, args, urgent=deflate, require_ready=not (deflate and self._quiet.blind))
        return await fut

    async def set_target(self, ch: int, mmhg: float) -> Ok:
        """Regulate channel ``ch`` at ``mmhg``; a NaN or infinite pressure is a ValueError, never sent."""
        if not math.isfinite(mmhg):
            raise ValueError(f"{self.name}: pressure must be a finite number, not {mmhg!r}")
        return await self.command("SET", ch, format_pressure(mmhg))

    async def deflate(self, ch: int | str = "ALL") -> Ok:
        return await self.command("DEFLATE", ch)

    async def zero(self, ch: int) -> Ok:
        return await self.command("ZERO", ch)

    async def clear(self) -> Ok:
        return await self.command("CLEAR")

    async def status(self) -> Ok:
        """Ask for one ``C`` line per channel (they reach the listeners before the OK returns)."""
        return await self.command("STATUS")

    def deflate_all_now(self) -> asyncio.Future[Ok]:
        """EMERGENCY: write ``DEFLATE ALL`` now, ahead of anything queued, READY or not.

        The line is on the transport when this returns. The future resolves on
        the OK (resent like any command on timeout) or fails with LinkTimeout,
        or LinkDown if the link goes down meanwhile.

        Raises:
            LinkDown: no port is open, the port answered as another controller (REFUSED), or
                the controller is blind and a DEFLATE went out less than the quiet ago.
        """
        if self._state is LinkState.REFUSED:
            raise LinkDown(f"{self.name}: port refused (another controller); nothing is sent to it")
        return self._requests.submit("DEFLATE", ("ALL",), urgent=True, require_ready=False)

    # ------------------------------------------------------------------ the open port

    def _current_port(self) -> Connection | None:
        return self._conn

    def _port_open(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.lost and not conn.writer.is_closing()

    # ------------------------------------------------------------------ the blind-controller rule

    def _permit(self, tail: str) -> str | None:
        return self._quiet.permit(tail, self._clock(), self._requests.last_sent)

    def _probe_at(self) -> float:
        return self._quiet.probe_at(self._requests.last_sent or None, self.last_sample_at)

    def _go_blind(self, conn: Connection, reason: str) -> None:
        """No usable sample: hold back, the port open for a DEFLATE, so the controller's watchdog vents it."""
        if conn is not self._conn or conn.lost:
            return
        if self._quiet.go_blind():
            log.warning("%s: %s; nothing but DEFLATE goes out until its watchdog had time to vent", self.name, reason)
        self._ready.clear()
        self._requests.fail_all_but_deflates(LinkDown(f"{self.name}: {reason}"))
        self._set_state(LinkState.LOST, reason)

    def _sampled(self, conn: Connection) -> None:
        """A usable sample: wake the setup waiting for it, or end a blind episode on the open port."""
        waiter, conn.first_sample = conn.first_sample, None
        was_blind = self._quiet.sampled()
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif was_blind and conn is self._conn and conn.monitor_task is not None:
            self._become_ready("samples flow again")

    def _become_ready(self, reason: str) -> None:
        if self._been_ready:
            self.stats.reconnects += 1
        self._been_ready = True
        self._quiet.refused = 0
        self._ready.set()
        self._set_state(LinkState.READY, reason)

    async def _keep_quiet(self) -> None:
        """Sleep until the quiet rule allows the next HELLO (at once for a healthy link)."""
        loop = asyncio.get_running_loop()
        while (wait := self._probe_at() - loop.time()) > 0:
            log.debug("%s: quiet for %.2f s before the next HELLO", self.name, wait)
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ receiving (hot path)

    def _on_line(self, conn: Connection, body: str) -> None:
        try:
            msg = parse_report(body)
        except MalformedLine:
            self.stats.dropped.malformed += 1
            return
        if isinstance(msg, Sample):
            if not conn.verified:
                return  # not (yet) known to be the expected controller: neither shown nor counted
            info = self.info
            if info is not None and len(msg.pressures) != info.channels:
                self.stats.dropped.malformed += 1
                return
            self.stats.samples += 1
            self.last_sample_at = self._clock()
            if conn.first_sample is not None or self._quiet.blind:
                self._sampled(conn)
            self._emit(msg)
        elif isinstance(msg, (Ok, Err)):
            self._requests.on_answer(msg)
        elif isinstance(msg, Status):
            info = self.info
            if info is not None and not 1 <= msg.channel <= info.channels:
                self.stats.dropped.malformed += 1
                return
            self._emit(msg)
        else:  # Event
            self._emit(msg)
            if msg.code == "BOOT":
                self._on_boot(conn)

    def _on_boot(self, conn: Connection) -> None:
        """The controller restarted: vented, stream off, watchdog 2000 ms. Set the session up again.

        No SET from before the reboot may reach the rebooted controller: a reboot vents every
        cuff, and a resend (or a queued SET) would inflate one again with nobody asking.
        """
        conn.boot_seen = True
        conn.verified = False  # a HELLO again before any SET
        self.stream_rate = 0
        self._requests.drop_sets_on_boot(conn)
        if self._state is not LinkState.READY:
            return  # the handshake in progress redoes its setup
        if conn.setup_task is None or conn.setup_task.done():
            log.warning("%s: controller rebooted; setting up watchdog and stream again", self.name)
            again = set_up_again(self, conn, self._requests, self._identity, self._lose)
            conn.setup_task = asyncio.create_task(again, name=f"cufflink-setup:{self.name}")

    # ------------------------------------------------------------------ session

    def _set_state(self, state: LinkState, reason: str) -> None:
        if state is self._state:
            return
        self._state = state
        log.info("%s: %s (%s)", self.name, state.value, reason)
        self._emit(LinkStateChange(state, reason))

    def _lose(self, conn: Connection, reason: str, state: LinkState = LinkState.LOST) -> None:
        """Close this port at once, fail everything waiting, and tell listeners."""
        if not conn.close(self.name):
            return
        if self._conn is conn:
            self._conn = None
            self._ready.clear()
            self.stream_rate = 0
            self._requests.fail_all(LinkDown(f"{self.name}: {reason}"), stopping=self._stopping)
            if state is LinkState.LOST:
                log.log(logging.DEBUG if self._quiet.blind else logging.WARNING, "%s: link lost: %s", self.name, reason)
            elif state is LinkState.REFUSED:  # loud once per episode, quiet on every retry after
                self._quiet.refused += 1
                level = logging.DEBUG if self._state is LinkState.REFUSED else logging.ERROR
                log.log(level, "%s: port refused: %s; closed, nothing sent but HELLO", self.name, reason)
            self._set_state(state, reason)
        conn.finish()

    async def _run(self) -> None:
        """Open, set up, watch, and reopen with exponential backoff, until stopped; quiet first if blind."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping:
            await self._keep_quiet()
            try:
                reader, writer = await self._open_port(self.url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_state(LinkState.LOST, f"cannot open port: {exc}")
                await self._sleep_backoff(failures)
                failures += 1
                continue
            try:
                failures = await self._session(reader, writer, failures)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: session failed unexpectedly", self.name)
                self.stats.errors += 1
            if self._stopping:
                break
            if self._quiet.blind and loop.time() >= self._probe_at():
                continue  # the quiet just kept was the pause
            await self._sleep_backoff(failures)
            failures += 1

    async def _sleep_backoff(self, failures: int) -> None:
        low, high = self.backoff
        await asyncio.sleep(min(high, low * (2 ** min(failures, 30))))

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, failures: int) -> int:
        """Run one open port to its end; returns the backoff failure count to continue with."""
        loop = asyncio.get_running_loop()
        lines = LineReader()
        lines.drops = self.stats.dropped
        conn = Connection(writer, lines, loop.create_future())
        conn.pace_reads(self.read_pace_s)
        self._conn = conn
        awaiting = lambda: self._requests.awaiting  # noqa: E731  (the port is held only while this is False)
        Listening(
            conn, name=self.name, stats=self.stats, on_line=self._on_line, lose=self._lose, awaiting=awaiting
        ).start(reader)
        if self._quiet.blind:  # a probe: LOST until a usable sample
            self._quiet.start_probe()
        elif self._state is not LinkState.REFUSED:  # refused stays refused until the right controller answers
            self._set_state(LinkState.CONNECTING, "port open")
        sampled = False
        try:
            await set_up(self, conn, self._requests, self._identity)
            sampled = await first_sample(self, conn, self._quiet.silence_s)
        except asyncio.CancelledError:
            self._lose(conn, "cancelled")
            raise
        except WrongController as exc:
            self._lose(conn, str(exc), LinkState.REFUSED)
        except LinkError as exc:
            self._lose(conn, f"setup failed: {exc}")
        except Exception as exc:
            log.exception("%s: setup crashed", self.name)
            self.stats.errors += 1
            self._lose(conn, f"setup crashed: {exc!r}")
        if not conn.lost:
            if sampled:
                failures = 0
                self._become_ready(f"{self.info.model if self.info else '?'} ready")
            else:
                silence = self._quiet.silence_s
                self._go_blind(conn, f"controller blind: no sample within {silence:g} s of STREAM (or none usable)")
            monitor = watch(self, conn, self._requests, self._quiet, self._lose, self._go_blind)
            conn.monitor_task = asyncio.create_task(monitor, name=f"cufflink-monitor:{self.name}")
        try:
            await asyncio.shield(conn.done)
        except asyncio.CancelledError:
            self._lose(conn, "cancelled")
            raise
        finally:
            await conn.reap(self.name)
        return failures
