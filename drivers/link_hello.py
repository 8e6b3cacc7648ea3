"""The controller's HELLO answer, checked, and the stream rate chosen from it.

Apart from the session in :mod:`drivers.link` because the checks are the
host's trust boundary: every limit the console applies later (channel numbers,
the controller's maximum pressure) leans on what is accepted here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from drivers.link_errors import HelloInfo, LinkError

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


def pick_rate(rates: tuple[int, ...], wanted_hz: int) -> int:
    """The fastest offered rate not above ``wanted_hz`` (else the slowest offered); 0 for no stream."""
    if wanted_hz <= 0 or not rates:
        return 0
    fitting = [r for r in rates if r <= wanted_hz]
    return max(fitting) if fitting else min(rates)
