"""The station's configuration: schema, loading and full validation.

``config.toml`` is read with :mod:`tomllib` and checked completely before any
port opens. Every problem is collected and reported together, one line each,
naming the file, the key path (``cuffs[2].channel``: the index counts the
``[[cuffs]]`` blocks from 0, ``plans.<id>.<key>`` for a plan) and what was
expected versus found. Only a config that passes becomes a :class:`StationConfig`:
frozen dataclasses of plain values with every default filled in and relative
paths resolved against the config file's directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from console.station.api import Role
from console.station.plans import (
    BUILTIN_PLANS,
    HARD_OCCLUSION_LIMIT_S,
    LIMBS,
    MAX_PCT_LOP,
    MIN_PCT_LOP,
    REQUIRED,
    Plan,
    TableReader,
    describe,
    read_plan,
)

HARD_CEILING_MMHG: Final = 300.0
"""No configuration may allow more than this (the controllers' own ``max``)."""
MAX_CHANNELS: Final = 8
"""CUFF-LINK/1: a controller has 1 to 8 channels."""
DEFAULT_REAL_CHANNELS: Final = 4
"""Channel count assumed for a real port that does not state ``channels``."""
EMULATOR_PORT: Final = "emulator"
THEMES: Final = ("auto", "textual-dark", "ansi")
ENV_VAR: Final = "BFR_CONFIG"

_SOCKET_URL = re.compile(r"^socket://[^:/\s]+:(\d{1,5})$")


class ConfigError(Exception):
    """A config was refused. ``str()`` has one line per problem; ``.problems`` lists them."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        self.source = source


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class StationSettings:
    name: str = "BFR station"
    ceiling_mmhg: float = 300.0
    """Hard cap for any commanded pressure, at most 300."""
    data_dir: Path = Path("var")
    socket: Path = Path("var/socket/bfr.sock")
    occlusion_threshold_mmhg: float = 20.0
    """Pressure above which time counts as occlusion."""


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    tolerance_mmhg: float = 15.0
    """Off-target alarm band (Delfi PTS ii: 15 mmHg for over 1 s)."""
    grace_s: float = 1.0
    link_timeout_s: float = 0.5
    """No sample for this long: the link is lost."""
    leak_pump_s: float = 7.0
    """Pump running this long without pause while holding: a leak."""
    occlusion_warn_s: float = 900.0
    occlusion_limit_s: float = 1200.0
    """Alarm and auto-deflate after this much continuous occlusion; at most 20 min."""
    deflate_confirm_s: float = 0.25
    max_pct_lop_arm: float = 60.0
    max_pct_lop_leg: float = 90.0
    max_mmhg_without_lop: float = 120.0
    """A cuff with unknown LOP may be inflated to at most this many mmHg."""

    def max_pct_lop(self, limb: str) -> float:
        return self.max_pct_lop_arm if limb == "arm" else self.max_pct_lop_leg


@dataclass(frozen=True, slots=True)
class AlarmsConfig:
    silence_max_s: float = 120.0
    bell: bool = True


@dataclass(frozen=True, slots=True)
class UiConfig:
    theme: str = "auto"
    """``auto`` | ``textual-dark`` | ``ansi``."""
    fps: int = 20


def default_emulator_lop(channels: int) -> tuple[float, ...]:
    """A spread of limb occlusion pressures, 160, 185, 210 ... (all within 100..300)."""
    return tuple(160.0 + 25.0 * (i % 6) for i in range(channels))


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Settings of the built-in, in-process emulator (``port = "emulator"``)."""

    channels: int = 4
    lop: tuple[float, ...] = field(default_factory=lambda: default_emulator_lop(4))
    heart_rate: float = 70.0
    pulse_mmhg: float = 2.0
    seed: int = 0
    exercise: bool = False


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    id: str
    port: str
    """``emulator``, a device path, or ``socket://host:port``."""
    watchdog_ms: int = 1000
    stream_hz: int = 100
    channels: int = DEFAULT_REAL_CHANNELS
    """Resolved channel count: as configured, the emulator's, or 4."""
    emulator: EmulatorConfig | None = None
    """Set exactly when ``port == "emulator"``."""

    @property
    def is_emulator(self) -> bool:
        return self.port == EMULATOR_PORT


@dataclass(frozen=True, slots=True)
class CuffConfig:
    id: str
    controller: str
    channel: int
    limb: str
    label: str = ""
    width_cm: float | None = None
    lop: float | None = None
    """A known LOP in mmHg, if any (a measured one in the records takes over)."""
    max_pct_lop: float | None = None
    """Override of the limb's ``safety.max_pct_lop_*``."""
    occlusion_warn_s: float | None = None
    occlusion_limit_s: float | None = None
    pair: str | None = None
    """The partner cuff for both-limb sessions; pairing is always mutual."""


@dataclass(frozen=True, slots=True)
class RoleRule:
    """Maps a Unix user or group to a remote-supervision role.

    Only data here: the decision (rule order, the station's own uid) belongs to
    :mod:`console.remote.roles`.
    """

    role: Role
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class CuffLimits:
    """The effective limits of one cuff: per-cuff overrides over the safety section."""

    max_pct_lop: float
    occlusion_warn_s: float
    occlusion_limit_s: float
    max_mmhg_without_lop: float
    ceiling_mmhg: float
    tolerance_mmhg: float


@dataclass(frozen=True)
class StationConfig:
    station: StationSettings
    safety: SafetyConfig
    alarms: AlarmsConfig
    ui: UiConfig
    controllers: tuple[ControllerConfig, ...]
    cuffs: tuple[CuffConfig, ...]
    roles: tuple[RoleRule, ...]
    plans: dict[str, Plan]
    """The built-in library merged with the config's ``[[plans]]`` (which win by id)."""
    path: Path

    def cuff(self, cuff_id: str) -> CuffConfig:
        for c in self.cuffs:
            if c.id == cuff_id:
                return c
        raise KeyError(f"no cuff {cuff_id!r}")

    def controller(self, controller_id: str) -> ControllerConfig:
        for c in self.controllers:
            if c.id == controller_id:
                return c
        raise KeyError(f"no controller {controller_id!r}")

    def cuffs_on(self, controller_id: str) -> tuple[CuffConfig, ...]:
        return tuple(c for c in self.cuffs if c.controller == controller_id)

    def partner(self, cuff_id: str) -> CuffConfig | None:
        """The cuff paired with this one (declared on either side), or None."""
        me = self.cuff(cuff_id)
        if me.pair:
            return self.cuff(me.pair)
        for c in self.cuffs:
            if c.pair == cuff_id:
                return c
        return None

    def limits(self, cuff_id: str) -> CuffLimits:
        c = self.cuff(cuff_id)
        s = self.safety
        return CuffLimits(
            max_pct_lop=c.max_pct_lop if c.max_pct_lop is not None else s.max_pct_lop(c.limb),
            occlusion_warn_s=c.occlusion_warn_s if c.occlusion_warn_s is not None else s.occlusion_warn_s,
            occlusion_limit_s=c.occlusion_limit_s if c.occlusion_limit_s is not None else s.occlusion_limit_s,
            max_mmhg_without_lop=s.max_mmhg_without_lop,
            ceiling_mmhg=self.station.ceiling_mmhg,
            tolerance_mmhg=s.tolerance_mmhg,
        )

    def plan_refusal(self, plan: Plan | str, cuff_id: str) -> str | None:
        """Why this plan may not run on this cuff (a sentence for the screen), or None.

        A plan above the cuff's ``max_pct_lop`` runs only when it is a
        ``full_occlusion`` cycles plan; the station must then still require a
        known LOP and cap at the ceiling.
        """
        if isinstance(plan, str):
            if plan not in self.plans:
                return f"No plan {plan!r}."
            plan = self.plans[plan]
        cuff = self.cuff(cuff_id)
        lim = self.limits(cuff_id)
        if plan.limb is not None and plan.limb != cuff.limb:
            return f"Plan {plan.id!r} is for {_a(plan.limb)}; cuff {cuff.id} is on {_a(cuff.limb)}."
        if plan.pct_lop > lim.max_pct_lop and not plan.full_occlusion:
            return (
                f"Plan {plan.id!r} asks {plan.pct_lop:g} % LOP; cuff {cuff.id} allows at most "
                f"{lim.max_pct_lop:g} % LOP."
            )
        if plan.longest_occlusion_s > lim.occlusion_limit_s:
            return (
                f"Plan {plan.id!r} occludes for {plan.longest_occlusion_s:g} s at a stretch; cuff {cuff.id}'s "
                f"occlusion limit is {lim.occlusion_limit_s:g} s."
            )
        return None


def _a(limb: str) -> str:
    return f"an {limb}" if limb[:1] in "aeiou" else f"a {limb}"


# --------------------------------------------------------------------------- loading


def default_config_path() -> Path:
    """``$BFR_CONFIG`` if set, else ``config.toml`` at the repository root."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "config.toml"


def load_config(path: str | Path) -> StationConfig:
    """Read and validate a config file; raise :class:`ConfigError` naming every problem."""
    source = str(path)
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found (looked for {p.resolve()})"], source) from None
    except IsADirectoryError:
        raise ConfigError([f"{source}: is a directory, expected a TOML file"], source) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"], source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{source}: line {line}: not UTF-8 text (byte {exc.start})"], source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: {_syntax_message(exc)}"], source) from None
    return parse_config(data, source, base_dir=p.resolve().parent)


def _syntax_message(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib (3.11) puts the position in the message: move it to the front."""
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
    if m:
        return f"line {m.group(1)}, column {m.group(2)}: TOML syntax error: {msg[: m.start()]}"
    m = re.search(r"\s*\(at end of document\)$", msg)
    if m:
        return f"end of file: TOML syntax error: {msg[: m.start()]}"
    return f"TOML syntax error: {msg}"


TOP_KEYS: Final = ("station", "safety", "alarms", "ui", "controllers", "cuffs", "roles", "plans")
STATION_KEYS: Final = ("name", "ceiling_mmhg", "data_dir", "socket", "occlusion_threshold_mmhg")
SAFETY_KEYS: Final = (
    "tolerance_mmhg",
    "grace_s",
    "link_timeout_s",
    "leak_pump_s",
    "occlusion_warn_s",
    "occlusion_limit_s",
    "deflate_confirm_s",
    "max_pct_lop_arm",
    "max_pct_lop_leg",
    "max_mmhg_without_lop",
)
ALARMS_KEYS: Final = ("silence_max_s", "bell")
UI_KEYS: Final = ("theme", "fps")
CONTROLLER_KEYS: Final = ("id", "port", "watchdog_ms", "stream_hz", "channels", "emulator")
EMULATOR_KEYS: Final = ("channels", "lop", "heart_rate", "pulse_mmhg", "seed", "exercise")
CUFF_KEYS: Final = (
    "id",
    "controller",
    "channel",
    "limb",
    "label",
    "width_cm",
    "lop",
    "max_pct_lop",
    "occlusion_warn_s",
    "occlusion_limit_s",
    "pair",
)
ROLE_KEYS: Final = ("user", "group", "role")


def parse_config(data: Mapping[str, Any], source: str, *, base_dir: Path | None = None) -> StationConfig:
    """Validate an already-parsed TOML document.

    ``source`` names the file in messages; relative paths resolve against
    ``base_dir`` (default: the directory of ``source``).
    """
    base = (base_dir if base_dir is not None else Path(source).expanduser().parent).resolve()
    problems: list[str] = []
    top = TableReader(data, "", TOP_KEYS, problems)

    station = _station(_table(top, "station"), problems, base)
    safety = _safety(_table(top, "safety"), problems, station.ceiling_mmhg)
    alarms_t = TableReader(_table(top, "alarms"), "alarms", ALARMS_KEYS, problems)
    alarms = AlarmsConfig(
        silence_max_s=_v(alarms_t.seconds("silence_max_s", 120.0, hi=120.0), 120.0),
        bell=_v(alarms_t.flag("bell", True), True),
    )
    ui_t = TableReader(_table(top, "ui"), "ui", UI_KEYS, problems)
    ui = UiConfig(
        theme=_v(ui_t.text("theme", "auto", choices=THEMES), "auto"),
        fps=_v(ui_t.integer("fps", 20, lo=1, hi=60), 20),
    )
    controllers = _controllers(_array(top, "controllers", required=True), problems, safety)
    cuffs = _cuffs(_array(top, "cuffs", required=True), problems, controllers, station, safety)
    roles = _roles(_array(top, "roles"), problems)
    plans = _plans(_array(top, "plans"), problems, safety)

    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems], source)
    return StationConfig(
        station=station,
        safety=safety,
        alarms=alarms,
        ui=ui,
        controllers=tuple(controllers.values()),
        cuffs=cuffs,
        roles=roles,
        plans=plans,
        path=Path(source).expanduser().resolve(),
    )


def _v(value: Any, fallback: Any) -> Any:
    """The checked value, or a stand-in after a recorded problem (the config is refused anyway)."""
    return fallback if value is None else value


def _table(top: TableReader, key: str) -> Mapping[str, Any]:
    value = top.data.get(key, {})
    if not isinstance(value, dict):
        top.problem(key, f"expected a table ([{key}]), found {describe(value)}")
        return {}
    return value


def _array(top: TableReader, key: str, *, required: bool = False) -> list[tuple[str, Mapping[str, Any]]]:
    """The ``[[key]]`` blocks as (key path, table); non-tables are reported and skipped."""
    if key not in top.data:
        if required:
            top.problem(key, f"missing (expected at least one [[{key}]] table)")
        return []
    value = top.data[key]
    if not isinstance(value, list):
        top.problem(key, f"expected an array of tables ([[{key}]]), found {describe(value)}")
        return []
    if not value and required:
        top.problem(key, f"expected at least one [[{key}]] table, found none")
    out = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            top.problems.append(f"{where}: expected a table ([[{key}]]), found {describe(item)}")
            continue
        out.append((where, item))
    return out


def _station(data: Mapping[str, Any], problems: list[str], base: Path) -> StationSettings:
    t = TableReader(data, "station", STATION_KEYS, problems)
    d = StationSettings()
    data_dir = t.text("data_dir", "var")
    socket = t.text("socket", "var/socket/bfr.sock")
    ceiling = _v(t.number("ceiling_mmhg", d.ceiling_mmhg, lo=0, hi=HARD_CEILING_MMHG, lo_open=True, unit="mmHg"), 300.0)
    threshold = t.number(
        "occlusion_threshold_mmhg", d.occlusion_threshold_mmhg, lo=0, hi=100, lo_open=True, unit="mmHg"
    )
    if threshold is not None and threshold >= ceiling:
        t.problem("occlusion_threshold_mmhg", f"expected below station.ceiling_mmhg ({ceiling:g}), found {threshold:g}")
    return StationSettings(
        name=_v(t.text("name", d.name), d.name),
        ceiling_mmhg=ceiling,
        data_dir=base / Path(_v(data_dir, "var")).expanduser(),
        socket=base / Path(_v(socket, "var/socket/bfr.sock")).expanduser(),
        occlusion_threshold_mmhg=_v(threshold, d.occlusion_threshold_mmhg),
    )


def _safety(data: Mapping[str, Any], problems: list[str], ceiling: float) -> SafetyConfig:
    t = TableReader(data, "safety", SAFETY_KEYS, problems)
    d = SafetyConfig()
    warn = t.seconds("occlusion_warn_s", d.occlusion_warn_s, hi=HARD_OCCLUSION_LIMIT_S)
    limit = t.seconds("occlusion_limit_s", d.occlusion_limit_s, hi=HARD_OCCLUSION_LIMIT_S)
    if warn is not None and limit is not None and warn >= limit:
        t.problem("occlusion_warn_s", f"expected below safety.occlusion_limit_s ({limit:g} s), found {warn:g}")
    max_no_lop = t.number("max_mmhg_without_lop", d.max_mmhg_without_lop, lo=0, lo_open=True, unit="mmHg")
    if max_no_lop is not None and max_no_lop > ceiling:
        t.problem(
            "max_mmhg_without_lop",
            f"{max_no_lop:g} mmHg is above the station ceiling (station.ceiling_mmhg = {ceiling:g} mmHg)",
        )
        max_no_lop = None
    pct = dict(lo=MIN_PCT_LOP, hi=MAX_PCT_LOP, unit="% LOP")
    return SafetyConfig(
        tolerance_mmhg=_v(t.number("tolerance_mmhg", d.tolerance_mmhg, lo=0, hi=50, lo_open=True, unit="mmHg"), 15.0),
        grace_s=_v(t.seconds("grace_s", d.grace_s, hi=10.0), d.grace_s),
        link_timeout_s=_v(t.seconds("link_timeout_s", d.link_timeout_s, hi=10.0), d.link_timeout_s),
        leak_pump_s=_v(t.seconds("leak_pump_s", d.leak_pump_s, hi=60.0), d.leak_pump_s),
        occlusion_warn_s=_v(warn, d.occlusion_warn_s),
        occlusion_limit_s=_v(limit, d.occlusion_limit_s),
        deflate_confirm_s=_v(t.seconds("deflate_confirm_s", d.deflate_confirm_s, hi=10.0), d.deflate_confirm_s),
        max_pct_lop_arm=_v(t.number("max_pct_lop_arm", d.max_pct_lop_arm, **pct), d.max_pct_lop_arm),
        max_pct_lop_leg=_v(t.number("max_pct_lop_leg", d.max_pct_lop_leg, **pct), d.max_pct_lop_leg),
        max_mmhg_without_lop=_v(max_no_lop, d.max_mmhg_without_lop),
    )


def _check_port(t: TableReader, port: str) -> bool:
    if port == EMULATOR_PORT or port.startswith("/"):
        return True
    m = _SOCKET_URL.match(port)
    if m and 1 <= int(m.group(1)) <= 65535:
        return True
    t.problem(
        "port",
        f'expected "emulator", a device path such as "/dev/ttyACM0", or "socket://host:port", found "{port}"',
    )
    return False


def _controllers(
    tables: list[tuple[str, Mapping[str, Any]]], problems: list[str], safety: SafetyConfig
) -> dict[str, ControllerConfig]:
    out: dict[str, ControllerConfig] = {}
    seen_ports: dict[str, str] = {}
    for where, data in tables:
        t = TableReader(data, where, CONTROLLER_KEYS, problems)
        cid = t.ident("id")
        port = t.text("port")
        if port is not None and not _check_port(t, port):
            port = None
        elif port is not None and port != EMULATOR_PORT:
            if port in seen_ports:
                t.problem("port", f'"{port}" is already used by controller "{seen_ports[port]}"')
            seen_ports[port] = cid or where
        watchdog = t.integer("watchdog_ms", 1000, lo=200, hi=10000)
        hz = t.integer("stream_hz", 100, lo=1, hi=1000)
        if hz is not None and 3.0 / hz > safety.link_timeout_s:
            t.problem(
                "stream_hz",
                f"at {hz} Hz a sample comes every {1 / hz:g} s; safety.link_timeout_s ({safety.link_timeout_s:g} s) "
                f"must cover at least 3 of them, so expected at least {3 / safety.link_timeout_s:g} Hz",
            )
        channels = t.integer("channels", None, lo=1, hi=MAX_CHANNELS)
        emulator: EmulatorConfig | None = None
        if t.has("emulator") and port is not None and port != EMULATOR_PORT:
            t.problem(
                "emulator", f'an [controllers.emulator] table is only allowed with port = "emulator", port is "{port}"'
            )
        elif port == EMULATOR_PORT:
            raw_emu = data.get("emulator", {})
            if not isinstance(raw_emu, dict):
                t.problem("emulator", f"expected a table ([controllers.emulator]), found {describe(raw_emu)}")
                raw_emu = {}
            emulator = _emulator(raw_emu, t.path("emulator"), problems, channels)
            if emulator is not None:
                channels = emulator.channels
        if cid is None:
            continue
        if cid in out:
            t.problem("id", f'duplicate controller id "{cid}" (ids must be unique)')
            continue
        out[cid] = ControllerConfig(
            id=cid,
            port=_v(port, ""),
            watchdog_ms=_v(watchdog, 1000),
            stream_hz=_v(hz, 100),
            channels=_v(channels, DEFAULT_REAL_CHANNELS),
            emulator=emulator,
        )
    return out


def _emulator(
    data: Mapping[str, Any], where: str, problems: list[str], outer_channels: int | None
) -> EmulatorConfig | None:
    before = len(problems)
    t = TableReader(data, where, EMULATOR_KEYS, problems)
    channels = t.integer("channels", outer_channels if outer_channels is not None else 4, lo=1, hi=MAX_CHANNELS)
    if t.has("channels") and outer_channels is not None and channels is not None and channels != outer_channels:
        t.problem("channels", f"disagrees with the controller's channels = {outer_channels}; give it once")
    lop = t.numbers("lop", None, lo=100.0, hi=300.0, unit="mmHg")
    if lop is not None and channels is not None and len(lop) != channels:
        t.problem("lop", f"expected one LOP per channel ({channels} values), found {len(lop)}")
    heart_rate = t.number("heart_rate", 70.0, lo=30, hi=220, unit="beats/min")
    pulse = t.number("pulse_mmhg", 2.0, lo=0, hi=10, unit="mmHg")
    seed = t.integer("seed", 0)
    exercise = t.flag("exercise", False)
    if len(problems) > before or channels is None:
        return None
    return EmulatorConfig(
        channels=channels,
        lop=lop if lop is not None else default_emulator_lop(channels),
        heart_rate=heart_rate,
        pulse_mmhg=pulse,
        seed=seed,
        exercise=exercise,
    )


def _cuffs(
    tables: list[tuple[str, Mapping[str, Any]]],
    problems: list[str],
    controllers: dict[str, ControllerConfig],
    station: StationSettings,
    safety: SafetyConfig,
) -> tuple[CuffConfig, ...]:
    built: list[tuple[str, CuffConfig]] = []
    ids: set[str] = set()
    channels_used: dict[tuple[str, int], str] = {}
    for where, data in tables:
        before = len(problems)
        t = TableReader(data, where, CUFF_KEYS, problems)
        cid = t.ident("id")
        if cid is not None:
            if cid in ids:
                t.problem("id", f'duplicate cuff id "{cid}" (ids must be unique)')
            ids.add(cid)
        ctl_id = t.ident("controller")
        channel = t.integer("channel", REQUIRED, lo=1, hi=MAX_CHANNELS)
        limb = t.text("limb", REQUIRED, choices=LIMBS)
        ctl = controllers.get(ctl_id) if ctl_id is not None else None
        if ctl_id is not None and ctl is None:
            known = ", ".join(f'"{c}"' for c in controllers) or "none"
            t.problem("controller", f'no controller "{ctl_id}" (controllers defined: {known})')
        if ctl is not None and channel is not None:
            if channel > ctl.channels:
                t.problem(
                    "channel",
                    f'channel {channel} is beyond controller "{ctl.id}", which has {ctl.channels} channel'
                    f"{'s' if ctl.channels != 1 else ''}",
                )
            else:
                key = (ctl.id, channel)
                if key in channels_used:
                    used_by = channels_used[key]
                    t.problem("channel", f'controller "{ctl.id}" channel {channel} is already used by cuff "{used_by}"')
                else:
                    channels_used[key] = cid or where
        label = t.text("label", "", allow_empty=True)
        width = t.number("width_cm", None, lo=0, hi=40, lo_open=True, unit="cm")
        lop = t.number("lop", None, lo=0, lo_open=True, unit="mmHg")
        if lop is not None and lop > station.ceiling_mmhg:
            ceiling = station.ceiling_mmhg
            t.problem("lop", f"{lop:g} mmHg is above the station ceiling (station.ceiling_mmhg = {ceiling:g} mmHg)")
        max_pct = t.number("max_pct_lop", None, lo=MIN_PCT_LOP, hi=MAX_PCT_LOP, unit="% LOP")
        warn = t.seconds("occlusion_warn_s", None, hi=HARD_OCCLUSION_LIMIT_S)
        limit = t.seconds("occlusion_limit_s", None, hi=HARD_OCCLUSION_LIMIT_S)
        bad_override = (t.has("occlusion_warn_s") and warn is None) or (t.has("occlusion_limit_s") and limit is None)
        if (warn is not None or limit is not None) and not bad_override:
            eff_warn = warn if warn is not None else safety.occlusion_warn_s
            eff_limit = limit if limit is not None else safety.occlusion_limit_s
            if eff_warn >= eff_limit:
                src_w = "" if warn is not None else " from safety.occlusion_warn_s"
                src_l = "" if limit is not None else " from safety.occlusion_limit_s"
                t.problem(
                    "occlusion_warn_s" if warn is not None else "occlusion_limit_s",
                    f"the warning ({eff_warn:g} s{src_w}) must come before the limit ({eff_limit:g} s{src_l})",
                )
        pair = t.ident("pair", None)
        if len(problems) == before and cid is not None:
            built.append(
                (
                    where,
                    CuffConfig(
                        id=cid,
                        controller=ctl_id,
                        channel=channel,
                        limb=limb,
                        label=label,
                        width_cm=width,
                        lop=lop,
                        max_pct_lop=max_pct,
                        occlusion_warn_s=warn,
                        occlusion_limit_s=limit,
                        pair=pair,
                    ),
                )
            )
        elif cid is not None and pair is not None and limb is not None:
            # keep what pairing checks need even when other keys were wrong
            built.append((where, CuffConfig(id=cid, controller="", channel=0, limb=limb, pair=pair)))
    _check_pairs(built, ids, problems)
    return tuple(c for _, c in built)


def _check_pairs(built: list[tuple[str, CuffConfig]], ids: set[str], problems: list[str]) -> None:
    by_id = {c.id: c for _, c in built}
    for where, c in built:
        if c.pair is None:
            continue
        path = f"{where}.pair"
        if c.pair == c.id:
            problems.append(f"{path}: a cuff cannot be paired with itself")
            continue
        partner = by_id.get(c.pair)
        if partner is None:
            if c.pair not in ids:
                known = ", ".join(f'"{i}"' for i in sorted(ids))
                problems.append(f'{path}: no cuff "{c.pair}" to pair with (cuffs defined: {known})')
            continue
        if partner.pair is not None and partner.pair != c.id:
            problems.append(f'{path}: cuff "{c.pair}" is paired with "{partner.pair}", not with "{c.id}"')
        elif partner.limb != c.limb:
            problems.append(
                f'{path}: cuff "{c.pair}" is on {_a(partner.limb)}, this one on {_a(c.limb)}; pairs share a limb type'
            )


def _roles(tables: list[tuple[str, Mapping[str, Any]]], problems: list[str]) -> tuple[RoleRule, ...]:
    out: list[RoleRule] = []
    seen: set[tuple[str, str]] = set()
    for where, data in tables:
        before = len(problems)
        t = TableReader(data, where, ROLE_KEYS, problems)
        user = t.text("user", None)
        group = t.text("group", None)
        role = t.text("role", REQUIRED, choices=tuple(r.value for r in Role))
        if t.has("user") == t.has("group"):
            found = "both" if t.has("user") else "neither"
            t.problem("user", f"expected exactly one of user or group, found {found}")
        else:
            key = ("user", user) if t.has("user") else ("group", group)
            if key[1] is not None and key in seen:
                t.problem(key[0], f'{key[0]} "{key[1]}" already has a role')
            seen.add(key)  # type: ignore[arg-type]
        if len(problems) == before:
            out.append(RoleRule(role=Role(role), user=user, group=group))
    return tuple(out)


def _plans(
    tables: list[tuple[str, Mapping[str, Any]]], problems: list[str], safety: SafetyConfig
) -> dict[str, Plan]:
    plans = dict(BUILTIN_PLANS)
    seen: set[str] = set()
    for where, data in tables:
        pid = data.get("id")
        if isinstance(pid, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", pid) and pid not in seen:
            where = f"plans.{pid}"
        elif isinstance(pid, str) and pid in seen:
            problems.append(f'{where}.id: duplicate plan id "{pid}" (ids must be unique within [[plans]])')
            continue
        plan = read_plan(data, where, problems)
        if plan is None:
            continue
        seen.add(plan.id)
        _check_plan_limits(plan, where, problems, safety)
        plans[plan.id] = plan
    return plans


def _check_plan_limits(plan: Plan, where: str, problems: list[str], safety: SafetyConfig) -> None:
    """A user plan must fit the safety section, or say full_occlusion (cycles only)."""
    if not plan.full_occlusion:
        limbs = (plan.limb,) if plan.limb else LIMBS
        allowed = max(safety.max_pct_lop(limb) for limb in limbs)
        if plan.pct_lop > allowed:
            which = f"safety.max_pct_lop_{plan.limb}" if plan.limb else "safety.max_pct_lop_arm and _leg"
            problems.append(
                f"{where}.pct_lop: {plan.pct_lop:g} % LOP is above {which} ({allowed:g} %); only a "
                f'mode = "cycles" plan with full_occlusion = true may go beyond'
            )
    if plan.longest_occlusion_s > safety.occlusion_limit_s:
        problems.append(
            f"{where}.max_occlusion_s: the plan occludes for {plan.longest_occlusion_s:g} s at a stretch, "
            f"beyond safety.occlusion_limit_s ({safety.occlusion_limit_s:g} s)"
        )


# --------------------------------------------------------------------------- writing


def dump_config(config: StationConfig) -> str:
    """TOML text for a generated config (tomli-w drops comments: never overwrite a user's file with it)."""
    import tomli_w  # only writers need it

    def clean(obj: Any) -> Any:
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, Role):
            return obj.value
        if isinstance(obj, tuple | list):
            return [clean(x) for x in obj]
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if v is not None}
        return obj

    def table(obj: Any) -> dict[str, Any]:
        return {f: getattr(obj, f) for f in obj.__dataclass_fields__}

    controllers = []
    for c in config.controllers:
        d = table(c)
        emu = d.pop("emulator")
        if emu is not None:
            d.pop("channels")
            d["emulator"] = table(emu)
        controllers.append(d)
    doc: dict[str, Any] = {
        "station": table(config.station),
        "safety": table(config.safety),
        "alarms": table(config.alarms),
        "ui": table(config.ui),
        "controllers": controllers,
        "cuffs": [table(c) for c in config.cuffs],
    }
    if config.roles:
        doc["roles"] = [table(r) for r in config.roles]
    user_plans = []
    for p in config.plans.values():
        if BUILTIN_PLANS.get(p.id) == p:
            continue
        d = table(p)
        if p.mode == "cycles":
            for k in ("sets", "cadence_s", "rest_s", "rest_mode"):
                d.pop(k)
        user_plans.append(d)
    if user_plans:
        doc["plans"] = user_plans
    return tomli_w.dumps(clean(doc))
