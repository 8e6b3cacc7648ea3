"""The station's Unix socket: many consoles on one live station, each with a role.

One station, any number of clients. Each client gets the newest snapshot at up
to ``fps`` frames a second (only when it changed), one JSON encoding shared by
all. A client that reads slowly is skipped, never queued for: at most the
transport's high-water mark is buffered for it, frames past that are dropped,
and a client stuck over the mark for ``stall_timeout_s`` is cut off. Garbage,
oversized lines and unknown ops close only that client. Nothing a client does
makes the station or the other clients wait.

Commands are checked against the client's role (observers may only
emergency-deflate and read the alarm log) and recorded with who sent them and in
which role, refused ones too; so are attaching, detaching and refused peers.
An emergency deflate starts the moment its line is read, ahead of anything the
client has in flight; a flood of them is merged into the one in progress
(:mod:`console.remote.emergencies` has the rule).

What a console may cost is bounded (:mod:`console.remote.limits`): connections per
user and in all, commands a second per console (never the emergency), rows of the
audit trail its refusals may write, bytes waiting for it, and time it may go without
taking any of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from console.common.api import CommandRefused, Role, StationHandle
from console.common.clock import Clock, SystemClock
from console.remote import protocol
from console.remote.audit import ServerAudit
from console.remote.clients import ClientInfo, Console, close_soon
from console.remote.commands import COMMANDS, check_args, describe_command, failure_reply, failure_sentence
from console.remote.emergencies import HOLD_S, EmergencyDesk
from console.remote.limits import ConnectionCaps, TokenBucket
from console.remote.roles import Decision, RoleResolver, rules_from_config
from console.remote.socket_file import clear_stale_socket, group_id, peer_credentials, prepare_directory
from console.remote.wire import to_wire

log = logging.getLogger(__name__)

YIELD_EVERY = 32
"""Lines read from one console before the loop gets a turn (samples, other consoles)."""
EMERGENCY_BATCH = 256
"""Emergency requests one after the other taken in one go (then the loop gets its turn)."""
READ_CHUNK = 64 * 1024
"""Bytes read from a console at a time."""
MAX_UNANSWERED = 1024
"""Emergency requests of one console waiting for their answer before its next lines wait too."""
ABSORB_CHECK_S = 0.02
"""While they wait: how often to look whether its next request would start an emergency of its own."""


class StationServer:
    """Serve ``station`` on a Unix socket at ``socket_path``.

    ``roles`` is a list of role rules (see :mod:`console.remote.roles`) or a
    ``(uid, gid) -> Decision`` callable. ``group`` (name or gid) owns the
    socket's directory when the server creates it, and the socket (default: the
    directory's group). ``max_clients`` connections from all users but the station's
    own and root, ``max_per_user`` from any one uid; ``commands_per_s`` (bursts of
    ``command_burst``) from one console, the emergency deflate never counted.
    """

    def __init__(
        self,
        station: StationHandle,
        socket_path: str | os.PathLike[str],
        roles: Sequence[Any] | Callable[[int, int], Decision] = (),
        *,
        fps: float = 20.0,
        group: str | int | None = None,
        clock: Clock | None = None,
        high_water: int = 128 * 1024,
        stall_timeout_s: float = 10.0,
        max_in_flight: int = 32,
        reply_cap: int = 4 * 1024 * 1024,
        max_clients: int = 32,
        max_per_user: int = 4,
        commands_per_s: float = 30.0,
        command_burst: int = 60,
        emergency_hold_s: float = HOLD_S,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be above 0")
        self.station = station
        self.socket_path = Path(socket_path)
        if callable(roles):
            self.resolver: Callable[[int, int], Decision] = roles
        else:
            self.resolver = RoleResolver(rules_from_config(roles))
        self.fps = fps
        self.group = group
        self.clock = clock or SystemClock()
        self.high_water = high_water
        self.stall_timeout_s = stall_timeout_s
        self.max_in_flight = max_in_flight
        self.reply_cap = reply_cap
        """Bytes of unsent replies a client may have before it is cut off (it asks and never reads)."""
        self._server: asyncio.AbstractServer | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._clients: set[Console] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._frame_seq: int | None = None
        self._frame: bytes = b""
        self.audit = ServerAudit(station, self.clock.monotonic)
        self.warnings: list[str] = []
        self.cut_off = 0
        """Clients cut off for not reading for ``stall_timeout_s``."""
        self.closed_for_garbage = 0
        self.refused = 0
        self.commands_per_s = commands_per_s
        self.command_burst = command_burst
        self.caps = ConnectionCaps(max_clients, max_per_user, frozenset({os.geteuid(), 0}))
        self.emergencies = EmergencyDesk(station, self.audit.launch, self.audit.note, hold_s=emergency_hold_s)

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Open the socket (0660, in a 0750 directory) and start pushing snapshots."""
        gid = group_id(self.group) if self.group is not None else None
        warning, socket_gid = prepare_directory(self.socket_path.parent, gid)
        if warning:
            self.warnings.append(warning)
            log.warning("%s", warning)
        await clear_stale_socket(self.socket_path)
        self._server = await asyncio.start_unix_server(
            self._on_connect, path=str(self.socket_path), limit=protocol.MAX_REQUEST
        )
        os.chmod(self.socket_path, 0o660)
        if self.socket_path.stat().st_gid != socket_gid:
            try:
                os.chown(self.socket_path, -1, socket_gid)
            except PermissionError:
                self.warnings.append(
                    f"cannot give the socket {self.socket_path} the group {socket_gid} of its directory"
                )
                log.warning("%s", self.warnings[-1])
        self._pump_task = asyncio.create_task(self._pump(), name="station-server-pump")
        log.info("serving station on %s", self.socket_path)

    async def stop(self) -> None:
        """Tell every client the station is going, close them, remove the socket."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._pump_task = None
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.send({"op": protocol.ERROR, "reason": "the station is shutting down"})
            client.transport.close()
            asyncio.get_running_loop().call_later(2.0, client.transport.abort)
        if self._handlers:
            # Closed transports end each handler's read with EOF; cancel only what still hangs.
            _, hanging = await asyncio.wait(list(self._handlers), timeout=3.0)
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
        self.emergencies.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def clients(self) -> list[ClientInfo]:
        return [c.info for c in self._clients]

    # ----------------------------------------------------------- snapshots

    async def _pump(self) -> None:
        """Look at the station ``fps`` times a second; push a frame when its seq moved."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        next_at = loop.time()
        while True:
            try:
                self._broadcast()
                now = self.clock.monotonic()
                self.audit.rows.forget_idle(now)
                self.caps.forget_idle(now)
            except Exception:  # noqa: BLE001 - a bad snapshot must not stop the server
                log.exception("could not send the station snapshot")
            next_at += period
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a busy loop): carry on from now, never in a burst
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    def _current_frame(self) -> tuple[int, bytes]:
        snap = self.station.snapshot()
        if snap.seq != self._frame_seq or not self._frame:
            self._frame = protocol.encode({"op": protocol.SNAPSHOT, "snapshot": to_wire(snap)})
            self._frame_seq = snap.seq
        return snap.seq, self._frame

    def _broadcast(self) -> None:
        if not self._clients:
            return
        seq, frame = self._current_frame()
        now = self.clock.monotonic()
        for client in list(self._clients):
            if self._watch(client, now) and client.last_seq != seq:
                self._offer(client, seq, frame)

    def _watch(self, client: Console, now: float) -> bool:
        """Cut off a client that took none of the bytes waiting for it for ``stall_timeout_s``; False if it went."""
        if client.took_nothing_for(now) > self.stall_timeout_s:
            self.cut_off += 1
            log.warning("%s took nothing for %.0f s: cut off", client.info.who, client.took_nothing_for(now))
            client.transport.abort()
        return not client.transport.is_closing()

    def _offer(self, client: Console, seq: int, frame: bytes) -> None:
        transport = client.transport
        if transport.get_write_buffer_size() > self.high_water:
            client.info.frames_skipped += 1
            return
        transport.write(frame)
        client.waiting = transport.get_write_buffer_size()
        client.last_seq = seq
        client.info.frames_sent += 1

    # -------------------------------------------------------------- clients

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve_client(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() gave up waiting; end quietly (the streams callback would log a cancelled task)
        except Exception:  # noqa: BLE001 - one client's trouble stays with that client
            log.exception("client connection failed")
        finally:
            if task is not None:
                self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid, gid = peer_credentials(writer)
        over = self.caps.admit(uid, self.clock.monotonic())
        if over:  # before the user database is even asked: a connection flood costs one line each
            await self._refuse_peer(writer, uid, f"uid{uid}@uid{uid}", pid, over)
            return
        try:
            decision = await asyncio.to_thread(self.resolver, uid, gid)
            if decision.role is None:
                await self._refuse_peer(writer, uid, decision.who, pid, decision.reason)
                return
            await self._attached(reader, writer, decision, pid)
        finally:
            self.caps.release(uid)

    async def _refuse_peer(self, writer: asyncio.StreamWriter, uid: int, who: str, pid: int, reason: str) -> None:
        self.refused += 1
        # Told, logged and recorded as often as the user's budget of rows allows (20, then 1 a second):
        # past it a storm of connections is just closed, which costs the station the least it can.
        if self.audit.refused_peer(uid, who, pid, reason):
            log.warning("refused %s (pid %d): %s", who, pid, reason)
            writer.write(protocol.encode({"op": protocol.REFUSED, "reason": reason}))
        await close_soon(writer)

    async def _attached(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, decision: Decision, pid: int
    ) -> None:
        assert decision.role is not None
        client = Console(ClientInfo(decision.who, decision.role, pid), decision, writer, reply_cap=self.reply_cap)
        client.budget = TokenBucket(self.commands_per_s, float(self.command_burst))
        snap = self.station.snapshot()
        client.send(
            {
                "op": protocol.HELLO,
                "proto": protocol.PROTO,
                "role": decision.role.value,
                "station": snap.name,
                "user": decision.user,
            }
        )
        client.last_seq, frame = self._current_frame()
        writer.write(frame)
        client.info.frames_sent += 1
        self._clients.add(client)
        since = self.clock.monotonic()
        log.info("%s attached as %s (pid %d)", decision.who, decision.role.value, pid)
        self.audit.note(client.info.who, client.role, f"attach (pid {pid})")
        try:
            await self._read_commands(client, reader)
        finally:
            self._clients.discard(client)
            log.info("%s detached", decision.who)
            seconds = self.clock.monotonic() - since
            self.audit.detached(client, seconds)

    async def _read_commands(self, client: Console, reader: asyncio.StreamReader) -> None:
        """Split what the console sends into lines and act on each; return when it goes or must go.

        Read in chunks and split here (``readline`` moves the rest of its buffer for every line: a
        flood of short lines would cost the square of the backlog). The loop gets a turn every
        :data:`YIELD_EVERY` lines, so one console's backlog never holds the station for long.
        """
        pending = b""
        lines = 0
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                return  # gone (a partial line is dropped: nothing to act on)
            data = pending + chunk if pending else chunk
            start = 0
            while True:
                room = max(1, min(EMERGENCY_BATCH, MAX_UNANSWERED - client.unanswered))
                ids, after = protocol.emergency_run(data, start, room)
                if ids:  # emergency requests one after the other: carried out or merged in one go
                    start = after
                    self._emergencies(client, ids, {})
                    lines += len(ids)
                else:
                    end = data.find(b"\n", start)
                    if end < 0:
                        break
                    line, start = data[start : end + 1], end + 1
                    reason = self._handle(client, line) if len(line) <= protocol.MAX_REQUEST else self._too_long()
                    if reason is not None:
                        if reason:
                            await self._close_for(client, reason)
                        return
                    lines += 1
                if lines >= YIELD_EVERY:
                    lines = 0
                    await asyncio.sleep(0)
                while client.merged.spent(self.clock.monotonic()) and self.emergencies.merging():
                    # A flood of requests that change nothing is read at MERGED_PER_S; the moment its
                    # next one would be carried out anew (something raised), it is read at once again.
                    await asyncio.sleep(ABSORB_CHECK_S)
                while (waiting := client.waiting_on) is not None and (
                    client.unanswered >= MAX_UNANSWERED and self.emergencies.absorbing(waiting)
                ):
                    # Only a flood gets here: its requests all wait for one emergency, which is carried out.
                    # Read on once they are answered, or at once when its next request would be carried out
                    # anew (something was raised); every other console's emergency always goes out at once.
                    await asyncio.wait({waiting}, timeout=ABSORB_CHECK_S)
            pending = data[start:]
            if len(pending) > protocol.MAX_REQUEST:
                await self._close_for(client, self._too_long())
                return

    @staticmethod
    def _too_long() -> str:
        return f"message over the {protocol.MAX_REQUEST}-byte limit"

    def _handle(self, client: Console, line: bytes) -> str | None:
        """Act on one line; None to read on, else why to close ("" to stop without a word)."""
        try:
            cmd_id, name, args = protocol.parse_command(line)
        except protocol.ProtocolError as exc:
            return str(exc)
        self._dispatch(client, cmd_id, name, args)
        if client.overflowed:
            self.cut_off += 1
            return ""
        if client.flooding:
            return "too many refused commands (more than 20 at once, or 5 a second)"
        return None

    async def _close_for(self, client: Console, reason: str) -> None:
        self.closed_for_garbage += 1
        client.closed_because = reason
        log.warning("closing %s: %s", client.info.who, reason)
        self._clients.discard(client)
        client.send({"op": protocol.ERROR, "reason": reason})
        await close_soon(client.writer)

    # ------------------------------------------------------------- commands

    def _dispatch(self, client: Console, cmd_id: int, name: str, args: dict[str, Any]) -> None:
        client.info.commands += 1
        spec = COMMANDS.get(name)
        if name == "emergency_deflate":
            self._emergencies(client, [cmd_id], args)
            return
        what = partial(describe_command, name, args)  # written out only if it goes on record
        if not client.budget.take(self.clock.monotonic()):
            self._refused(
                client,
                cmd_id,
                what,
                "too many commands",
                f"too many commands from this console (more than {self.commands_per_s:g} a second); slow down",
            )
            return
        if spec is None:
            self._refused(client, cmd_id, what, "unknown command", f"the station has no command {name!r}")
            return
        if client.decision.role is not Role.OPERATOR and not spec.observer_ok:
            self._refused(
                client,
                cmd_id,
                what,
                client.role,
                f"{client.decision.user} is an observer here: observers may watch and emergency-deflate, "
                f"not {spec.verb}.",
            )
            return
        try:
            kwargs = check_args(name, spec, args)
        except ValueError as exc:
            self._refused(client, cmd_id, what, str(exc), str(exc))
            return
        if len(client.in_flight) >= self.max_in_flight:
            self._refused(
                client,
                cmd_id,
                what,
                "too many commands in flight",
                f"too many commands in flight (at most {self.max_in_flight}); wait for answers",
            )
            return
        if name == "alarm_log":  # a read, not a command: not recorded
            try:
                value = self.station.alarm_log(**kwargs)
            except Exception as exc:  # noqa: BLE001 - answered, not raised
                client.send(failure_reply(cmd_id, failure_sentence(name, exc)))
            else:
                client.send({"op": protocol.RESULT, "id": cmd_id, "ok": True, "value": to_wire(value)})
            return
        if not self.audit.station_records:
            self.audit.note(client.info.who, client.role, what())
        task = self.audit.launch(client.info.who, client.role, getattr(self.station, name)(**kwargs))
        self._track(client, asyncio.ensure_future(self._finish(client, cmd_id, name, task)))

    def _refused(self, client: Console, cmd_id: int, what: Callable[[], str], why: str, sentence: str) -> None:
        """Answer a refusal; it goes on record within the console's budget of refusal rows.

        A console past its budget of refusals (a burst of 20, then 5 a second) is closed instead:
        answering and weighing each line of a flood would cost the station what the flood costs.
        """
        if not client.refusals.take(self.clock.monotonic()):
            client.flooding = True
            return
        client.send(failure_reply(cmd_id, sentence))
        self.audit.refused_command(client.key, client.info.who, client.role, what, why)

    def _emergencies(self, client: Console, cmd_ids: list[int], args: dict[str, Any]) -> None:
        """Emergency requests: carried out before anything else is looked at, whatever the role, the
        budget or the form (an unexpected argument is ignored, and kept in the record); a flood is merged."""
        work, started = self.emergencies.request(client.info.who, client.role, len(cmd_ids))
        client.merged.spend(len(cmd_ids) - started, self.clock.monotonic())
        if started and (not self.audit.station_records or args):
            self.audit.note(client.info.who, client.role, describe_command("emergency_deflate", args))
        self.emergencies.answer_when_done(client, cmd_ids, work)

    def _track(self, client: Console, task: asyncio.Future[None]) -> None:
        client.in_flight.add(task)  # type: ignore[arg-type]
        task.add_done_callback(client.in_flight.discard)

    async def _finish(self, client: Console, cmd_id: int, name: str, work: Any) -> None:
        try:
            value = await work
        except CommandRefused as exc:
            client.send(failure_reply(cmd_id, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the client gets a sentence, the log the trace
            log.exception("%s from %s failed", name, client.info.who)
            client.send(failure_reply(cmd_id, failure_sentence(name, exc)))
        else:
            client.send({"op": protocol.RESULT, "id": cmd_id, "ok": True, "value": to_wire(value)})


async def serve_station(station: StationHandle, config: Any, *, fps: float = 20.0) -> StationServer:
    """What ``bfr-console serve`` (and the local console) call: serve ``station`` as the config says.

    The socket is ``config.station.socket``; roles come from ``config.roles``.
    Raises :class:`ServeError` with a sentence when the socket cannot be served.
    """
    server = StationServer(station, config.station.socket, config.roles, fps=fps)
    await server.start()
    return server


__all__ = ["ClientInfo", "StationServer", "serve_station"]
