"""The station socket's framing: one JSON object per line, both ways.

Server to client::

    {"op":"hello","proto":1,"role":"observer","station":"Bay A","user":"ana"}
    {"op":"refused","reason":"..."}                      (then the server closes)
    {"op":"snapshot","snapshot":{...wire StationSnapshot...}}
    {"op":"result","id":7,"ok":true,"value":...}
    {"op":"result","id":7,"ok":false,"error":"sentence for the screen"}
    {"op":"error","reason":"..."}                        (then the server closes)

Client to server::

    {"op":"cmd","id":7,"name":"inflate","args":{"cuff_id":"A1","mmhg":180}}

A client line longer than :data:`MAX_REQUEST`, a line that is not a JSON
object, or an unknown ``op`` gets an ``error`` and the connection closes; the
station and the other clients carry on. Server lines may be larger (a snapshot
of 16 cuffs with their traces, or a long alarm log) up to :data:`MAX_REPLY`.
"""

from __future__ import annotations

import json
import re
from typing import Any

PROTO = 1
"""Bumped on any change an older peer would misread."""

MAX_REQUEST = 64 * 1024
"""Longest line a client may send, bytes including the newline."""

MAX_REPLY = 16 * 1024 * 1024
"""Longest line the server may send (snapshots, alarm logs)."""

HELLO = "hello"
REFUSED = "refused"
SNAPSHOT = "snapshot"
RESULT = "result"
ERROR = "error"
CMD = "cmd"


class ProtocolError(ValueError):
    """A peer sent something that breaks the framing; the connection must close."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line. Compact: snapshots go out 20 times a second."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def decode(line: bytes, *, limit: int) -> dict[str, Any]:
    """Parse one received line into a message dict with a string ``op``."""
    if len(line) > limit:
        raise ProtocolError(f"message of {len(line)} bytes is over the {limit}-byte limit")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    op = message.get("op")
    if not isinstance(op, str):
        raise ProtocolError('message has no "op"')
    return message


_EMERGENCY_LINE = re.compile(rb'\{"op":"cmd","id":(\d{1,15}),"name":"emergency_deflate","args":\{\}\}\n')
"""The emergency request exactly as :func:`encode` writes it: read without the JSON parser (a flood of them is cheap)."""


def emergency_run(data: bytes, start: int, limit: int) -> tuple[list[int], int]:
    """The ids of up to ``limit`` emergency requests written as :func:`encode` writes them, one after the
    other from ``start`` in ``data``, and the offset just past them (``start`` and no id when there is none).

    A flood is read a run at a time, not a line at a time: what it costs is a regular expression per line.
    """
    ids: list[int] = []
    match = _EMERGENCY_LINE.match
    while len(ids) < limit and (m := match(data, start)) is not None:
        ids.append(int(m.group(1)))
        start = m.end()
    return ids, start


def parse_command(line: bytes) -> tuple[int, str, dict[str, Any]]:
    """``(id, name, args)`` of one client line, or :class:`ProtocolError` saying what is wrong with it."""
    fast = _EMERGENCY_LINE.fullmatch(line)
    if fast is not None:
        return int(fast.group(1)), "emergency_deflate", {}
    message = decode(line, limit=MAX_REQUEST)
    if message["op"] != CMD:
        raise ProtocolError(f"unknown op {message['op']!r}")
    cmd_id = message.get("id")
    name = message.get("name")
    args = message.get("args", {})
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        raise ProtocolError('a command needs an integer "id"')
    if not isinstance(name, str):
        raise ProtocolError('a command needs a "name"')
    if not isinstance(args, dict):
        raise ProtocolError('a command\'s "args" must be an object')
    return cmd_id, name, args
