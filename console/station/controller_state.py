"""The station's view of one controller: its link, its cuffs and what the safety rules remember of it."""

from __future__ import annotations

from console.station.cuff import CuffState
from drivers.link import CuffLink


class ControllerState:
    """The station's view of one controller and the cuffs on it."""

    __slots__ = (
        "id",
        "port",
        "link",
        "watchdog_s",
        "cuffs",
        "by_channel",
        "link_state",
        "ever_ready",
        "down_since",
        "last_sample_at",
        "error",
        "lost_alarm",
        "wrong_raised",
        "ready_at",
        "startup_deflated",
    )

    def __init__(self, id: str, port: str, cuffs: tuple[CuffState, ...], watchdog_s: float = 3.0) -> None:
        self.id = id
        self.port = port
        self.watchdog_s = watchdog_s
        """The controller's watchdog time as the station sets it: it vents every channel this long after
        the last frame from the station."""
        self.link: CuffLink | None = None
        self.cuffs = cuffs
        self.by_channel: dict[int, CuffState] = {c.channel: c for c in cuffs}
        self.link_state = "connecting"
        self.ever_ready = False
        self.down_since: float | None = None
        """Clock time the link stopped being READY (or the station started)."""
        self.last_sample_at: float | None = None
        self.error = ""
        self.lost_alarm = False
        self.wrong_raised = False
        """A WRONG_CONTROLLER alarm is up: the port answered as another controller."""
        self.ready_at: float | None = None
        """Clock time the link last became READY."""
        self.startup_deflated = False
        """DEFLATE ALL was confirmed on first contact."""

    @property
    def online(self) -> bool:
        return self.link_state == "ready"

    def cuff_names(self) -> str:
        return ", ".join(c.id for c in self.cuffs) or "no cuffs"

    def max_pressure(self) -> float | None:
        info = self.link.info if self.link is not None else None
        return None if info is None else float(info.max_pressure)

    def channel_count(self) -> int | None:
        """How many channels the controller said it has (HELLO), or None before its first HELLO."""
        info = self.link.info if self.link is not None else None
        return None if info is None else int(info.channels)

    def missing(self) -> list[CuffState]:
        """Cuffs the config puts on channels this controller does not have (by its HELLO)."""
        n = self.channel_count()
        return [] if n is None else [c for c in self.cuffs if c.channel > n]
