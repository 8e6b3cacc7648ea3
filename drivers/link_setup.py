"""Setting up one open port: HELLO (is it the expected controller?), WATCHDOG, STREAM, first sample.

Apart from the session in :mod:`drivers.link` because it is one sequence with one
question at its end: may this port be used? The link runs it on every port it
opens (a probe) and again on the same port after a reboot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from drivers.codec import Ok
from drivers.link_connection import Connection
from drivers.link_errors import HelloInfo, LinkError, LinkState, LinkStats, WrongController
from drivers.link_hello import Identity, parse_hello, pick_rate
from drivers.link_requests import RequestBook

log = logging.getLogger(__name__)


class Configured(Protocol):
    """What the setup reads of its link, and the two fields it writes (``info``, ``stream_rate``)."""

    url: str
    watchdog_ms: int
    stream_hz: int
    info: HelloInfo | None
    stream_rate: int
    last_sample_at: float | None

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> LinkStats: ...


async def set_up(link: Configured, conn: Connection, requests: RequestBook[Connection], identity: Identity) -> None:
    """HELLO (is it the expected controller?), WATCHDOG, STREAM; again if it rebooted meanwhile.

    A BOOT read while the HELLO is out is taken as the power-up line the port held before
    the host came (its answer is used); a BOOT after it makes the controller say HELLO again.

    Raises:
        WrongController: the port answers as another controller; nothing else was sent.
        LinkError: a command failed.
    """

    async def request(verb: str, *args: object) -> Ok:
        return await requests.submit(verb, args, urgent=False, require_ready=False)

    while True:
        if not conn.verified:
            info = parse_hello((await request("HELLO")).fields)
            identity.check(info, link.url)
            conn.verified = True
            link.info = info
        conn.boot_seen = False
        await request("WATCHDOG", link.watchdog_ms)
        rate = pick_rate(link.info.rates if link.info is not None else (), link.stream_hz)
        await request("STREAM", rate)
        link.stream_rate = rate
        conn.sample_ref = asyncio.get_running_loop().time()
        if not conn.boot_seen:
            return


async def first_sample(link: Configured, conn: Connection, timeout: float) -> bool:
    """Wait for the first usable sample after STREAM; True at once when no stream was asked for.

    The link resolves ``conn.first_sample`` on the first usable sample it reads.
    """
    last = link.last_sample_at
    if link.stream_rate <= 0 or last is not None and last >= conn.sample_ref:
        return True
    conn.first_sample = asyncio.get_running_loop().create_future()
    try:
        await asyncio.wait_for(conn.first_sample, timeout)
    except TimeoutError:
        return False
    finally:
        conn.first_sample = None
    return True


async def set_up_again(
    link: Configured,
    conn: Connection,
    requests: RequestBook[Connection],
    identity: Identity,
    lose: Callable[[Connection, str, LinkState], None],
) -> None:
    """After a reboot on an open port: set it up again, or give the port up saying why."""
    try:
        await set_up(link, conn, requests, identity)
    except asyncio.CancelledError:
        raise
    except WrongController as exc:
        lose(conn, str(exc), LinkState.REFUSED)
    except LinkError as exc:
        lose(conn, f"setup after reboot failed: {exc}", LinkState.LOST)
    except Exception as exc:
        log.exception("%s: setup after reboot crashed", link.name)
        link.stats.errors += 1
        lose(conn, f"setup after reboot crashed: {exc!r}", LinkState.LOST)
