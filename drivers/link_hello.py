"""The controller's HELLO answer, checked (also: is it the expected controller?), and the stream rate.

Apart from the session in :mod:`drivers.link` because the checks are the
host's trust boundary: every limit the console applies later (channel numbers,
the controller's maximum pressure) leans on what is accepted here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from drivers.link_errors import HelloInfo, LinkError, WrongController

log = logging.getLogger(__name__)

PROTO = 1
"""The only protocol version this link speaks."""

MAX_CHANNELS = 8
"""A controller has 1 to 8 channels (protocol, introduction)."""


def parse_hello(fields: Mapping[str, str]) -> HelloInfo:
    """The fields of a HELLO answer as a :class:`HelloInfo`.

    Raises:
        LinkError: another protocol version, a missing or malformed field, an impossible
            channel count, or a maximum that is not a positive finite pressure.
    """
    proto = fields.get("proto", "?")
    if proto != str(PROTO):
        raise LinkError(f"controller speaks CUFF-LINK/{proto}, this console speaks CUFF-LINK/{PROTO}")
    try:
        rates = tuple(int(r) for r in fields["rates"].split(",") if r)
        info = HelloInfo(
            proto=PROTO,
            model=fields["model"],
            fw=fields["fw"],
            serial=fields["serial"],
            channels=int(fields["channels"]),
            max_pressure=float(fields["max"]),
            rates=rates,
        )
    except (KeyError, ValueError) as exc:
        raise LinkError(f"bad HELLO answer {dict(fields)!r}: {exc!r}") from None
    # The host's limits lean on these: a NaN maximum would pass every "above the maximum" check.
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise LinkError(f"bad HELLO answer: channels={info.channels} (1..{MAX_CHANNELS})")
    if not (math.isfinite(info.max_pressure) and info.max_pressure > 0):
        raise LinkError(f"bad HELLO answer: max={fields['max']} is not a positive pressure")
    return info


class Identity:
    """Which controller a link expects behind its port: pinned (the config's serial) or learned.

    USB renumbering after a replug or a reboot can swap two controllers between ports; without
    this check a leg cuff's patient, plan and % LOP would drive an arm. Unpinned, the serial of
    the first HELLO accepted is learned and every later HELLO must name it too.
    """

    def __init__(self, serial: str | None) -> None:
        if serial is not None and not serial.strip():
            raise ValueError(f"an expected controller serial must not be blank, got {serial!r}")
        self.serial = serial
        """The expected serial: pinned, or learned at first contact (None until then)."""
        self.pinned = serial is not None

    def check(self, info: HelloInfo, url: str) -> None:
        """Accept ``info`` if it names the expected serial (learning it at first contact).

        Raises:
            WrongController: the HELLO named another serial.
        """
        if self.serial is None:
            self.serial = info.serial
            log.info("%s: controller serial %s learned at first contact", url, info.serial)
        elif info.serial != self.serial:
            raise WrongController(url, info.serial, self.serial)


def pick_rate(rates: tuple[int, ...], wanted_hz: int) -> int:
    """The fastest offered rate not above ``wanted_hz`` (else the slowest offered); 0 for no stream."""
    if wanted_hz <= 0 or not rates:
        return 0
    fitting = [r for r in rates if r <= wanted_hz]
    return max(fitting) if fitting else min(rates)
