"""A station behind a Unix socket, as a :class:`StationHandle` the UI cannot tell apart.

``snapshot()`` returns the newest snapshot received (a reader task keeps it
current), with ``role`` set from the server's hello so the UI greys out what
this console may not do. Commands go out with ids and come back as results;
a refusal raises :class:`CommandRefused` with the server's sentence.

Before it trusts anything the other end says, the client checks who that is: the
process serving the socket must run as the station's user (``station_uid``; by
default the owner of the socket's directory, which only that user may write
to) or root. Anyone else serving there is a fake station, refused with a sentence.

When the connection drops the snapshot says so plainly: every controller
``lost``, every cuff ``OFFLINE`` with its pressure unknown (``None``, never a
stale number), and a high ``STATION_LOST`` alarm on top. The client then keeps
trying to reconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from console.common.api import (
    OFFLINE,
    AlarmSnapshot,
    CommandRefused,
    EmergencySnapshot,
    Priority,
    Role,
    StationSnapshot,
)
from console.common.clock import Clock, SystemClock
from console.remote import protocol
from console.remote.socket_file import peer_credentials, user_name
from console.remote.wire import (
    WireError,
    alarm_from_wire,
    emergency_from_wire,
    snapshot_from_wire,
)

log = logging.getLogger(__name__)

STATION_LOST = "STATION_LOST"
"""Cause of the synthetic alarm a remote console shows while it cannot see the station."""
STATION_LOST_ALARM_ID = -1
"""Alarm id of that synthetic alarm (station alarm ids are never negative)."""


class StationUnavailable(ConnectionError):
    """No station answers at the socket (not running, wrong path, no access to its directory)."""


class AccessRefused(PermissionError):
    """The station answered and refused this user; ``str(exc)`` is its reason."""


class RemoteStation:
    """A :class:`~console.common.api.StationHandle` over the station's Unix socket."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        command_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        reconnect: bool = True,
        reconnect_delays_s: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0),
        clock: Clock | None = None,
        station_uid: int | None = None,
    ) -> None:
        """Prefer :meth:`connect`, which also opens the connection.

        ``station_uid``: the user the station must run as (default: the owner of the socket's directory).
        """
        self.socket_path = Path(socket_path)
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect = reconnect
        self.reconnect_delays_s = tuple(reconnect_delays_s) or (1.0,)
        self.clock = clock or SystemClock()
        self.station_uid = station_uid
        self.role = Role.OBSERVER
        self.station_name = ""
        self.user = ""
        self.connected = False
        self.lost_reason = ""
        self._lost_cause = ""
        self.reconnects = 0
        self.garbage = 0
        """Lines from the server that could not be read; dropped and counted."""
        self._snapshot: StationSnapshot | None = None
        self._last_good: StationSnapshot | None = None
        self._seq = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._run_task: asyncio.Task[None] | None = None
        self._closing = False
        self._alarm_log: list[AlarmSnapshot] = []
        self._alarm_key: object = None
        self._alarm_fetch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life

    @classmethod
    async def connect(cls, socket_path: str | os.PathLike[str], **options: Any) -> RemoteStation:
        """Attach to the station at ``socket_path``.

        Raises :class:`StationUnavailable` when nothing serves there and
        :class:`AccessRefused` with the station's reason when it refuses us.
        """
        self = cls(socket_path, **options)
        await self._open()
        self._run_task = asyncio.create_task(self._run(), name="remote-station-reader")
        return self

    async def close(self) -> None:
        """Detach; pending commands fail with a sentence."""
        self._closing = True
        for task in (self._run_task, self._alarm_fetch):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._run_task, self._alarm_fetch) if t is not None), return_exceptions=True)
        self._drop_connection("this console closed the connection")
        self.connected = False

    async def _open(self) -> None:
        path = str(self.socket_path)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=protocol.MAX_REPLY), timeout=self.connect_timeout_s
            )
        except (FileNotFoundError, ConnectionRefusedError):
            raise StationUnavailable(f"no station is serving at {path} (is bfr-console running?)") from None
        except PermissionError:
            raise StationUnavailable(
                f"you may not reach the station's socket {path}: ask to be added to the group that owns "
                f"{self.socket_path.parent} (see docs/remote.md)"
            ) from None
        except TimeoutError:
            raise StationUnavailable(f"the station at {path} did not accept the connection in time") from None
        except OSError as exc:
            raise StationUnavailable(f"cannot reach the station at {path}: {exc.strerror or exc}") from None
        try:
            self._check_station_user(writer)
            hello = await self._read_message(reader)
            if hello["op"] == protocol.REFUSED:
                raise AccessRefused(str(hello.get("reason") or "the station refused this user"))
            if hello["op"] == protocol.ERROR:
                raise StationUnavailable(f"the station at {path} closed the connection: {hello.get('reason')}")
            if hello["op"] != protocol.HELLO:
                raise StationUnavailable(f"the station at {path} did not say hello (sent {hello['op']!r})")
            if hello.get("proto") != protocol.PROTO:
                raise StationUnavailable(
                    f"the station at {path} speaks protocol {hello.get('proto')!r}, this console "
                    f"{protocol.PROTO}: install the same bfr-console version on both"
                )
            role = Role(hello.get("role"))
            first = await self._read_message(reader)
            if first["op"] != protocol.SNAPSHOT:
                raise StationUnavailable(f"the station at {path} sent {first['op']!r} before its first snapshot")
            snap = snapshot_from_wire(first.get("snapshot"))
        except BaseException:
            writer.transport.abort()
            raise
        self._reader, self._writer = reader, writer
        self.role = role
        self.station_name = str(hello.get("station", snap.name))
        self.user = str(hello.get("user", ""))
        self.connected = True
        self.lost_reason = ""
        self._accept(snap)
        self._alarm_key = None
        self._maybe_fetch_alarm_log(snap)

    def _check_station_user(self, writer: asyncio.StreamWriter) -> None:
        """Refuse to trust a socket served by anyone but the station's user or root (a fake station)."""
        _, uid, _ = peer_credentials(writer)
        expected = self.station_uid
        where = "the station's user"
        if expected is None:
            try:
                expected = os.stat(self.socket_path.parent).st_uid
            except OSError as exc:
                raise StationUnavailable(f"cannot check who serves {self.socket_path}: {exc.strerror or exc}") from None
            where = f"the station's user, who owns {self.socket_path.parent}"
        if uid not in (expected, 0):
            raise StationUnavailable(
                f"the program serving {self.socket_path} runs as {user_name(uid)}, not as {where} "
                f"({user_name(expected)}): it may be a fake station, so this console will not show it; "
                "tell the station's administrator"
            )

    async def _read_message(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=self.connect_timeout_s)
        except TimeoutError:
            raise StationUnavailable(f"the station at {self.socket_path} did not answer in time") from None
        except ValueError:
            raise StationUnavailable(f"the station at {self.socket_path} sent an oversized message") from None
        if not line:
            raise StationUnavailable(f"the station at {self.socket_path} closed the connection at once")
        try:
            return protocol.decode(line, limit=protocol.MAX_REPLY)
        except protocol.ProtocolError as exc:
            raise StationUnavailable(f"the station at {self.socket_path} sent garbage: {exc}") from None
        except (WireError, ValueError) as exc:
            raise StationUnavailable(f"the station at {self.socket_path} sent an unreadable reply: {exc}") from None

    async def _run(self) -> None:
        """Read until the connection drops, show the loss, reconnect, repeat."""
        while not self._closing:
            try:
                reason = await self._read_until_lost()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - anything unforeseen still shows as a loss, never a frozen screen
                log.exception("reading from the station failed")
                reason = f"unreadable reply from the station ({type(exc).__name__})"
            if self._closing:
                return
            self._mark_lost(reason)
            if not self.reconnect:
                return
            await self._reconnect()

    async def _read_until_lost(self) -> str:
        reader = self._reader
        assert reader is not None
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                return "the station sent an oversized message"
            except (ConnectionError, OSError) as exc:
                return f"connection error: {exc}"
            if not line or not line.endswith(b"\n"):
                return "the station closed the connection"
            try:
                message = protocol.decode(line, limit=protocol.MAX_REPLY)
                op = message["op"]
                if op == protocol.SNAPSHOT:
                    snap = snapshot_from_wire(message.get("snapshot"))
                    self._accept(snap)
                    self._maybe_fetch_alarm_log(snap)
                elif op == protocol.RESULT:
                    self._resolve(message)
                elif op in (protocol.ERROR, protocol.REFUSED):
                    return str(message.get("reason") or "the station closed the connection")
                else:
                    self.garbage += 1
            except (protocol.ProtocolError, WireError) as exc:
                self.garbage += 1
                log.warning("dropped a message from the station: %s", exc)

    async def _reconnect(self) -> None:
        for attempt in itertools.count():
            if self._closing:
                return
            await asyncio.sleep(self.reconnect_delays_s[min(attempt, len(self.reconnect_delays_s) - 1)])
            try:
                await self._open()
            except (StationUnavailable, AccessRefused) as exc:
                self._mark_lost(f"{self._lost_cause}; still cannot reconnect: {exc}", cause=self._lost_cause)
                continue
            except Exception as exc:  # noqa: BLE001 - keep trying; the screen already shows the loss
                log.exception("reconnecting to the station failed")
                self._mark_lost(
                    f"{self._lost_cause}; still cannot reconnect: {type(exc).__name__}", cause=self._lost_cause
                )
                continue
            self.reconnects += 1
            log.info("reconnected to station %s", self.station_name)
            return

    def _drop_connection(self, reason: str) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None
        self._reader = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    CommandRefused(f"no answer from the station: {reason}; check the screen before trying again")
                )

    def _mark_lost(self, reason: str, *, cause: str | None = None) -> None:
        self.connected = False
        self.lost_reason = reason
        self._lost_cause = cause or reason
        self._drop_connection(reason)
        if self._last_good is not None:
            self._seq += 1
            self._snapshot = _lost_snapshot(self._last_good, reason, self.clock.wall(), self._seq)

    def _accept(self, snap: StationSnapshot) -> None:
        self._seq = snap.seq if snap.seq > self._seq else self._seq + 1
        snap = replace(snap, role=self.role, seq=self._seq)
        self._last_good = snap
        self._snapshot = snap

    # ------------------------------------------------------------- reading

    def snapshot(self) -> StationSnapshot:
        assert self._snapshot is not None, "RemoteStation.connect() gives a connected station"
        return self._snapshot

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        """The station's alarm log as last fetched (refreshed whenever its alarms change)."""
        log_ = list(self._alarm_log)
        if not self.connected and self._snapshot is not None:
            log_ = [a for a in self._snapshot.alarms if a.cause == STATION_LOST] + log_
        return log_[:limit]

    def _maybe_fetch_alarm_log(self, snap: StationSnapshot) -> None:
        key = tuple((a.id, a.active, a.acknowledged, a.silenced_until) for a in snap.alarms)
        if key == self._alarm_key or (self._alarm_fetch is not None and not self._alarm_fetch.done()):
            return
        self._alarm_key = key
        self._alarm_fetch = asyncio.create_task(self._fetch_alarm_log())

    async def _fetch_alarm_log(self) -> None:
        try:
            value = await self._call("alarm_log", {"limit": 1000})
            self._alarm_log = [alarm_from_wire(a) for a in value]
        except (CommandRefused, WireError, TypeError) as exc:
            self._alarm_key = None  # try again with the next snapshot
            log.info("could not fetch the alarm log: %s", exc)

    # ------------------------------------------------------------ commands

    async def _call(self, name: str, args: dict[str, Any], *, not_sent: str | None = None) -> Any:
        cmd_id, fut = self._send(name, args, not_sent=not_sent)
        return await self._answer(name, cmd_id, fut)

    def _send(self, name: str, args: dict[str, Any], *, not_sent: str | None = None) -> tuple[int, asyncio.Future[Any]]:
        """Write the command now; the future is its answer. Raises CommandRefused when it cannot be sent."""
        writer = self._writer
        if not self.connected or writer is None or writer.transport.is_closing():
            raise CommandRefused(
                not_sent
                or f"Not connected to station {self.station_name or self.socket_path}: "
                f"{name.replace('_', ' ')} was not sent."
            )
        cmd_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        writer.write(protocol.encode({"op": protocol.CMD, "id": cmd_id, "name": name, "args": args}))
        return cmd_id, fut

    async def _answer(self, name: str, cmd_id: int, fut: asyncio.Future[Any]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout=self.command_timeout_s)
        except TimeoutError:
            raise CommandRefused(
                f"the station did not answer {name.replace('_', ' ')} within {self.command_timeout_s:g} s; "
                "check the screen before trying again"
            ) from None
        finally:
            self._pending.pop(cmd_id, None)

    def _resolve(self, message: dict[str, Any]) -> None:
        fut = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if fut is None or fut.done():
            return  # answered after its timeout: nobody waits for it any more
        if message.get("ok") is True:
            fut.set_result(message.get("value"))
        else:
            fut.set_exception(CommandRefused(str(message.get("error") or "the station refused")))

    def emergency_deflate(self) -> Coroutine[Any, Any, EmergencySnapshot]:
        """Written in this call (from the key's handler, ahead of any frame), never queued behind other
        commands; raises CommandRefused at once when it cannot be sent. Awaiting it gives the answer."""
        cmd_id, fut = self._send(
            "emergency_deflate",
            {},
            not_sent=(
                f"EMERGENCY DEFLATE NOT SENT: no connection to station {self.station_name or self.socket_path}. "
                "Use the station's own emergency key."
            ),
        )

        async def answered() -> EmergencySnapshot:
            return emergency_from_wire(await self._answer("emergency_deflate", cmd_id, fut))

        return answered()

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        await self._call("inflate", {"cuff_id": cuff_id, "mmhg": mmhg, "pct_lop": pct_lop})

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        await self._call("nudge_target", {"cuff_id": cuff_id, "delta_mmhg": delta_mmhg})

    async def deflate(self, cuff_id: str) -> None:
        await self._call("deflate", {"cuff_id": cuff_id})

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        await self._call("acknowledge", {"alarm_id": alarm_id})

    async def silence(self, seconds: float = 120.0) -> None:
        await self._call("silence", {"seconds": seconds})

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None:
        await self._call(
            "set_lop",
            {"cuff_id": cuff_id, "lop": lop, "position": position, "cuff_width_cm": cuff_width_cm, "source": source},
        )

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        await self._call("measure_lop", {"cuff_id": cuff_id, "position": position})

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        await self._call("set_patient", {"cuff_id": cuff_id, "patient_id": patient_id})

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        await self._call("start_session", {"cuff_ids": list(cuff_ids), "plan_id": plan_id, "patient_id": patient_id})

    async def session_command(self, cuff_id: str, command: str) -> None:
        await self._call("session_command", {"cuff_id": cuff_id, "command": command})


def _lost_snapshot(last: StationSnapshot, reason: str, wall: float, seq: int) -> StationSnapshot:
    """The last snapshot, marked so nobody mistakes it for live: nothing known, one high alarm."""
    when = time.strftime("%H:%M:%S", time.localtime(wall))
    alarm = AlarmSnapshot(
        id=STATION_LOST_ALARM_ID,
        priority=Priority.HIGH,
        cause=STATION_LOST,
        message=(
            f"Lost the connection to station {last.name} at {when} ({reason}). Pressures unknown here; reconnecting."
        ),
        cuff=None,
        controller=None,
        raised_at=wall,
        active=True,
        acknowledged=False,
    )
    cuffs = tuple(
        replace(
            c,
            state=OFFLINE,
            online=False,
            pressure=None,
            pressure_pct_lop=None,
            sample_age_s=None,
            alarm=Priority.HIGH,
        )
        for c in last.cuffs
    )
    controllers = tuple(replace(c, state="lost", error=f"station connection lost: {reason}") for c in last.controllers)
    others = tuple(a for a in last.alarms if a.cause != STATION_LOST)
    return replace(last, cuffs=cuffs, controllers=controllers, alarms=(alarm, *others), seq=seq)


async def attach(socket_path: str | os.PathLike[str], **options: Any) -> RemoteStation:
    """What ``bfr-console attach`` calls: a connected :class:`RemoteStation`."""
    return await RemoteStation.connect(socket_path, **options)


__all__ = ["AccessRefused", "RemoteStation", "STATION_LOST", "StationUnavailable", "attach"]
