"""The hostile side of ``bench_remote.py --hostile``: other users' processes that misbehave on the socket.

Each hostile process is forked before the station starts, drops to a uid of its own (group
``nogroup``, which the bench's role rule makes observers), waits for the go, then runs for the
measured seconds and prints a JSON line of what it saw. Behaviours, one per connection slot:

- ``mute``: attaches and never reads again (the server must let it go);
- ``garbage``: sends a line that is not JSON, is thrown out, comes back (20 ms later);
- ``commands``: sends operator commands as an observer, 100 at a time, reading the refusals;
- ``halfline``: sends 60 KB with no newline and holds the connection;
- ``churn``: attaches and leaves at once, again and again (every 20 ms).

The pauses are there because a local user can burn the CPU with any program; what is measured is
what the station's own code pays for each misdeed, not the kernel's scheduler.

The flooder is an observer that writes emergency deflates as fast as the socket takes them and
counts the answers: every one must come back ``ok``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

KINDS = ("mute", "garbage", "commands", "halfline", "churn", "mute", "commands", "churn")
PAUSE_S = 0.02


def fork_as(uid: int, gid: int, work: Callable[[], dict[str, Any]]) -> tuple[int, int, int]:
    """Fork a child that becomes ``uid``/``gid``, waits for a byte on its go pipe, runs ``work``, prints JSON.

    Returns ``(pid, go_fd, result_fd)`` for the parent.
    """
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(go_w)
            os.close(out_r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            if os.read(go_r, 1) != b"g":
                os._exit(0)
            text = json.dumps(work())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            text = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            code = 1
        try:
            os.write(out_w, text.encode() + b"\n")
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(out_w)
    return pid, go_w, out_r


def hostile(socket: str, seconds: float) -> dict[str, Any]:
    return asyncio.run(_hostile(socket, seconds))


async def _hostile(socket: str, seconds: float) -> dict[str, Any]:
    stats: Counter[str] = Counter()
    end = time.monotonic() + seconds
    await asyncio.gather(*(_slot(kind, socket, end, stats) for kind in KINDS))
    return dict(stats)


async def _open(socket: str, stats: Counter[str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        reader, writer = await asyncio.open_unix_connection(socket, limit=64 * 1024)
        first = await asyncio.wait_for(reader.readline(), 5)
    except (OSError, TimeoutError):
        stats["connect_failed"] += 1
        return None
    stats["connects"] += 1
    if not first.startswith(b'{"op":"hello"'):  # refused with its reason, or (past the reasons) just closed
        stats["refused"] += 1
        writer.close()
        return None
    stats["attached"] += 1
    return reader, writer


async def _slot(kind: str, socket: str, end: float, stats: Counter[str]) -> None:
    while time.monotonic() < end:
        got = await _open(socket, stats)
        if got is None:
            await asyncio.sleep(PAUSE_S)
            continue
        reader, writer = got
        try:
            if kind in ("mute", "halfline"):
                if kind == "halfline":
                    writer.write(b'{"op":"cmd","id":1,"name":"inflate","args":{"pad":"' + b"x" * 60_000)
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                return
            if kind == "garbage":
                writer.write(b"this is not json\n")
                await asyncio.wait_for(reader.read(), 5)
                stats["garbage_sent"] += 1
            elif kind == "commands":
                while time.monotonic() < end:
                    writer.write(
                        b"".join(
                            json.dumps(
                                {"op": "cmd", "id": i, "name": "inflate", "args": {"cuff_id": "A1", "mmhg": 250}}
                            ).encode()
                            + b"\n"
                            for i in range(100)
                        )
                    )
                    await writer.drain()
                    stats["commands_sent"] += 100
                    chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
                    if not chunk:
                        break
                    await asyncio.sleep(PAUSE_S)
            elif kind == "churn":
                stats["churns"] += 1
        except (OSError, TimeoutError, ConnectionError):
            stats["cut_off_seen"] += 1
        finally:
            writer.close()
        await asyncio.sleep(PAUSE_S)


def flooder(socket: str, seconds: float) -> dict[str, Any]:
    return asyncio.run(_flooder(socket, seconds))


async def _flooder(socket: str, seconds: float) -> dict[str, Any]:
    """Flood until ``seconds`` are over, reconnecting if the station cuts the connection off; count answers."""
    tally: Counter[str] = Counter()
    end = time.monotonic() + seconds
    role = None
    while time.monotonic() < end:
        got = await _flood_once(socket, end, tally)
        role = got or role
    return {"role": role, **tally}


async def _flood_once(socket: str, end: float, tally: Counter[str]) -> str | None:
    reader, writer = await asyncio.open_unix_connection(socket, limit=1 << 24)
    hello = json.loads(await reader.readline())
    if hello["op"] != "hello":  # the hostile connections may have taken every place: come back
        tally["refused_first"] += 1
        writer.close()
        await asyncio.sleep(0.05)
        return None
    answered: Counter[str] = Counter()

    async def read() -> None:
        """Bulk reads, lines counted in C: a console reading line by line in Python falls behind a station
        that answers a quarter of a million requests a second (and would be cut off for not reading)."""
        rest = b""
        while chunk := await reader.read(1 << 22):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            done, rest = data[:cut], data[cut:]
            answered["ok"] += done.count(b'"op":"result","id":') - done.count(b'"ok":false')
            answered["failed"] += done.count(b'"ok":false')

    reading = asyncio.create_task(read())
    sent = 0
    try:
        while time.monotonic() < end and not reading.done():
            writer.write(
                b"".join(
                    b'{"op":"cmd","id":%d,"name":"emergency_deflate","args":{}}\n' % (sent + i) for i in range(256)
                )
            )
            sent += 256
            await writer.drain()
        deadline = time.monotonic() + 30
        while answered["ok"] + answered["failed"] < sent and time.monotonic() < deadline and not reading.done():
            await asyncio.sleep(0.05)
    except (ConnectionError, OSError):
        pass
    if reading.done():
        tally["cut_off"] += 1
        tally["unanswered_when_cut"] += sent - answered["ok"] - answered["failed"]
    reading.cancel()
    writer.close()
    tally["sent"] += sent
    tally["ok"] += answered["ok"]
    tally["failed"] += answered["failed"]
    return str(hello.get("role"))
