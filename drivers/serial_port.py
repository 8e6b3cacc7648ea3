"""Open a serial port as an asyncio stream pair.

The only module that imports ``serial_asyncio_fast``, so the serial backend can
be swapped (or faked in a test) in one place.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Iterable
from typing import SupportsIndex

import serial  # type: ignore[import-untyped]  # pyserial ships no type hints (no py.typed, no stubs installed)
import serial_asyncio_fast

BAUDRATE = 115200
"""CUFF-LINK/1 runs 8-N-1 at 115200 baud (a USB CDC-ACM port ignores it)."""

IN_USE_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})
"""What opening or locking a port held by another program fails with (flock, or a TIOCEXCL holder)."""

DataSink = Callable[[bytes], None]
CloseSink = Callable[[BaseException | None], None]


class PortError(OSError):
    """The port could not be opened; the message names the URL and the cause."""


class PortReader(asyncio.StreamReader):
    """A StreamReader that can hand bytes straight to a callback instead of buffering them.

    A reader task that awaits ``read()`` costs one extra event-loop pass per
    chunk; with a sink the bytes are handled inside the transport's read
    callback, which keeps the answer round trip at the floor of the port and
    the 100 Hz sample stream cheap. Without a sink it is a plain StreamReader.
    """

    _sink: tuple[DataSink, CloseSink] | None = None

    def set_sink(self, on_data: DataSink, on_close: CloseSink) -> None:
        """From now on, call ``on_data(bytes)`` per chunk and ``on_close(exc_or_None)`` at the end."""
        self._sink = (on_data, on_close)
        buffered = getattr(self, "_buffer", None)
        if buffered:
            data = bytes(buffered)
            buffered.clear()
            on_data(data)
        if self.exception() is not None:
            on_close(self.exception())
        elif self.at_eof():
            on_close(None)

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        sink = self._sink
        if sink is None:
            super().feed_data(data)
        elif data:
            sink[0](bytes(data))

    def feed_eof(self) -> None:
        super().feed_eof()
        if self._sink is not None:
            self._sink[1](None)

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        if self._sink is not None:
            self._sink[1](exc)


def direct_reader(transport: object) -> Callable[[], None] | None:
    """A read of a paused serial transport now, as the event loop's read would (None: not such a transport).

    pyserial-asyncio-fast's transport reads in ``_read_ready``: one non-blocking read of up to
    1 KiB handed to its protocol, an empty read ignored, a failing port closed (its protocol
    then hears of the loss). It is private; the version is pinned in pyproject.toml and
    tests/test_read_pacing.py checks it against a real pty.
    """
    if not isinstance(transport, serial_asyncio_fast.SerialTransport):
        return None
    read = getattr(transport, "_read_ready", None)
    return read if callable(read) else None


async def open_port(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``url`` (a device path or any pyserial URL, e.g. ``socket://host:port``) at 115200 8N1.

    A device path is opened exclusively (pyserial's ``exclusive``: an advisory
    ``flock``), so two links, or two consoles, never drive one controller; a
    ``socket://`` URL has no device to lock. The reader is a :class:`PortReader`.
    pyserial's ``loop://`` has no file descriptor and cannot work with an asyncio
    transport; it is refused here with a clear error instead of failing obscurely later.

    Raises:
        PortError: the port does not exist, is in use by another program (holding it
            exclusively), or the URL is not usable.
    """
    if url.startswith("loop://"):
        raise PortError(f"{url}: pyserial's loop:// cannot be used asynchronously; use a pty or socket://")
    exclusive = {} if "://" in url else {"exclusive": True}
    loop = asyncio.get_running_loop()
    reader = PortReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    try:
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: protocol,
            url,
            baudrate=BAUDRATE,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            **exclusive,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        if getattr(exc, "errno", None) in IN_USE_ERRNOS:
            raise PortError(f"port {url} is in use by another program ({exc})") from exc
        raise PortError(f"cannot open {url}: {exc}") from exc
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
