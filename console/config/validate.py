"""Checking each section of a parsed config.toml, collecting every problem.

Each ``_section`` function reads one table (or array of tables) with a
:class:`~console.therapy.plans.TableReader`, appends one line per problem to
``problems`` and returns the built value, or a stand-in when it failed (the
whole config is refused then). :func:`console.config.loader.parse_config` ties them together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from console.common.api import Role
from console.common.facts import ABSOLUTE_MAX_MMHG, LIMBS
from console.config.schema import (
    DEFAULT_REAL_CHANNELS,
    EMULATOR_PORT,
    MAX_CHANNELS,
    ControllerConfig,
    CuffConfig,
    EmulatorConfig,
    RoleRule,
    SafetyConfig,
    StationSettings,
    default_emulator_lop,
    with_article,
)
from console.therapy.plan_library import BUILTIN_PLANS
from console.therapy.plans import (
    HARD_OCCLUSION_LIMIT_S,
    MAX_PCT_LOP,
    MIN_PCT_LOP,
    Plan,
    read_plan,
)
from console.therapy.table_reader import REQUIRED, TableReader, describe

_SOCKET_URL = re.compile(r"^socket://[^:/\s]+:(\d{1,5})$")
_SERIAL = re.compile(r"[!-)+-~]{1,16}\Z")
"""A controller serial as HELLO can carry it: printable ASCII, no space, no '*' (the CRC mark)."""


TOP_KEYS: Final = ("station", "safety", "alarms", "ui", "controllers", "cuffs", "roles", "plans", "therapy", "mqtt")
THERAPY_KEYS: Final = ("lop_max_age_days",)
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
    "max_mmhg_without_lop_arm",
    "max_mmhg_without_lop_leg",
    "max_mmhg_without_lop",  # refused with a sentence: replaced by the two above
)
ALARMS_KEYS: Final = ("silence_max_s", "bell")
UI_KEYS: Final = ("theme", "fps", "cue_bell")
CONTROLLER_KEYS: Final = ("id", "port", "watchdog_ms", "stream_hz", "channels", "emulator", "serial")
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


def or_fallback(value: Any, fallback: Any) -> Any:
    """The checked value, or a stand-in after a recorded problem (the config is refused anyway)."""
    return fallback if value is None else value


def read_table(top: TableReader, key: str) -> Mapping[str, Any]:
    value = top.data.get(key, {})
    if not isinstance(value, dict):
        top.problem(key, f"expected a table ([{key}]), found {describe(value)}")
        return {}
    return value


def read_array(top: TableReader, key: str, *, required: bool = False) -> list[tuple[str, Mapping[str, Any]]]:
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
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            top.problems.append(f"{where}: expected a table ([[{key}]]), found {describe(item)}")
            continue
        out.append((where, item))
    return out


def read_station(data: Mapping[str, Any], problems: list[str], base: Path) -> StationSettings:
    t = TableReader(data, "station", STATION_KEYS, problems)
    d = StationSettings()
    data_dir = t.text("data_dir", "var")
    socket = t.text("socket", "var/socket/bfr.sock")
    ceiling = or_fallback(
        t.number("ceiling_mmhg", d.ceiling_mmhg, lo=0, hi=ABSOLUTE_MAX_MMHG, lo_open=True, unit="mmHg"), 300.0
    )
    threshold = t.number(
        "occlusion_threshold_mmhg", d.occlusion_threshold_mmhg, lo=0, hi=100, lo_open=True, unit="mmHg"
    )
    if threshold is not None and threshold >= ceiling:
        t.problem("occlusion_threshold_mmhg", f"expected below station.ceiling_mmhg ({ceiling:g}), found {threshold:g}")
    return StationSettings(
        name=or_fallback(t.text("name", d.name), d.name),
        ceiling_mmhg=ceiling,
        data_dir=base / Path(or_fallback(data_dir, "var")).expanduser(),
        socket=base / Path(or_fallback(socket, "var/socket/bfr.sock")).expanduser(),
        occlusion_threshold_mmhg=or_fallback(threshold, d.occlusion_threshold_mmhg),
    )


def read_safety(data: Mapping[str, Any], problems: list[str], ceiling: float) -> SafetyConfig:
    t = TableReader(data, "safety", SAFETY_KEYS, problems)
    d = SafetyConfig()
    warn = t.seconds("occlusion_warn_s", d.occlusion_warn_s, hi=HARD_OCCLUSION_LIMIT_S)
    limit = t.seconds("occlusion_limit_s", d.occlusion_limit_s, hi=HARD_OCCLUSION_LIMIT_S)
    if warn is not None and limit is not None and warn >= limit:
        t.problem("occlusion_warn_s", f"expected below safety.occlusion_limit_s ({limit:g} s), found {warn:g}")
    if t.has("max_mmhg_without_lop"):
        t.problem(
            "max_mmhg_without_lop",
            "replaced by max_mmhg_without_lop_arm and max_mmhg_without_lop_leg (one limit per limb: arms lower)",
        )
    no_lop: dict[str, float | None] = {}
    for limb, default in (("arm", d.max_mmhg_without_lop_arm), ("leg", d.max_mmhg_without_lop_leg)):
        key = f"max_mmhg_without_lop_{limb}"
        value = t.number(key, default, lo=0, lo_open=True, unit="mmHg")
        if value is not None and value > ceiling:
            t.problem(key, f"{value:g} mmHg is above the station ceiling (station.ceiling_mmhg = {ceiling:g} mmHg)")
            value = None
        no_lop[limb] = value
    pct: dict[str, Any] = {"lo": MIN_PCT_LOP, "hi": MAX_PCT_LOP, "unit": "% LOP"}
    return SafetyConfig(
        tolerance_mmhg=or_fallback(
            t.number("tolerance_mmhg", d.tolerance_mmhg, lo=0, hi=50, lo_open=True, unit="mmHg"), 15.0
        ),
        grace_s=or_fallback(t.seconds("grace_s", d.grace_s, hi=10.0), d.grace_s),
        link_timeout_s=or_fallback(t.seconds("link_timeout_s", d.link_timeout_s, hi=10.0), d.link_timeout_s),
        leak_pump_s=or_fallback(t.seconds("leak_pump_s", d.leak_pump_s, hi=60.0), d.leak_pump_s),
        occlusion_warn_s=or_fallback(warn, d.occlusion_warn_s),
        occlusion_limit_s=or_fallback(limit, d.occlusion_limit_s),
        deflate_confirm_s=or_fallback(
            t.seconds("deflate_confirm_s", d.deflate_confirm_s, hi=10.0), d.deflate_confirm_s
        ),
        max_pct_lop_arm=or_fallback(t.number("max_pct_lop_arm", d.max_pct_lop_arm, **pct), d.max_pct_lop_arm),
        max_pct_lop_leg=or_fallback(t.number("max_pct_lop_leg", d.max_pct_lop_leg, **pct), d.max_pct_lop_leg),
        max_mmhg_without_lop_arm=or_fallback(no_lop["arm"], d.max_mmhg_without_lop_arm),
        max_mmhg_without_lop_leg=or_fallback(no_lop["leg"], d.max_mmhg_without_lop_leg),
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


def _same_device(t: TableReader, port: str, owner: str, devices: dict[str, tuple[str, str, str]]) -> None:
    """Refuse a device path that resolves to a device another controller already names.

    A ``/dev/serial/by-id/`` symlink and its ``/dev/ttyACM0`` target are one port: two links on it
    would each drive whichever controller answers. ``devices`` maps a resolved path to
    (key path, owner, port as written) of the first controller naming it.
    """
    if "://" in port:
        return
    device = os.path.realpath(port)
    if device in devices:
        other_where, other_owner, other_port = devices[device]
        if other_port != port:  # the same text is reported as "already used" already
            t.problem(
                "port",
                f'"{port}" is the same device as {other_where}.port "{other_port}" (controller "{other_owner}"): '
                f"both resolve to {device}, and one port can serve only one controller",
            )
        return
    devices[device] = (t.where, owner, port)


def _serial(t: TableReader, port: str | None, owner: str, serials: dict[str, str]) -> str | None:
    """The pinned controller serial, if any: well formed, for a real port, and not pinned twice."""
    serial: str | None = t.text(
        "serial",
        None,
        pattern=_SERIAL,
        pattern_text="a controller serial of 1-16 printable characters, no space or '*'",
    )
    if serial is None:
        return None
    if port == EMULATOR_PORT:
        t.problem("serial", f'only for a real port: the built-in emulator always answers as "EMU-{owner}"')
        return None
    if serial in serials:
        t.problem("serial", f'serial "{serial}" is already pinned for controller "{serials[serial]}"')
    serials[serial] = owner
    return serial


def read_controllers(
    tables: list[tuple[str, Mapping[str, Any]]], problems: list[str], safety: SafetyConfig
) -> dict[str, ControllerConfig]:
    out: dict[str, ControllerConfig] = {}
    seen_ports: dict[str, str] = {}
    devices: dict[str, tuple[str, str, str]] = {}
    serials: dict[str, str] = {}
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
            _same_device(t, port, cid or where, devices)
        serial = _serial(t, port, cid or where, serials)
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
            port=or_fallback(port, ""),
            watchdog_ms=or_fallback(watchdog, 1000),
            stream_hz=or_fallback(hz, 100),
            channels=or_fallback(channels, DEFAULT_REAL_CHANNELS),
            emulator=emulator,
            serial=serial,
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


def read_cuffs(
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
                f'{path}: cuff "{c.pair}" is on {with_article(partner.limb)}, this one on {with_article(c.limb)}; pairs share a limb type'
            )


def read_roles(tables: list[tuple[str, Mapping[str, Any]]], problems: list[str]) -> tuple[RoleRule, ...]:
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
            seen.add(key)
        if len(problems) == before:
            out.append(RoleRule(role=Role(role), user=user, group=group))
    return tuple(out)


def read_plans(
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
