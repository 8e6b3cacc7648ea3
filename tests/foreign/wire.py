"""CUFF-LINK/1 framing as the foreign controller does it (protocol section 1), written anew.

CRC-16/CCITT-FALSE, a line out (``BODY*CCCC`` and LF), pressures with at most one fractional
digit (none when whole, never ``-0``), and the receiver's checks: too long, bad or missing
CRC, a byte outside printable ASCII, a ``*`` in the body: dropped and counted, never answered.
"""

from __future__ import annotations

import re

MAX_BODY = 100
_CRC = re.compile(rb"[0-9A-F]{4}\Z")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(body: str) -> bytes:
    if len(body) > MAX_BODY or "*" in body:
        raise ValueError(f"firmware bug: body {body!r} breaks the framing")
    return f"{body}*{crc16(body.encode('ascii')):04X}\n".encode("ascii")


def fmt(mmhg: float) -> str:
    """At most one fractional digit, none when whole; never ``-0``."""
    r = round(mmhg, 1)
    if r == 0:
        return "0"
    return str(int(r)) if r == int(r) else f"{r:.1f}"


class LineAssembler:
    """Bytes in, checked line bodies out; a line that breaks the framing is dropped and counted."""

    LIMIT = MAX_BODY + 6
    """Body, ``*CCCC`` and an optional CR."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.overflow = False
        self.dropped = 0

    def clear(self) -> None:
        self.buf.clear()
        self.overflow = False

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        start = 0
        while True:
            i = data.find(b"\n", start)
            if i < 0:
                if not self.overflow:
                    self.buf += data[start:]
                    if len(self.buf) > self.LIMIT:
                        self.overflow = True
                        self.buf.clear()
                return out
            piece, start = data[start:i], i + 1
            if self.overflow:
                self.overflow = False
                self.dropped += 1
                continue
            self.buf += piece
            line = bytes(self.buf)
            self.buf.clear()
            body = self._check(line)
            if body is None:
                self.dropped += 1
            else:
                out.append(body)

    def _check(self, line: bytes) -> str | None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.LIMIT - 1 or any(b < 0x20 or b > 0x7E for b in line) or line.count(b"*") != 1:
            return None
        body, _, crc = line.partition(b"*")
        if len(body) > MAX_BODY or not _CRC.match(crc) or int(crc, 16) != crc16(body):
            return None
        return body.decode("ascii")
