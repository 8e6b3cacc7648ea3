"""Find serial ports and ask each one, once, who it is (HELLO), and nothing else.

The scan never sends a command that could move a cuff: only ``HELLO``, which
every CUFF-LINK/1 controller answers without acting. Each port is opened the
way the console opens it (exclusively, so a port a running console holds is
reported busy, never shared), given a short time to answer, and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import os
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from drivers.codec import LineReader, MalformedLine, Ok, command_body, frame, parse_report
from drivers.link_errors import HelloInfo, LinkError
from drivers.link_hello import parse_hello
from drivers.serial_port import IN_USE_ERRNOS, PortError, open_port

OpenPort = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

DEFAULT_TIMEOUT_S = 1.0
"""How long a port gets to answer HELLO (sent twice within it: a line can be lost)."""

BY_ID = "/dev/serial/by-id"
PATTERNS = ("/dev/ttyUSB*", "/dev/ttyACM*")

DIALOUT_HINT = "add this user to the dialout group (sudo usermod -aG dialout $USER, then log in again)"


@dataclass(frozen=True, slots=True)
class PortReport:
    """What one port said, or why it said nothing usable."""

    port: str
    info: HelloInfo | None = None
    problem: str = ""
    """Empty when the port answered as a usable controller."""
    kind: str = "ok"
    """``ok``, ``silent``, ``busy``, ``permission``, ``missing``, ``foreign``, ``duplicate``."""

    @property
    def usable(self) -> bool:
        return self.info is not None and not self.problem

    def describe(self) -> str:
        """One line for a person: the controller, or why not."""
        if self.info is not None and self.usable:
            i = self.info
            return f"{self.port}: {i.model} serial {i.serial} firmware {i.fw}, {i.channels} channels"
        return f"{self.port}: {self.problem}"


def find_ports(explicit: Sequence[str] = (), *, by_id: str = BY_ID, patterns: Iterable[str] = PATTERNS) -> list[str]:
    """The ports to try: ``explicit`` if given (exactly those), else the stable by-id names first,
    then ``ttyUSB*``/``ttyACM*`` not already reached through a by-id name. One path per device."""
    if explicit:
        candidates = list(explicit)
    else:
        candidates = sorted(glob.glob(os.path.join(by_id, "*")))
        for pattern in patterns:
            candidates += sorted(glob.glob(pattern))
    seen: set[str] = set()
    ports: list[str] = []
    for port in candidates:
        device = os.path.realpath(port) if "://" not in port else port
        if device in seen:
            continue
        seen.add(device)
        ports.append(port)
    return ports


def _open_problem(port: str, exc: BaseException) -> PortReport:
    code = getattr(exc.__cause__, "errno", None) or getattr(exc, "errno", None)
    if code in IN_USE_ERRNOS:
        return PortReport(
            port, problem="busy: another program has it open (a running console or station?)", kind="busy"
        )
    if code in (errno.EACCES, errno.EPERM):
        return PortReport(port, problem=f"permission denied: {DIALOUT_HINT}", kind="permission")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PortReport(port, problem="no such port (unplugged?)", kind="missing")
    return PortReport(port, problem=f"cannot open: {exc}", kind="missing")


async def ask_hello(port: str, *, timeout: float = DEFAULT_TIMEOUT_S, opener: OpenPort = open_port) -> PortReport:
    """Open ``port``, send HELLO (and once more halfway if unanswered), close; what it answered."""
    try:
        reader, writer = await opener(port)
    except (PortError, OSError) as exc:
        return _open_problem(port, exc)
    lines = LineReader()
    other = 0
    seq = random.randint(1, 60000)  # a stale answer to another host's command never matches
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        for attempt in (seq, seq + 1):
            writer.write(frame(command_body(attempt, "HELLO")))
            resend_at = min(deadline, loop.time() + timeout / 2) if attempt == seq else deadline
            while (left := resend_at - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(reader.read(4096), left)
                except TimeoutError:
                    break
                if not data:
                    return PortReport(port, problem="the port closed while asking it (unplugged?)", kind="missing")
                for body in lines.feed(data):
                    try:
                        msg = parse_report(body)
                    except MalformedLine:
                        other += 1
                        continue
                    if isinstance(msg, Ok) and msg.seq in (seq, seq + 1):
                        return _hello_report(port, msg)
    except OSError as exc:
        return PortReport(port, problem=f"the port failed while asking it: {exc}", kind="missing")
    finally:
        await _close(writer)
    if other or lines.drops.total:
        return PortReport(port, problem="not a CUFF-LINK device (it sends something else)", kind="foreign")
    return PortReport(port, problem=f"no answer to HELLO within {timeout:g} s (not a CUFF-LINK device?)", kind="silent")


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close the port before returning: the transport releases the device (and its lock) on a later
    loop pass, and a caller that ends its loop now (``asyncio.run``) would otherwise leave it held."""
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()
    for _ in range(400):  # closed in an executor thread: up to 2 s on a loaded machine
        if getattr(transport, "serial", None) is None:
            return
        await asyncio.sleep(0.005)


def _hello_report(port: str, msg: Ok) -> PortReport:
    try:
        return PortReport(port, info=parse_hello(msg.fields))
    except LinkError as exc:
        return PortReport(port, problem=f"not a usable CUFF-LINK/1 controller: {exc}", kind="foreign")


def mark_duplicates(reports: Sequence[PortReport]) -> list[PortReport]:
    """Two ports answering with one serial cannot be told apart by a pin: neither is usable."""
    by_serial: dict[str, list[str]] = {}
    for r in reports:
        if r.usable and r.info is not None:
            by_serial.setdefault(r.info.serial, []).append(r.port)
    out = []
    for r in reports:
        if r.usable and r.info is not None and len(by_serial[r.info.serial]) > 1:
            others = ", ".join(p for p in by_serial[r.info.serial] if p != r.port)
            problem = (
                f"{r.info.model} serial {r.info.serial} answers on {others} too: "
                "two controllers with one serial cannot be pinned apart (fix one controller's serial)"
            )
            r = replace(r, problem=problem, kind="duplicate")
        out.append(r)
    return out


async def scan(
    ports: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, opener: OpenPort = open_port
) -> list[PortReport]:
    """Ask every port at once; one report per port, in the order given, duplicates marked."""
    reports = await asyncio.gather(*(ask_hello(p, timeout=timeout, opener=opener) for p in ports))
    return mark_duplicates(reports)
