"""The station's configuration: schema, loading and full validation.

``config.toml`` is read with :mod:`tomllib` and checked completely before any
port opens. Every problem is collected and reported together, one line each,
naming the file, the key path (``cuffs[2].channel``: the index counts the
``[[cuffs]]`` blocks from 0, ``plans.<id>.<key>`` for a plan) and what was
expected versus found. Only a config that passes becomes a :class:`StationConfig`:
frozen dataclasses of plain values with every default filled in and relative
paths resolved against the config file's directory.

The dataclasses live in :mod:`console.config.schema`, the per-section checks
in :mod:`console.config.validate`; every public name is importable from here.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from console.common.api import Role
from console.config.mqtt_section import mqtt_table, read_mqtt
from console.config.schema import (
    THEMES,
    AlarmsConfig,
    StationConfig,
    TherapyConfig,
    UiConfig,
)
from console.config.validate import (
    ALARMS_KEYS,
    THERAPY_KEYS,
    TOP_KEYS,
    UI_KEYS,
    or_fallback,
    read_array,
    read_controllers,
    read_cuffs,
    read_plans,
    read_roles,
    read_safety,
    read_station,
    read_table,
)
from console.therapy.plan_library import BUILTIN_PLANS
from console.therapy.table_reader import TableReader

ENV_VAR: Final = "BFR_CONFIG"


class ConfigError(Exception):
    """A config was refused. ``str()`` has one line per problem; ``.problems`` lists them."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        self.source = source


# --------------------------------------------------------------------------- loading


def default_config_path() -> Path:
    """``$BFR_CONFIG`` if set, else ``config.toml`` at the repository root."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "config.toml"


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


def parse_config(data: Mapping[str, Any], source: str, *, base_dir: Path | None = None) -> StationConfig:
    """Validate an already-parsed TOML document.

    ``source`` names the file in messages; relative paths resolve against
    ``base_dir`` (default: the directory of ``source``).
    """
    base = (base_dir if base_dir is not None else Path(source).expanduser().parent).resolve()
    problems: list[str] = []
    top = TableReader(data, "", TOP_KEYS, problems)

    station = read_station(read_table(top, "station"), problems, base)
    safety = read_safety(read_table(top, "safety"), problems, station.ceiling_mmhg)
    alarms_t = TableReader(read_table(top, "alarms"), "alarms", ALARMS_KEYS, problems)
    alarms = AlarmsConfig(
        silence_max_s=or_fallback(alarms_t.seconds("silence_max_s", 120.0, hi=120.0), 120.0),
        bell=or_fallback(alarms_t.flag("bell", True), True),
    )
    ui_t = TableReader(read_table(top, "ui"), "ui", UI_KEYS, problems)
    ui = UiConfig(
        theme=or_fallback(ui_t.text("theme", "auto", choices=THEMES), "auto"),
        fps=or_fallback(ui_t.integer("fps", 20, lo=1, hi=60), 20),
        cue_bell=or_fallback(ui_t.flag("cue_bell", False), False),
    )
    therapy_t = TableReader(read_table(top, "therapy"), "therapy", THERAPY_KEYS, problems)
    therapy = TherapyConfig(
        lop_max_age_days=or_fallback(therapy_t.number("lop_max_age_days", 14.0, lo=0.0, hi=365.0, lo_open=True), 14.0)
    )
    controllers = read_controllers(read_array(top, "controllers", required=True), problems, safety)
    cuffs = read_cuffs(read_array(top, "cuffs", required=True), problems, controllers, station, safety)
    roles = read_roles(read_array(top, "roles"), problems)
    plans = read_plans(read_array(top, "plans"), problems, safety)
    mqtt = read_mqtt(read_table(top, "mqtt"), problems, base, station.name) if "mqtt" in data else None

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
        therapy=therapy,
        mqtt=mqtt,
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
        "therapy": table(config.therapy),
        "controllers": controllers,
        "cuffs": [table(c) for c in config.cuffs],
    }
    if config.mqtt is not None:
        doc["mqtt"] = mqtt_table(config.mqtt)
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
