"""The setup's test inflate: a short, low pressure on one channel, to see which physical cuff moves.

It goes through the console's own driver (:class:`drivers.link.CuffLink`), pinned
to the controller's serial, so the controller's watchdog is armed as in a session.
Whatever happens (the SET refused, the link lost, the screen closed, the task
cancelled), a DEFLATE of that channel is sent, and stopping the link sends
DEFLATE ALL after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.link import CuffLink
from drivers.link_errors import LinkError

log = logging.getLogger(__name__)

TRIAL_MMHG = 30.0
"""Low enough for any limb (far below any LOP), high enough to see and feel the cuff fill."""
TRIAL_HOLD_S = 3.0
READY_TIMEOUT_S = 5.0

Sleep = Callable[[float], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TrialResult:
    inflated: bool
    """The controller accepted the SET (the cuff should have moved)."""
    deflated: bool
    """The controller confirmed the DEFLATE of that channel."""
    message: str


async def trial_inflate(
    port: str,
    serial: str,
    channel: int,
    *,
    mmhg: float = TRIAL_MMHG,
    hold_s: float = TRIAL_HOLD_S,
    sleep: Sleep = asyncio.sleep,
    link_factory: Callable[..., CuffLink] = CuffLink,
) -> TrialResult:
    """Inflate ``channel`` of the controller ``serial`` on ``port`` to ``mmhg`` for ``hold_s``, then deflate."""
    link = link_factory(port, name=f"setup-trial:{port}", serial=serial, stream_hz=10)
    inflated = deflated = False
    why = ""
    await link.start()
    try:
        await link.wait_ready(READY_TIMEOUT_S)
        await link.set_target(channel, mmhg)
        inflated = True
        await sleep(hold_s)
    except LinkError as exc:
        why = str(exc)
    finally:
        try:
            await link.deflate(channel)
            deflated = True
        except LinkError as exc:
            log.warning("setup trial: DEFLATE %s on %s not confirmed: %s", channel, port, exc)
            why = why or f"deflate not confirmed: {exc}"
        await link.stop(deflate=True)  # DEFLATE ALL as well, then the port is closed
    if inflated and deflated:
        message = f"channel {channel}: {mmhg:g} mmHg for {hold_s:g} s, then deflated"
    elif deflated:
        message = f"channel {channel}: not inflated ({why}); deflate sent and confirmed"
    else:
        message = f"channel {channel}: {why}; DEFLATE ALL sent on closing - check the cuff is empty"
    return TrialResult(inflated, deflated, message)
