"""The controller's verbs: argument checks, actions and answers (``shared/protocol.md`` section 3).

:class:`CommandSet` is mixed into :class:`.firmware.ControllerFirmware`; it turns
parsed commands into OK/ERR answers and calls the firmware's channel actions
(``_set_target``, ``_deflate``) so the regulation and safety code stays apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from drivers import codec
from drivers.codec import Command
from drivers.emulator.channel import Channel, Faults
from drivers.emulator.limits import RATES, VENTED_BELOW, WATCHDOG_RANGE, ZERO_BELOW
from drivers.emulator.physics import DT

_INT = re.compile(r"-?[0-9]+\Z")
_PRESSURE = re.compile(r"-?[0-9]+(?:\.[0-9])?\Z")


class _ArgError(Exception):
    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class _NoAnswer(Exception):
    """The command is swallowed: no answer at all (the ``deflate_silent`` fault)."""


class CommandSet:
    """Runs the verbs of one batch of commands against the firmware that mixes this in."""

    # provided by the firmware (.firmware.ControllerFirmware)
    channels: int
    max_pressure: float
    model: str
    fw: str
    serial: str
    faults: Faults
    _chans: list[Channel]
    _t: float
    _watchdog_ms: int
    _stream_hz: int
    _next_sample: float
    _next_status: float
    _wdt_sent: bool
    _answer: Callable[[str], None]
    _status: Callable[..., None]
    _set_state: Callable[[Channel, str], None]
    _set_target: Callable[[Channel, float], None]
    _deflate: Callable[[Channel], None]

    def _run_commands(self, commands: list[Command]) -> None:
        deflates: list[tuple[int, set[int]]] = []
        for i, cmd in enumerate(commands):
            if cmd.verb == "DEFLATE":
                chans = self._deflate_channels(cmd)
                if chans:
                    deflates.append((i, chans))
                    for ch in chans:
                        self._deflate(self._chans[ch - 1])
        for i, cmd in enumerate(commands):
            superseded = {ch for j, chans in deflates if j > i for ch in chans}
            self._execute(cmd, superseded)

    def _deflate_channels(self, cmd: Command) -> set[int] | None:
        """The channels a DEFLATE vents before anything else in its read (none a fault keeps up)."""
        if len(cmd.args) != 1:
            return None
        arg = cmd.args[0]
        refused = self.faults.deflate_refused
        if arg == "ALL":
            return set(range(1, self.channels + 1)) - refused
        if _INT.match(arg) and 1 <= int(arg) <= self.channels:
            ch = int(arg)
            return set() if ch in refused or ch in self.faults.deflate_silent else {ch}
        return None

    def _execute(self, cmd: Command, superseded: set[int]) -> None:
        handler = _HANDLERS.get(cmd.verb)
        if handler is None:
            self._answer_to(cmd, codec.err_body(cmd.seq, "UNKNOWN", "no such verb"))
            return
        try:
            fields = handler(self, cmd.args, superseded)
        except _NoAnswer:
            return
        except _ArgError as e:
            self._answer_to(cmd, codec.err_body(cmd.seq, e.code, e.text))
            return
        self._answer_to(cmd, codec.ok_body(cmd.seq, fields))

    def _answer_to(self, cmd: Command, body: str) -> None:
        """Answer ``cmd``; damaged on the line if the ``lose_answers_to`` fault names its verb."""
        lose = self.faults.lose_answers_to
        if lose.get(cmd.verb, 0) > 0:
            lose[cmd.verb] -= 1
            self.faults.lose_answers += 1  # the outbox damages the next answer: this one
        self._answer(body)

    @staticmethod
    def _nargs(args: tuple[str, ...], n: int, usage: str) -> None:
        if len(args) != n:
            raise _ArgError("ARGS", f"usage: {usage}")

    def _channel_arg(self, text: str) -> Channel:
        if not _INT.match(text):
            raise _ArgError("ARGS", f"not a channel: {text[:20]}")
        n = int(text)
        if not 1 <= n <= self.channels:
            raise _ArgError("CHANNEL", f"channels are 1..{self.channels}")
        return self._chans[n - 1]

    def _cmd_hello(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "HELLO")
        return {
            "proto": 1,
            "model": self.model,
            "fw": self.fw,
            "serial": self.serial,
            "channels": self.channels,
            "max": codec.format_pressure(self.max_pressure),
            "rates": ",".join(str(r) for r in RATES),
        }

    def _cmd_ping(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "PING")
        return {}

    def _cmd_watchdog(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "WATCHDOG MS")
        if not _INT.match(args[0]):
            raise _ArgError("ARGS", "MS is whole milliseconds")
        ms = int(args[0])
        lo, hi = WATCHDOG_RANGE
        if not lo <= ms <= hi:
            raise _ArgError("RANGE", f"MS is {lo}..{hi}")
        self._watchdog_ms = ms
        return {"ms": ms}

    def _cmd_stream(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "STREAM HZ")
        if not _INT.match(args[0]):
            raise _ArgError("ARGS", "HZ is a whole number")
        hz = int(args[0])
        if hz != 0 and hz not in RATES:
            raise _ArgError("RANGE", "HZ is 0 or " + ",".join(str(r) for r in RATES))
        if hz != self._stream_hz:
            if self._stream_hz == 0:  # first sample and status at the next step
                self._next_sample = self._next_status = self._t + DT
            self._stream_hz = hz
        return {"hz": hz}

    def _cmd_set(self, args: tuple[str, ...], superseded: set[int]) -> dict[str, object]:
        self._nargs(args, 2, "SET CH P")
        c = self._channel_arg(args[0])
        if not _PRESSURE.match(args[1]):
            raise _ArgError("ARGS", "P is mmHg with at most one decimal")
        p = float(args[1])
        if not 0.0 < p <= self.max_pressure:
            raise _ArgError("RANGE", f"P is 0..{codec.format_pressure(self.max_pressure)}, 0 excluded")
        if c.latched:
            raise _ArgError("LATCHED", "CLEAR first")
        if c.number not in superseded:
            self._set_target(c, p)
        return {"ch": c.number, "target": codec.format_pressure(p)}

    def _cmd_deflate(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "DEFLATE CH|ALL")
        refused = self.faults.deflate_refused
        if args[0] == "ALL":
            for c in self._chans:
                if c.number not in refused:
                    self._deflate(c)
            kept = sorted(ch for ch in refused if 1 <= ch <= self.channels)
            if kept:
                raise _ArgError("BUSY", "cannot vent " + ",".join(str(ch) for ch in kept))
            return {"ch": "ALL"}
        c = self._channel_arg(args[0])
        if c.number in self.faults.deflate_silent:
            raise _NoAnswer
        if c.number in refused:
            raise _ArgError("BUSY", f"cannot vent {c.number}")
        self._deflate(c)
        return {"ch": c.number}

    def _cmd_zero(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "ZERO CH")
        c = self._channel_arg(args[0])
        if c.latched:
            raise _ArgError("LATCHED", "CLEAR first")
        if c.state != "VENTED" or c.fast >= ZERO_BELOW:
            raise _ArgError("BUSY", "only while vented and under 5 mmHg")
        c.zero += c.fast
        c.fast = c.reading = 0.0
        c.reset_slow(0.0)
        return {"ch": c.number, "offset": codec.format_pressure(c.zero)}

    def _cmd_status(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "STATUS")
        for c in self._chans:
            self._status(c, answer=True)
        return {}

    def _cmd_clear(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "CLEAR")
        self._wdt_sent = False
        for c in self._chans:
            if c.latched:
                c.latched = False
                self._set_state(c, "VENTED" if c.fast < VENTED_BELOW else "VENTING")
        return {}


_HANDLERS: dict[str, Callable[[CommandSet, tuple[str, ...], set[int]], dict[str, object]]] = {
    "HELLO": CommandSet._cmd_hello,
    "PING": CommandSet._cmd_ping,
    "WATCHDOG": CommandSet._cmd_watchdog,
    "STREAM": CommandSet._cmd_stream,
    "SET": CommandSet._cmd_set,
    "DEFLATE": CommandSet._cmd_deflate,
    "ZERO": CommandSet._cmd_zero,
    "STATUS": CommandSet._cmd_status,
    "CLEAR": CommandSet._cmd_clear,
}
