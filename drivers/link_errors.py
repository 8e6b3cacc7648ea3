"""What a link tells its callers: its states, its counters, its errors.

Kept apart from :mod:`drivers.link` so that callers (the station, therapy code)
can name these without pulling in the session machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from drivers.codec import DropCounts


class LinkState(str, Enum):
    """Where a link is in its life."""

    CONNECTING = "connecting"
    """Port opening or open, HELLO/setup not finished."""
    READY = "ready"
    """Session set up; commands accepted."""
    LOST = "lost"
    """Port gone, unopenable or the controller silent; reconnecting in the background."""
    REFUSED = "refused"
    """The port answers as another controller (its HELLO serial is not the expected one).

    The port is closed again at once, nothing but HELLO was sent; the link keeps retrying with its
    backoff and stays REFUSED until the expected controller answers (READY) or the port is lost.
    """
    STOPPED = "stopped"
    """:meth:`CuffLink.stop` was called; final."""


@dataclass
class HelloInfo:
    """What the controller said about itself in its HELLO answer."""

    proto: int
    model: str
    fw: str
    serial: str
    channels: int
    max_pressure: float
    rates: tuple[int, ...]


@dataclass
class LinkStats:
    """Counters for diagnostics; they survive reconnects."""

    dropped: DropCounts = field(default_factory=DropCounts)
    """Lines dropped by the reader (bad CRC, too long, bad bytes, malformed)."""
    timeouts: int = 0
    """Command attempts that got no answer within ``answer_timeout``."""
    resends: int = 0
    """Attempts resent under a new SEQ after a timeout."""
    reconnects: int = 0
    """Times the link became READY again after having been READY before."""
    samples: int = 0
    late_answers: int = 0
    """Answers to SEQs already abandoned after a timeout (ignored)."""
    errors: int = 0
    """Unexpected things caught and logged: answers to unknown SEQs, raising listeners, internal faults."""


class LinkError(Exception):
    """Base of every error the link raises."""


class LinkTimeout(LinkError):
    """No answer after all retries, or not READY in time."""


class QueueFull(LinkError):
    """A command refused because QUEUE_LIMIT commands already wait to be sent (a runaway caller)."""


class LinkDown(LinkError):
    """The link is not READY (or no port is open), or it went down while waiting."""


class WrongController(LinkError):
    """A HELLO answered with another serial than the one this link expects: a swapped controller."""

    def __init__(self, url: str, serial: str, expected: str) -> None:
        self.url = url
        self.serial = serial
        self.expected = expected
        super().__init__(f"port {url} answers as serial {serial}, expected {expected}")


class Superseded(LinkError):
    """A SET still waiting in the queue was dropped because a DEFLATE of its channel went out first."""


class Rebooted(Superseded):
    """A SET queued or unanswered when the controller rebooted: never resent to the vented controller.

    A subclass of :class:`Superseded`, so a caller that already treats a superseded inflate as
    "it stays deflated" is right about this one too.
    """


class CommandError(LinkError):
    """The controller answered ``ERR``; ``code`` is one of the protocol's ERR codes."""

    def __init__(self, code: str, text: str = "", verb: str = "") -> None:
        self.code = code
        self.text = text
        self.verb = verb
        super().__init__(f"{verb} refused: {code}" + (f" ({text})" if text else ""))


@dataclass(frozen=True)
class LinkStateChange:
    """Sent to listeners whenever the link's state changes."""

    state: LinkState
    reason: str
