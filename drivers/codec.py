"""CUFF-LINK/1 codec: framing, CRC, parsing and formatting. Pure functions, no I/O.

Both ends use this module: the link (host side) and the emulator (controller
side), so the two can never disagree about the wire format. The contract is
``shared/protocol.md``; section numbers below refer to it.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_BODY = 100
"""Longest BODY a line may carry (section 1)."""

MAX_LINE = MAX_BODY + 5 + 1
"""Longest line before its LF: BODY, ``*CCCC`` and an optional CR."""

MAX_SEQ = 65535
"""SEQ runs 1..65535 and wraps back to 1 (section 2)."""

ERR_CODES = frozenset({"UNKNOWN", "ARGS", "CHANNEL", "RANGE", "LATCHED", "BUSY"})
"""The only codes an ``ERR`` answer may carry (section 2)."""

CHANNEL_STATES = frozenset({"VENTED", "INFLATING", "HOLDING", "VENTING", "FAULT"})
"""The channel states of a ``C`` line (section 3)."""

EVENT_CODES = frozenset({"BOOT", "WDT", "OVERPRESSURE", "LEAK", "SENSOR", "VENTFAIL"})
"""The events section 3 defines. Unknown codes are still parsed, for forward compatibility."""

VERBS = frozenset({"HELLO", "PING", "WATCHDOG", "STREAM", "SET", "DEFLATE", "ZERO", "STATUS", "CLEAR"})
"""The commands of section 2."""

_BAD_BYTE = re.compile(rb"[^\x20-\x7e]")
_PRESSURE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
_UINT = re.compile(r"[0-9]+\Z")
_HEX4 = re.compile(rb"[0-9A-F]{4}\Z")
_WELL_FORMED_SAMPLE = re.compile(r"S [0-9]+(?: -?[0-9]+(?:\.[0-9]+)?)+\Z")
"""A whole ``S`` line in one match (the 100 Hz hot path); anything else is parsed field by field."""


class MalformedLine(ValueError):
    """A line with a good CRC whose content does not follow the protocol."""


# --------------------------------------------------------------------------- CRC and framing


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0)."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(body: str) -> bytes:
    """Wrap a BODY into a wire line: ``BODY*CCCC\\n``.

    Raises:
        ValueError: if the body is too long, holds ``*`` or a non-printable byte.
    """
    raw = body.encode("ascii")
    if len(raw) > MAX_BODY:
        raise ValueError(f"body longer than {MAX_BODY} characters: {body!r}")
    if b"*" in raw or _BAD_BYTE.search(raw):
        raise ValueError(f"body holds '*' or a non-printable byte: {body!r}")
    return b"%s*%04X\n" % (raw, crc16(raw))


def check_line(line: bytes) -> str | None:
    """Validate one line (without its LF) and return its BODY, or None to drop it."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_BODY + 5 or len(line) < 5 or line[-5:-4] != b"*":
        return None
    if _BAD_BYTE.search(line):
        return None
    body, crc = line[:-5], line[-4:]
    if b"*" in body or not _HEX4.match(crc):
        return None
    if int(crc, 16) != crc16(body):
        return None
    return body.decode("ascii")


@dataclass
class DropCounts:
    """Lines a receiver dropped, by reason (section 1: counted, never acted on)."""

    too_long: int = 0
    bad_crc: int = 0
    bad_bytes: int = 0
    malformed: int = 0
    """Good CRC but content that does not parse; also never acted on."""

    @property
    def total(self) -> int:
        return self.too_long + self.bad_crc + self.bad_bytes + self.malformed


class LineReader:
    """Splits a byte stream into checked BODYs, dropping and counting bad lines.

    Resynchronises on the next LF after garbage, and never buffers more than
    one maximal line, whatever arrives.
    """

    __slots__ = ("_buf", "_discarding", "drops")

    def __init__(self) -> None:
        self._buf = b""
        self._discarding = False
        self.drops = DropCounts()

    def feed(self, data: bytes) -> list[str]:
        """Take bytes as they arrive; return the BODYs of the complete good lines."""
        bodies: list[str] = []
        buf = self._buf + data if self._buf else data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if self._discarding:
                self._discarding = False
                continue
            body = self._check(line)
            if body is not None:
                bodies.append(body)
        rest = buf[start:]
        if len(rest) > MAX_LINE:
            if not self._discarding:
                self.drops.too_long += 1
                self._discarding = True
            rest = b""
        self._buf = rest
        return bodies

    def _check(self, line: bytes) -> str | None:
        body = check_line(line)
        if body is None:
            stripped = line[:-1] if line.endswith(b"\r") else line
            if len(stripped) > MAX_BODY + 5:
                self.drops.too_long += 1
            elif _BAD_BYTE.search(stripped):
                self.drops.bad_bytes += 1
            else:
                self.drops.bad_crc += 1
        return body


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Command:
    """Host to controller: ``#SEQ VERB ARG...``."""

    seq: int
    verb: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ok:
    """``#SEQ OK key=value...``."""

    seq: int
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Err:
    """``#SEQ ERR CODE text...``."""

    seq: int
    code: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Sample:
    """``S T P1 .. PN``: one reading of every channel; T is uptime in ms (u32, wraps)."""

    uptime_ms: int
    pressures: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Status:
    """``C CH STATE TARGET DUTY``."""

    channel: int
    state: str
    target: float
    duty: int


@dataclass(frozen=True, slots=True)
class Event:
    """``E CODE CH TEXT...``; channel None stands for ``-`` (the whole controller)."""

    code: str
    channel: int | None
    text: str = ""


Answer = Ok | Err
Report = Ok | Err | Sample | Status | Event


# --------------------------------------------------------------------------- formatting


def format_pressure(p: float) -> str:
    """mmHg with at most one fractional digit: ``0``, ``40``, ``182.5``.

    Raises:
        ValueError: ``p`` is NaN or infinite (never a pressure on the wire).
    """
    if not math.isfinite(p):
        raise ValueError(f"not a finite pressure: {p!r}")
    tenths = round(p * 10)
    if tenths == 0:
        return "0"
    if tenths % 10 == 0:
        return str(tenths // 10)
    sign = "-" if tenths < 0 else ""
    t = abs(tenths)
    return f"{sign}{t // 10}.{t % 10}"


def command_body(seq: int, verb: str, *args: object) -> str:
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"SEQ out of range: {seq}")
    parts = [f"#{seq}", verb, *(str(a) for a in args)]
    return " ".join(parts)


def encode_command(seq: int, verb: str, *args: object) -> bytes:
    return frame(command_body(seq, verb, *args))


def ok_body(seq: int, fields: Mapping[str, object] | None = None) -> str:
    parts = [f"#{seq}", "OK"]
    if fields:
        parts.extend(f"{k}={v}" for k, v in fields.items())
    return " ".join(parts)


def err_body(seq: int, code: str, text: str = "") -> str:
    body = f"#{seq} ERR {code}"
    return f"{body} {text}" if text else body


def sample_body(uptime_ms: int, pressures: tuple[float, ...] | list[float]) -> str:
    return "S " + str(uptime_ms & 0xFFFFFFFF) + " " + " ".join(format_pressure(p) for p in pressures)


def status_body(channel: int, state: str, target: float, duty: int) -> str:
    return f"C {channel} {state} {format_pressure(target)} {duty}"


def event_body(code: str, channel: int | None, text: str = "") -> str:
    body = f"E {code} {'-' if channel is None else channel}"
    return f"{body} {text}" if text else body


def encode(msg: Command | Report) -> bytes:
    """Frame any message for the wire."""
    if isinstance(msg, Sample):
        return frame(sample_body(msg.uptime_ms, msg.pressures))
    if isinstance(msg, Status):
        return frame(status_body(msg.channel, msg.state, msg.target, msg.duty))
    if isinstance(msg, Event):
        return frame(event_body(msg.code, msg.channel, msg.text))
    if isinstance(msg, Ok):
        return frame(ok_body(msg.seq, msg.fields))
    if isinstance(msg, Err):
        return frame(err_body(msg.seq, msg.code, msg.text))
    if isinstance(msg, Command):
        return frame(command_body(msg.seq, msg.verb, *msg.args))
    raise TypeError(f"not a CUFF-LINK/1 message: {msg!r}")


# --------------------------------------------------------------------------- parsing


def parse_pressure(text: str) -> float:
    if not _PRESSURE.match(text):
        raise MalformedLine(f"not a pressure: {text!r}")
    return float(text)


def _uint(text: str, what: str) -> int:
    if not _UINT.match(text):
        raise MalformedLine(f"not a whole number for {what}: {text!r}")
    return int(text)


def _fields(body: str) -> list[str]:
    parts = body.split(" ")
    if "" in parts:
        raise MalformedLine(f"fields must be separated by exactly one space: {body!r}")
    return parts


def _seq(token: str) -> int:
    if not token.startswith("#"):
        raise MalformedLine(f"expected #SEQ, got {token!r}")
    seq = _uint(token[1:], "SEQ")
    if not 1 <= seq <= MAX_SEQ:
        raise MalformedLine(f"SEQ out of range: {seq}")
    return seq


def parse_command(body: str) -> Command:
    """Parse a host command. The verb and args are not checked here (the firmware answers ERR)."""
    parts = _fields(body)
    if len(parts) < 2:
        raise MalformedLine(f"a command needs #SEQ and a verb: {body!r}")
    return Command(_seq(parts[0]), parts[1], tuple(parts[2:]))


def parse_report(body: str) -> Report:
    """Parse anything a controller sends: an answer, a sample, a status or an event."""
    kind = body[:1]
    if kind == "S":
        if _WELL_FORMED_SAMPLE.match(body):
            parts = body.split(" ")
            return Sample(int(parts[1]), tuple(map(float, parts[2:])))
        parts = _fields(body)  # the field-by-field path names what is wrong
        if parts[0] != "S" or len(parts) < 3:
            raise MalformedLine(f"bad sample: {body!r}")
        return Sample(_uint(parts[1], "uptime"), tuple(parse_pressure(p) for p in parts[2:]))
    if kind == "#":
        parts = _fields(body)
        if len(parts) < 2:
            raise MalformedLine(f"bad answer: {body!r}")
        seq = _seq(parts[0])
        if parts[1] == "OK":
            fields: dict[str, str] = {}
            for item in parts[2:]:
                key, eq, value = item.partition("=")
                if not eq or not key:
                    raise MalformedLine(f"bad OK field {item!r} in {body!r}")
                fields[key] = value
            return Ok(seq, fields)
        if parts[1] == "ERR" and len(parts) >= 3:
            return Err(seq, parts[2], " ".join(parts[3:]))
        raise MalformedLine(f"bad answer: {body!r}")
    if kind == "C":
        parts = _fields(body)
        if parts[0] != "C" or len(parts) != 5:
            raise MalformedLine(f"bad status: {body!r}")
        if parts[2] not in CHANNEL_STATES:
            raise MalformedLine(f"unknown channel state {parts[2]!r}")
        return Status(_uint(parts[1], "channel"), parts[2], parse_pressure(parts[3]), _uint(parts[4], "duty"))
    if kind == "E":
        parts = _fields(body)
        if parts[0] != "E" or len(parts) < 3:
            raise MalformedLine(f"bad event: {body!r}")
        ch = None if parts[2] == "-" else _uint(parts[2], "channel")
        return Event(parts[1], ch, " ".join(parts[3:]))
    raise MalformedLine(f"unknown report: {body!r}")
