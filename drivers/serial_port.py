"""Open a serial port as an asyncio stream pair.

The only module that imports ``serial_asyncio_fast``, so the serial backend can
be swapped (or faked in a test) in one place.
"""

from __future__ import annotations

import asyncio

import serial
import serial_asyncio_fast

BAUDRATE = 115200
"""CUFF-LINK/1 runs 8-N-1 at 115200 baud (a USB CDC-ACM port ignores it)."""


class PortError(OSError):
    """The port could not be opened; the message names the URL and the cause."""


async def open_port(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``url`` (a device path or any pyserial URL, e.g. ``socket://host:port``) at 115200 8N1.

    pyserial's ``loop://`` has no file descriptor and cannot work with an
    asyncio transport; it is refused here with a clear error instead of
    failing obscurely later.

    Raises:
        PortError: the port does not exist, is busy, or the URL is not usable.
    """
    if url.startswith("loop://"):
        raise PortError(f"{url}: pyserial's loop:// cannot be used asynchronously; use a pty or socket://")
    try:
        return await serial_asyncio_fast.open_serial_connection(
            url=url,
            baudrate=BAUDRATE,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open {url}: {exc}") from exc
